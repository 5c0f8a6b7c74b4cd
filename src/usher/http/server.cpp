#include <usher/http/server.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <unordered_set>

#include <sys/resource.h>

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

struct Traits : restinio::traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t> {
  // NOLINTNEXTLINE(readability-identifier-naming): the name RESTinio looks for
  using connection_state_listener_t = ConnectionTracker;
  // NOLINTNEXTLINE(readability-identifier-naming): the name RESTinio looks for
  static constexpr bool use_connection_count_limiter = true;
};

// Descriptors kept for usher's own use (database, Redis pool of up to 64,
// log files, listener, event descriptors, alert sender) besides connections.
constexpr std::size_t k_reserved_descriptors = 128;
constexpr std::size_t k_min_connections = 16;

// At most this many connections at once; more wait in the listen backlog
// until one closes. Without a limit, an accept() that fails with EMFILE
// stops RESTinio 0.6.16's acceptor for good (its async_accept handler drops
// the error without accepting again): one client opening more connections
// than RLIMIT_NOFILE would leave usher deaf until restarted.
std::size_t connection_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
    return std::size_t{1} << 20U;
  }
  const auto soft = static_cast<std::size_t>(limit.rlim_cur);
  return std::max(k_min_connections,
                  soft > k_reserved_descriptors ? soft - k_reserved_descriptors : 0);
}

// While draining: a request on a connection accepted after the drain began,
// or a later request on a kept-alive connection (RESTinio numbers a
// connection's requests from 0), is answered 503 and the connection closed.
// The first request of a connection open before the drain is served.
bool refused_while_draining(const Request &req, const ConnectionTracker &tracker) {
  return tracker.draining() &&
         (req->request_id() > 0 || tracker.accepted_after_drain(req->connection_id()));
}

void answer_shutting_down(const Request &req) {
  const auto problem = problem_response(
      Error{ErrorKind::unavailable, "shutting_down", "usher is shutting down", ""});
  auto builder = req->create_response(restinio::status_service_unavailable());
  builder.append_header(restinio::http_field::content_type, problem.content_type);
  for (const auto &[name, value] : problem.headers) builder.append_header(name, value);
  builder.connection_close();
  builder.set_body(problem.body);
  builder.done();
}

// RESTinio closes the connection above this size without an answer; up to
// it usher reads the body and answers 413 past 64 KiB.
constexpr std::uint64_t k_transport_body_limit = 8 * 1024 * 1024;
// Likewise for one header value: up to it usher answers 431 itself when the
// headers are larger than it accepts (Api::route), instead of the transport
// closing the connection without a word. 80 KiB is also http_parser's own
// limit on the whole header block (HTTP_MAX_HEADER_SIZE), past which it
// fails and RESTinio closes the connection whatever this says.
constexpr std::size_t k_transport_field_value_limit = 80 * 1024;

} // namespace

struct HttpServer::Running {
  restinio::running_server_handle_t<Traits> handle;
};

HttpServer::HttpServer(Api &api, const config::Config &config)
    : m_api(api), m_config(config), m_tracker(std::make_shared<ConnectionTracker>()) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::start() {
  auto bound_port = std::make_shared<std::atomic<std::uint16_t>>(0);
  std::shared_ptr<Router> router = m_api.make_router();
  // Called through std::function: clang-tidy's analyzer would otherwise
  // follow the router into RESTinio's percent decoding and report a false
  // "memory allocated with size zero" there.
  restinio::default_request_handler_t route{std::ref(*router)};
  auto handler = [router, route = std::move(route), tracker = m_tracker](const Request &req) {
    tracker->routed(req->connection_id());
    if (refused_while_draining(req, *tracker)) {
      answer_shutting_down(req);
      return restinio::request_accepted();
    }
    return route(req);
  };
  auto settings =
      restinio::server_settings_t<Traits>{}
          .address(m_config.listen_host)
          .port(m_config.listen_port)
          .request_handler(std::move(handler))
          .connection_state_listener(m_tracker)
          .max_parallel_connections(connection_limit())
          .read_next_http_message_timelimit(m_config.http_read_timeout)
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
  m_running = std::make_unique<Running>(Running{restinio::run_async<Traits>(
      restinio::own_io_context(), std::move(settings), m_config.http_threads)});
  return bound_port->load();
}

void HttpServer::begin_drain() { m_tracker->begin_drain(); }

std::size_t HttpServer::reading() const { return m_tracker->reading(); }

void HttpServer::stop() {
  if (!m_running) return;
  m_running->handle->stop();
  m_running->handle->wait();
  m_running.reset();
}

} // namespace usher::http
