// The RESTinio server around the Api router: limits, timeouts, the I/O
// thread pool, and the port it really listens on (USHER_LISTEN=:0).
#pragma once

#include <cstdint>
#include <memory>

#include <usher/config/config.hpp>
#include <usher/http/api.hpp>

namespace usher::http {

class HttpServer {
public:
  HttpServer(Api &api, const config::Config &config);
  ~HttpServer();
  HttpServer(const HttpServer &) = delete;
  HttpServer &operator=(const HttpServer &) = delete;

  // Binds and starts the I/O threads; returns the bound port. Throws when
  // the address cannot be bound.
  std::uint16_t start();

  // Closes the listener and every connection, then joins the I/O threads.
  void stop();

private:
  struct Running;
  Api &m_api;
  const config::Config &m_config;
  std::unique_ptr<Running> m_running;
};

} // namespace usher::http
