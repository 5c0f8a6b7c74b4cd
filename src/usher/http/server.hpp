// The RESTinio server around the Api router: limits, timeouts, the I/O
// thread pool, and the port it really listens on (USHER_LISTEN=:0).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <usher/config/config.hpp>
#include <usher/http/api.hpp>

namespace usher::http {

class ConnectionTracker;

// Which routes a server serves and where it listens: the API on
// USHER_LISTEN (GET /metrics too unless METRICS_LISTEN is set), or GET
// /metrics alone on METRICS_LISTEN.
enum class Listener { api, metrics };

class HttpServer {
public:
  HttpServer(Api &api, const config::Config &config, Listener listener = Listener::api);
  ~HttpServer();
  HttpServer(const HttpServer &) = delete;
  HttpServer &operator=(const HttpServer &) = delete;

  // Binds and starts the I/O threads; returns the bound port. Throws when
  // the address cannot be bound.
  std::uint16_t start();

  // Shutdown, first step: from now on requests on connections accepted
  // after this call, and further requests on kept-alive connections, get
  // 503 shutting_down with `Connection: close`; the first request of a
  // connection open before it (one may be arriving) is still served.
  void begin_drain();
  // Connections open since before begin_drain() that have not had a request
  // routed yet (each closes by itself after HTTP_READ_TIMEOUT_MS at most).
  std::size_t reading() const;

  // Closes the listener and every connection, then joins the I/O threads.
  void stop();

private:
  struct Running;
  Api &m_api;
  const config::Config &m_config;
  Listener m_listener;
  std::shared_ptr<ConnectionTracker> m_tracker;
  std::unique_ptr<Running> m_running;
};

// GET /metrics alone on METRICS_LISTEN, for a process without the API
// (`usher worker`): `render` returns the exposition text (in-memory state
// only, as the API's /metrics); anything else is 404.
class MetricsServer {
public:
  MetricsServer(const config::Config &config, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer &) = delete;
  MetricsServer &operator=(const MetricsServer &) = delete;

  // Binds METRICS_LISTEN and starts its I/O thread; returns the bound port.
  std::uint16_t start();
  void stop();

private:
  struct Running;
  const config::Config &m_config;
  std::function<std::string()> m_render;
  std::unique_ptr<Running> m_running;
};

} // namespace usher::http
