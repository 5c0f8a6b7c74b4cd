// The one file that knows RESTinio: the express router built from
// Api::routes(), the translation of each request into an HttpRequest value
// and of each Response back, the 431 answer, and the server's limits.
#include <usher/http/server.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <restinio/all.hpp>

#include <usher/http/problem.hpp>
#include <usher/util/request_id.hpp>

namespace usher::http {

// What shutdown needs to know about connections (SPEC §1: in-flight requests
// finish, reading included): which connections were open when the drain
// began and have not had a request routed yet (one may be arriving, its body
// in progress), and where the drain began in connection ids (RESTinio numbers
// connections in the order it accepts them).
class ConnectionTracker {
public:
  void state_changed(const restinio::connection_state::notice_t &notice) {
    const auto id = notice.connection_id();
    std::lock_guard lock(m_mutex);
    if (restinio::holds_alternative<restinio::connection_state::accepted_t>(notice.cause())) {
      m_unrouted.insert(id);
      if (id > m_last_accepted) m_last_accepted = id;
    } else {
      m_unrouted.erase(id);
    }
  }

  // A request reached the router on `id`.
  void routed(restinio::connection_id_t id) {
    std::lock_guard lock(m_mutex);
    m_unrouted.erase(id);
  }

  void begin_drain() {
    std::lock_guard lock(m_mutex);
    if (!m_draining.load()) m_boundary = m_last_accepted;
    m_draining.store(true);
  }
  bool draining() const { return m_draining.load(); }

  // Accepted after the drain began: refused.
  bool accepted_after_drain(restinio::connection_id_t id) const {
    std::lock_guard lock(m_mutex);
    return id > m_boundary;
  }

