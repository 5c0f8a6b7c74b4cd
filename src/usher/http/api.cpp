#include <usher/http/api.hpp>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/http/problem.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/log_fields.hpp>
#include <usher/util/text.hpp>

namespace usher::http {
namespace {

constexpr const char *k_throttled_message =
    "password attempts refused (attempt limits or a full hashing queue)";
// Refusals less than this apart are one flood: one WARNING row with a count.
constexpr auto k_throttled_fold_window = std::chrono::minutes(1);

// The method as a label: the ones usher routes, else "other" (bounded).
std::string method_label(const std::string &method) {
  for (const char *known : {"GET", "POST", "PUT", "DELETE", "HEAD"}) {
    if (method == known) return method;
  }
  return "other";
}

bool is_json_media_type(std::string_view content_type) {
  const auto semicolon = content_type.find(';');
  return text::iequals(text::trim(content_type.substr(0, semicolon)), "application/json");
}

} // namespace

Response json_response(int status, const nlohmann::json &body) {
  return Response{status,
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json",
                  {}};
}

Response problem_response(const Error &error) {
  Response response{status_for(error.kind), problem_body(error), "application/problem+json", {}};
  if (response.status == 503) response.headers.emplace_back("Retry-After", "1");
  if (response.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

std::string route_template(const std::string &pattern) {
  std::string out;
  int depth = 0;
  for (const char c : pattern) {
    if (c == '(') ++depth;
    if (depth == 0) out += c;
    if (c == ')' && depth > 0) --depth;
  }
  return out;
}

Api::Api(ApiDeps deps, PasswordDeps passwords)
    : m_deps(deps), m_passwords(passwords),
      m_throttled(m_deps.writer, health::EventType::warning, k_throttled_message,
                  m_deps.config.instance, {}, k_throttled_fold_window) {
  if (m_deps.metrics != nullptr) {
    m_requests =
        &m_deps.metrics->counter("usher_http_requests_total",
                                 "HTTP requests answered, by route template, method and status.",
                                 {"route", "method", "status"});
    m_request_seconds = &m_deps.metrics->histogram(
        "usher_http_request_duration_seconds",
        "Time from routing a request to handing its answer to the server, by route template.",
        metrics::duration_buckets(), {"route"});
    m_process = std::make_unique<metrics::ProcessMetrics>(*m_deps.metrics);
    m_mode = &m_deps.metrics->gauge(
        "usher_mode", "The configured system mode: 1 for the current one, 0 for the other.",
        {"mode"});
    m_mode_switches = &m_deps.metrics
                           ->counter("usher_mode_switches_total",
                                     "Mode switches made through this instance's API.")
                           .with();
    m_mode_version = &m_deps.metrics
                          ->gauge("usher_mode_version",
                                  "The version of the mode this instance holds: it grows by one "
                                  "with every switch, wherever it was made (any instance's API, "
                                  "usher mode set).")
                          .with();
    m_circuit = std::make_unique<queue::CircuitGauge>(*m_deps.metrics);
  }
}

std::vector<Api::Route> Api::routes() {
  return {
      {"GET", "/healthz", &Api::healthz},
      {"GET", "/readyz", &Api::readyz},
      {"GET", k_metrics_path, &Api::metrics},
      {"POST", "/api/v1/users", &Api::create_user},
      {"GET", "/api/v1/users", &Api::find_user_by_email},
      {"GET", R"(/api/v1/users/:id(\d{1,18}))", &Api::get_user},
      {"POST", R"(/api/v1/users/:id(\d{1,18})/activation)", &Api::resend_activation},
      {"POST", "/api/v1/auth/activate", &Api::activate},
      {"POST", "/api/v1/auth/login", &Api::login},
      {"GET", "/api/v1/admin/system/mode", &Api::get_mode},
      {"PUT", "/api/v1/admin/system/mode", &Api::put_mode},
      {"GET", "/api/v1/admin/health/logs", &Api::health_logs},
      {"GET", R"(/api/v1/jobs/:id(\d{1,18}))", &Api::get_job},
      {"GET", "/api/v1/admin/jobs", &Api::list_jobs},
      {"POST", R"(/api/v1/admin/jobs/:id(\d{1,18})/retry)", &Api::retry_job},
      {"GET", "/api/v1/admin/queue", &Api::queue_overview},
      {"GET", R"(/api/v1/admin/jobs/:id(\d{1,18})/timeline)", &Api::job_timeline},
      {"GET", "/api/v1/admin/timeline", &Api::timeline_by_email},
      {"GET", "/api/v1/whoami", &Api::whoami},
      {"GET", "/", &Api::ui_page},
      {"GET", R"(/assets/:name([A-Za-z0-9._-]{1,100}))", &Api::ui_page},
      {"GET", "/api/v1/admin/tokens", &Api::list_tokens},
      {"DELETE", R"(/api/v1/admin/tokens/:id(\d{1,18}))", &Api::revoke_token},
      {"POST", R"(/api/v1/webhooks/:provider([a-z]{1,20}))", &Api::receive_webhook},
  };
}

void Api::handle(Handler handler, HttpRequest request, Responder::Send send) {
  if (m_requests != nullptr) {
    // Counted and timed when answered, whoever answers (the handler, a
    // completion on another thread, or the Responder's own 500).
    const std::string route =
        handler == nullptr || request.route.empty() ? "unmatched" : request.route;
    send = [send = std::move(send), requests = m_requests, seconds = m_request_seconds, route,
            method = method_label(request.method),
            started = std::chrono::steady_clock::now()](Response response) {
      requests->with({route, method, std::to_string(response.status)}).inc();
      seconds->with({route}).observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      send(std::move(response));
    };
  }
  ++*m_in_flight;
  const Request req(std::make_shared<const HttpRequest>(std::move(request)),
                    Responder(std::move(send), [in_flight = m_in_flight] { --*in_flight; }));
  if (handler == nullptr) {
    return reply_error(req,
                       Error{ErrorKind::not_found, "not_found", "no such resource or method", ""});
  }
  if (m_draining.load()) {
    return reply_error(
        req, Error{ErrorKind::unavailable, "shutting_down", "usher is shutting down", ""});
  }
  try {
    (this->*handler)(req);
  } catch (const std::exception &e) {
    // A bug: the request gets a 500 and the process goes on.
    log::with_fields(
        spdlog::level::err,
        fmt::format("handler for {} failed: {} (request {})", req->path, e.what(), req->request_id),
        {{"request_id", req->request_id}});
    reply_error(req, Error{ErrorKind::internal, "internal", "internal error", ""});
  }
}

void Api::reply(const Request &req, Response response) {
  req.responder().respond(std::move(response));
}

void Api::reply_error(const Request &req, const Error &error) {
  if (error.kind == ErrorKind::internal) {
    // The details of a bug are for the log, not for the client.
    log::with_fields(spdlog::level::err,
                     fmt::format("internal error: {} (request {})", error.detail, req->request_id),
                     {{"request_id", req->request_id}});
    return reply(req,
                 problem_response(Error{ErrorKind::internal, "internal", "internal error", ""}));
  }
  reply(req, problem_response(error));
}

void Api::authenticate(const Request &req, std::initializer_list<auth::Role> roles,
                       WithPrincipal next) {
  const auto header = req->header("Authorization");
  const auto token = header ? auth::bearer_token(*header) : std::nullopt;
  if (!token) {
    return reply_error(req, Error{ErrorKind::unauthenticated, "unauthorized",
                                  "an Authorization: Bearer token is required", ""});
  }
  std::vector<auth::Role> allowed(roles);
  auto check = [this, req, allowed = std::move(allowed),
                next = std::move(next)](const std::optional<auth::Principal> &principal) {
    if (!principal) {
      return reply_error(
          req, Error{ErrorKind::unauthenticated, "unauthorized", "the token is not valid", ""});
    }
    m_deps.tokens.note_use(principal->token_id);
    if (std::find(allowed.begin(), allowed.end(), principal->role) == allowed.end()) {
      return reply_error(
          req, Error{ErrorKind::forbidden, "forbidden", "this token's role may not do this", ""});
    }
    next(*principal);
  };
  const std::string hash = crypto::sha256_hex(*token);
  if (auto principal = m_deps.tokens.find(hash)) return check(principal);
  // Maybe a token created since the last load: one point lookup of this
  // digest on the pool (shared by concurrent requests with the same token).
  m_deps.services.tokens.resolve(
      hash, [this, req, check](const Result<std::optional<auth::Principal>> &found) {
        if (!found) return reply_error(req, found.error());
        check(*found);
      });
}

void Api::with_json_body(const Request &req, std::initializer_list<auth::Role> roles,
                         WithBody next) {
  if (req->body.size() > k_max_body) {
    return reply_error(req, Error{ErrorKind::too_large, "payload_too_large",
                                  "the request body is larger than 64 KiB", ""});
  }
  auto parse = [this, req, next = std::move(next)](const auth::Principal &principal) {
    const auto content_type = req->header("Content-Type").value_or("");
    if (!is_json_media_type(content_type)) {
      return reply_error(req, Error{ErrorKind::unsupported_media, "unsupported_media_type",
                                    "the body must be application/json", ""});
    }
    auto body = nlohmann::json::parse(req->body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return reply_error(req, Error{ErrorKind::invalid, "malformed_json",
                                    "the body is not valid JSON (UTF-8)", ""});
    }
    next(principal, body);
  };
  if (roles.size() == 0) return parse(auth::Principal{});
  authenticate(req, roles, std::move(parse));
}

system::SystemMode Api::effective_mode(system::SystemMode configured) const {
  if (configured == system::SystemMode::async_queue && m_deps.queue.accepting()) {
    return system::SystemMode::async_queue;
  }
  return system::SystemMode::sync_direct;
}

void Api::healthz(const Request &req) {
  reply(req, Response{200, R"({"status":"ok"})", "application/json", {}});
}

void Api::metrics(const Request &req) {
  if (m_deps.metrics == nullptr) {
    return reply_error(req,
                       Error{ErrorKind::not_found, "not_found", "no such resource or method", ""});
  }
  m_process->refresh();
  // In-memory state only: a scrape does no database or Redis work.
  const auto mode = m_deps.mode.cached();
  m_mode_version->set(static_cast<double>(m_deps.mode.version()));
  for (const auto each : {system::SystemMode::async_queue, system::SystemMode::sync_direct}) {
    m_mode->with({system::to_string(each)}).set(each == mode ? 1 : 0);
  }
  m_circuit->refresh(m_deps.queue);
  reply(req, Response{200, m_deps.metrics->render(), metrics::k_content_type, {}});
}

void Api::readyz(const Request &req) {
  const bool queued = store::probe_database(m_deps.pool, [this, req](bool ready) {
    auto response = json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"},
                                                      {"database", {{"ok", ready}}},
                                                      {"queue", m_deps.queue.health().to_json()}});
    if (!ready) response.headers.emplace_back("Retry-After", "1");
    reply(req, std::move(response));
  });
  if (!queued) reply_error(req, store::busy());
}

} // namespace usher::http
