#include <usher/http/server.hpp>

#include <atomic>

namespace usher::http {
namespace {

using Traits = restinio::traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t, Router>;

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

HttpServer::HttpServer(Api &api, const config::Config &config) : m_api(api), m_config(config) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::start() {
  auto bound_port = std::make_shared<std::atomic<std::uint16_t>>(0);
  auto settings =
      restinio::server_settings_t<Traits>{}
          .address(m_config.listen_host)
          .port(m_config.listen_port)
          .request_handler(m_api.make_router())
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

void HttpServer::stop() {
  if (!m_running) return;
  m_running->handle->stop();
  m_running->handle->wait();
  m_running.reset();
}

} // namespace usher::http