  // Open since before the drain, no request routed yet.
  std::size_t reading() const {
    std::lock_guard lock(m_mutex);
    return static_cast<std::size_t>(std::count_if(m_unrouted.begin(), m_unrouted.end(),
                                                  [this](auto id) { return id <= m_boundary; }));
  }

private:
  mutable std::mutex m_mutex;
  std::unordered_set<restinio::connection_id_t> m_unrouted;
  restinio::connection_id_t m_last_accepted = 0;
  restinio::connection_id_t m_boundary = 0;
  std::atomic<bool> m_draining{false};
};

namespace {

using Router = restinio::router::express_router_t<>;

struct Traits : restinio::traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t> {
  // NOLINTNEXTLINE(readability-identifier-naming): the name RESTinio looks for
  using connection_state_listener_t = ConnectionTracker;
};

// While draining: a request on a connection accepted after the drain began,
// or a later request on a kept-alive connection (RESTinio numbers a
// connection's requests from 0), is answered 503 and the connection closed.
// The first request of a connection open before the drain is served.
bool refused_while_draining(const restinio::request_handle_t &req,
                            const ConnectionTracker &tracker) {
  return tracker.draining() &&
         (req->request_id() > 0 || tracker.accepted_after_drain(req->connection_id()));
}

// The request's id (X-Request-Id, docs/api.md): the caller's when usable,
// else a new one. Every response carries it back.
constexpr const char *k_request_id_header = "X-Request-Id";

std::string request_id_of(const restinio::request_handle_t &req) {
  std::optional<std::string_view> given;
  if (const auto value = req->header().opt_value_of(k_request_id_header)) {
    given = std::string_view(value->data(), value->size());
  }
  return request_id::accept_or_generate(given);
}

void answer_shutting_down(const restinio::request_handle_t &req) {
  const Error error{ErrorKind::unavailable, "shutting_down", "usher is shutting down", ""};
  const int status = status_for(error.kind);
  req
      ->create_response(restinio::http_status_line_t{
          restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, reason_phrase(status)})
      .append_header(restinio::http_field::content_type, "application/problem+json")
      .append_header(k_request_id_header, request_id_of(req))
      .connection_close()
      .set_body(problem_body(error))
      .done();
}

// RESTinio closes the connection above this size without an answer; up to
// it usher reads the body and answers 413 past 64 KiB.
constexpr std::uint64_t k_transport_body_limit = 8 * 1024 * 1024;
// Likewise for one header value: up to it usher answers 431 itself when the
// headers are larger than it accepts (below), instead of the transport
// closing the connection without a word. 80 KiB is also http_parser's own
// limit on the whole header block (HTTP_MAX_HEADER_SIZE), past which it
// fails and RESTinio closes the connection whatever this says.
constexpr std::size_t k_transport_field_value_limit = 80 * 1024;
// Headers (names and values together) larger than this are answered 431.
constexpr std::size_t k_max_header_bytes = 16 * 1024;

std::size_t header_bytes(const restinio::request_handle_t &req) {
  std::size_t total = 0;
  for (const auto &field : req->header()) total += field.name().size() + field.value().size() + 4;
  return total;
}

// 431 as problem+json, then the connection is closed: a client that sends
// such headers once will likely send them again.
void answer_header_too_large(const restinio::request_handle_t &req) {
  const nlohmann::json body = {{"type", "https://usher.invalid/problems/header_too_large"},
                               {"title", reason_phrase(431)},
                               {"status", 431},
                               {"detail", "the request headers are larger than 16 KiB"},
                               {"code", "header_too_large"}};
  req->create_response(
         restinio::http_status_line_t{restinio::http_status_code_t{431}, reason_phrase(431)})
      .append_header(restinio::http_field::content_type, "application/problem+json")
      .append_header(k_request_id_header, request_id_of(req))
      .connection_close()
      .set_body(body.dump())
      .done();
}

// The names of a pattern's parameters (":id(...)" -> "id").
std::vector<std::string> parameter_names(const std::string &pattern) {
  static const std::regex k_name(R"(:([A-Za-z_][A-Za-z0-9_]*))");
  std::vector<std::string> names;
  for (std::sregex_iterator it(pattern.begin(), pattern.end(), k_name), end; it != end; ++it) {
    names.push_back((*it)[1]);
  }
  return names;
}

HttpRequest to_value(const restinio::request_handle_t &req,
                     const restinio::router::route_params_t *params,
                     const std::vector<std::string> &names, const std::string &route) {
  HttpRequest value;
  value.route = route;
  value.request_id = request_id_of(req);
  value.method = std::string(req->header().method().c_str());
  value.path = std::string(req->header().path());
  for (const auto &field : req->header()) {
    value.headers.emplace_back(std::string(field.name()), std::string(field.value()));
  }
  value.body = req->body();
  value.remote_address = req->remote_endpoint().address().to_string();
  const auto query =
      restinio::try_parse_query<restinio::parse_query_traits::relaxed>(req->header().query());
  if (query) {
    for (const auto &[name, param] : *query) {
      value.query->emplace_back(std::string(name), std::string(param));
    }
  } else {
    value.query = std::nullopt;
  }
  if (params != nullptr) {
    for (const auto &name : names) {
      if (auto param = params->get_param(name)) {
        value.params.emplace_back(name, std::string(*param));
      }
    }
  }
  return value;
}

Responder::Send sender(restinio::request_handle_t req, std::string request_id) {
  return [req = std::move(req), request_id = std::move(request_id)](Response response) {
    auto builder = req->create_response(restinio::http_status_line_t{
        restinio::http_status_code_t{static_cast<std::uint16_t>(response.status)},
        reason_phrase(response.status)});
    builder.append_header(restinio::http_field::content_type, std::move(response.content_type));
    builder.append_header(k_request_id_header, request_id);
    for (auto &[name, value] : response.headers) builder.append_header(name, std::move(value));
    builder.set_body(std::move(response.body));
    builder.done();
  };
}

restinio::request_handling_status_t serve(Api &api, Api::Handler handler,
                                          const restinio::request_handle_t &req,
                                          const restinio::router::route_params_t *params,
                                          const std::vector<std::string> &names,
                                          const std::string &route) {
  if (header_bytes(req) > k_max_header_bytes) {
    answer_header_too_large(req);
    return restinio::request_accepted();
  }
  HttpRequest value = to_value(req, params, names, route);
  auto send = sender(req, value.request_id);
  api.handle(handler, std::move(value), std::move(send));
  return restinio::request_accepted();
}

// The routes `listener` serves: GET /metrics alone on the metrics listener;
// every other route on the API's, /metrics too unless METRICS_LISTEN is set.
bool serves(Listener listener, const config::Config &config, const Api::Route &route) {
  const bool is_metrics = route.pattern == k_metrics_path;
  if (listener == Listener::metrics) return is_metrics;
  return !is_metrics || !config.metrics_listen_host;
}

std::unique_ptr<Router> make_router(Api &api, Listener listener, const config::Config &config) {
  auto router = std::make_unique<Router>();
  for (const auto &route : Api::routes()) {
    if (!serves(listener, config, route)) continue;
    auto handler = [&api, handler = route.handler, names = parameter_names(route.pattern),
                    path = route_template(route.pattern)](const restinio::request_handle_t &req,
                                                          restinio::router::route_params_t params) {
      return serve(api, handler, req, &params, names, path);
    };
    const std::string method = route.method;
    if (method == "GET") {
      router->http_get(route.pattern, std::move(handler));
    } else if (method == "POST") {
      router->http_post(route.pattern, std::move(handler));
    } else if (method == "PUT") {
      router->add_handler(restinio::http_method_put(), route.pattern, std::move(handler));
    } else if (method == "DELETE") {
      router->http_delete(route.pattern, std::move(handler));
    } else {
      throw std::logic_error("unsupported method in Api::routes(): " + method);
    }
  }
  router->non_matched_request_handler([&api](const restinio::request_handle_t &req) {
    return serve(api, nullptr, req, nullptr, {}, {});
  });
  return router;
}

// What every listener has: its address, the transport's limits and
// timeouts, TCP_NODELAY, and the port it really bound (USHER_LISTEN=:0).
restinio::server_settings_t<Traits> listener_settings(
    const config::Config &config, const std::string &host, std::uint16_t port,
    const std::shared_ptr<std::atomic<std::uint16_t>> &bound_port) {
  return restinio::server_settings_t<Traits>{}
      .address(host)
      .port(port)
      .read_next_http_message_timelimit(config.http_read_timeout)
      .write_http_response_timelimit(std::chrono::seconds(10))
      .handle_request_timeout(std::chrono::seconds(30))
      .incoming_http_msg_limits(restinio::incoming_http_msg_limits_t{}
                                    .max_body_size(k_transport_body_limit)
                                    .max_url_size(8 * 1024)
                                    .max_field_name_size(1024)
                                    .max_field_value_size(k_transport_field_value_limit)
                                    .max_field_count(100))
      .socket_options_setter(
          [](auto &options) { options.set_option(restinio::asio_ns::ip::tcp::no_delay{true}); })
      .acceptor_post_bind_hook([bound_port](restinio::asio_ns::ip::tcp::acceptor &acceptor) {
        bound_port->store(acceptor.local_endpoint().port());
      });
}

} // namespace

struct HttpServer::Running {
  restinio::running_server_handle_t<Traits> handle;
  bool stopped = false;
};

HttpServer::HttpServer(Api &api, const config::Config &config, Listener listener)
    : m_api(api), m_config(config), m_listener(listener),
      m_tracker(std::make_shared<ConnectionTracker>()) {}

// The server (and its io_context) is destroyed only here, not in stop(): a
// request answered by another thread after stop() (a write's completion past
// the grace period) still holds its connection, whose destructor needs the
// io_context (ASan: heap-use-after-free in redis.test_shutdown). `usher
// serve` destroys the HttpServer after the writer, worker and queue stopped.
HttpServer::~HttpServer() {
  stop();
  m_running.reset();
}

std::uint16_t HttpServer::start() {
  auto bound_port = std::make_shared<std::atomic<std::uint16_t>>(0);
  std::shared_ptr<Router> router = make_router(m_api, m_listener, m_config);
  // Called through std::function: clang-tidy's analyzer would otherwise
  // follow the router into RESTinio's percent decoding and report a false
  // "memory allocated with size zero" there.
  restinio::default_request_handler_t route{std::ref(*router)};
  auto handler = [router, route = std::move(route),
                  tracker = m_tracker](const restinio::request_handle_t &req) {
    tracker->routed(req->connection_id());
    if (refused_while_draining(req, *tracker)) {
      answer_shutting_down(req);
      return restinio::request_accepted();
    }
    return route(req);
  };
  auto settings = listener_settings(
      m_config,
      m_listener == Listener::metrics ? *m_config.metrics_listen_host : m_config.listen_host,
      m_listener == Listener::metrics ? m_config.metrics_listen_port : m_config.listen_port,
      bound_port);
  settings.request_handler(std::move(handler)).connection_state_listener(m_tracker);
  m_running = std::make_unique<Running>(Running{
      restinio::run_async<Traits>(restinio::own_io_context(), std::move(settings),
                                  m_listener == Listener::metrics ? 1U : m_config.http_threads)});
  return bound_port->load();
}

void HttpServer::begin_drain() { m_tracker->begin_drain(); }

struct MetricsServer::Running {
  restinio::running_server_handle_t<Traits> handle;
  bool stopped = false;
};

MetricsServer::MetricsServer(const config::Config &config, std::function<std::string()> render)
    : m_config(config), m_render(std::move(render)) {}

MetricsServer::~MetricsServer() {
  stop();
  m_running.reset();
}

std::uint16_t MetricsServer::start() {
  auto bound_port = std::make_shared<std::atomic<std::uint16_t>>(0);
  auto handler = [this](const restinio::request_handle_t &req) {
    const bool is_metrics = req->header().method() == restinio::http_method_get() &&
                            req->header().path() == k_metrics_path;
    Response response;
    if (is_metrics) {
      response = Response{200, m_render(), metrics::k_content_type, {}};
    } else {
      response = problem_response(
          Error{ErrorKind::not_found, "not_found", "no such resource or method", ""});
    }
    sender(req, request_id_of(req))(std::move(response));
    return restinio::request_accepted();
  };
  auto settings = listener_settings(m_config, *m_config.metrics_listen_host,
                                    m_config.metrics_listen_port, bound_port);
  settings.request_handler(std::move(handler))
      .connection_state_listener(std::make_shared<ConnectionTracker>());
  m_running = std::make_unique<Running>(
      Running{restinio::run_async<Traits>(restinio::own_io_context(), std::move(settings), 1U)});
  return bound_port->load();
}

void MetricsServer::stop() {
  if (!m_running || m_running->stopped) return;
  m_running->handle->stop();
  m_running->handle->wait();
  m_running->stopped = true;
}

std::size_t HttpServer::reading() const { return m_tracker->reading(); }

void HttpServer::stop() {
  if (!m_running || m_running->stopped) return;
  m_running->handle->stop();
  m_running->handle->wait();
  m_running->stopped = true;
}

} // namespace usher::http
