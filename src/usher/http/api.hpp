// The HTTP API (SPEC §3): routes, authentication and the translation between
// requests and the domain. Handlers run on the I/O thread only to parse and
// validate, then call one domain service (built in app/serve.cpp), which
// runs the database work on the BlockingPool or the WriteBatcher and
// completes with a domain value; the handler serialises it. No handler
// holds a database session.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/auth/accounts.hpp>
#include <usher/auth/api_tokens.hpp>
#include <usher/auth/attempt_limiter.hpp>
#include <usher/auth/token_admin.hpp>
#include <usher/config/config.hpp>
#include <usher/health/folded_event.hpp>
#include <usher/health/log_reader.hpp>
#include <usher/http/exchange.hpp>
#include <usher/intake/service.hpp>
#include <usher/jobs/job_service.hpp>
#include <usher/metrics/process.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/provisioning/user_directory.hpp>
#include <usher/queue/circuit_gauge.hpp>
#include <usher/queue/job_queue.hpp>
#include <usher/store/async.hpp>
#include <usher/store/blocking_pool.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/system/mode_switch.hpp>
#include <usher/util/error.hpp>

namespace usher::http {

// The roles of the admin's endpoints (System Health, jobs, tokens).
inline constexpr std::initializer_list<auth::Role> k_admin = {auth::Role::admin};

// One request as a handler sees it: the request value (read through ->) and
// the Responder that answers it exactly once (http/exchange.hpp). Copies
// share both: a completion that captured one and is dropped or throws leaves
// the client a 500 instead of no answer.
class Exchange {
public:
  Exchange(std::shared_ptr<const HttpRequest> request, Responder responder)
      : m_request(std::move(request)), m_responder(std::move(responder)) {}
  const HttpRequest *operator->() const { return m_request.get(); }
  const HttpRequest &request() const { return *m_request; }
  const Responder &responder() const { return m_responder; }

private:
  std::shared_ptr<const HttpRequest> m_request;
  Responder m_responder;
};
using Request = Exchange;

Response json_response(int status, const nlohmann::json &body);
Response problem_response(const Error &error);

inline constexpr std::size_t k_max_body = 64 * 1024;

// The domain services the handlers call, built once in the composition
// root (app/serve.cpp) and shared with its other callers (the intake with
// imports, for one).
struct Services {
  intake::Service &intake; // POST /api/v1/users and webhooks
  provisioning::UserDirectory &users;
  auth::Accounts &accounts;
  auth::TokenAdmin &tokens;
  jobs::JobService &jobs;
  system::ModeSwitch &mode;
  health::LogReader &health_log;
};

// Everything the handlers need, built once in main and passed in.
struct ApiDeps {
  const config::Config &config;
  Services services;
  // GET /readyz probes the database on it (store::probe_database).
  store::BlockingPool &pool;
  // Throttled password attempts are written through it (one folded event).
  store::WriteBatcher &writer;
  // Bearer tokens are checked from memory (a miss: services.tokens.resolve).
  auth::TokenRegistry &tokens;
  system::ModeCache &mode;
  queue::JobQueue &queue;
  // Requests are counted and timed into it, and GET /metrics renders it
  // (null: nothing recorded, /metrics is 404).
  metrics::Registry *metrics = nullptr;
};

// The template of an express-style route pattern, its parameters' regular
// expressions removed: "/api/v1/jobs/:id(\\d{1,18})" -> "/api/v1/jobs/:id".
std::string route_template(const std::string &pattern);

// The route GET /metrics is served on (the API's listener, or alone on
// METRICS_LISTEN's).
inline constexpr const char *k_metrics_path = "/metrics";

// Password attempts (login, activation) are limited per account and per
// client address before auth::Accounts sees them (docs/api.md).
struct PasswordDeps {
  auth::AttemptLimiter &accounts;
  auth::AttemptLimiter &addresses;
};

class Api {
public:
  Api(ApiDeps deps, PasswordDeps passwords);

  using Handler = void (Api::*)(const Request &);

  // A route: the method, an express-style path pattern (":id(\\d{1,18})";
  // matched by http/server.cpp) and its handler.
  struct Route {
    const char *method;
    std::string pattern;
    Handler handler;
  };
  static std::vector<Route> routes();

  // Answers `request` with `handler` (null: no route matched, 404) through
  // `send`: counts it in flight, 503 while draining, a handler that throws is
  // a 500. Runs on the calling (I/O) thread until the handler hands off.
  void handle(Handler handler, HttpRequest request, Responder::Send send);

  // From now on new requests get 503; requests already accepted finish.
  void begin_drain() { m_draining.store(true); }
  int in_flight() const { return m_in_flight->load(); }

private:
  using WithPrincipal = std::function<void(const auth::Principal &)>;
  using WithBody = std::function<void(const auth::Principal &, const nlohmann::json &)>;

  // Answers, exactly once per request (later answers are dropped).
  void reply(const Request &req, Response response);
  void reply_error(const Request &req, const Error &error);

  // Resolves the bearer token (from memory; a miss is looked up on the
  // pool) and checks its role; answers 401/403 (503 when it cannot be
  // checked) itself.
  void authenticate(const Request &req, std::initializer_list<auth::Role> roles,
                    WithPrincipal next);

  // Body size (413), then the token when `roles` is not empty (401/403),
  // then the media type (415), then the JSON (400).
  void with_json_body(const Request &req, std::initializer_list<auth::Role> roles, WithBody next);

  // The completion of a domain call that answers `req`: the error's problem,
  // or `serialise(value)` (a Response).
  template <typename T, typename Serialise>
  store::Completion<T> answer(const Request &req, Serialise serialise) {
    return [this, req, serialise = std::move(serialise)](Result<T> result) {
      if (!result) return reply_error(req, result.error());
      reply(req, serialise(*result));
    };
  }

  nlohmann::json mode_json(const system::ModeState &state);
  // The mode requests really get: async_queue only while the queue is healthy.
  system::SystemMode effective_mode(system::SystemMode configured) const;

  void healthz(const Request &req);
  // GET /metrics: the registry in the Prometheus text format (no token; bind
  // it privately, docs/metrics.md). No database work.
  void metrics(const Request &req);
  void readyz(const Request &req);
  void create_user(const Request &req);
  void find_user_by_email(const Request &req);
  void get_user(const Request &req);
  void resend_activation(const Request &req);
  // Counts a password attempt for the client's address and `account_key`;
  // answers 429 with Retry-After itself and returns false when refused.
  bool admit_password_attempt(const Request &req, const std::string &account_key);
  // answer(), except that a full hashing queue (auth::k_hashing_busy) is
  // also a throttled password attempt; it answers 503 "unavailable".
  template <typename T, typename Serialise>
  store::Completion<T> answer_password_attempt(const Request &req, Serialise serialise);
  void activate(const Request &req);
  void login(const Request &req);
  void get_mode(const Request &req);
  void put_mode(const Request &req);
  void health_logs(const Request &req);
  void get_job(const Request &req);
  void list_jobs(const Request &req);
  void retry_job(const Request &req);
  void queue_overview(const Request &req);
  // The web UI (http/ui_api.cpp) and what it reads (http/timeline_api.cpp).
  void ui_page(const Request &req);
  void whoami(const Request &req);
  void job_timeline(const Request &req);
  void timeline_by_email(const Request &req);
  void list_tokens(const Request &req);
  void revoke_token(const Request &req);
  // POST /api/v1/webhooks/{provider} (http/webhooks_api.cpp, SPEC §9).
  void receive_webhook(const Request &req);

  ApiDeps m_deps;
  PasswordDeps m_passwords;
  // One WARNING row for a sustained run of refused password attempts.
  health::FoldedEvent m_throttled;
  // Shared with the Responders, which may outlive a request's handler.
  std::shared_ptr<std::atomic<int>> m_in_flight = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> m_draining{false};
  // Null without a registry.
  metrics::CounterFamily *m_requests = nullptr;
  metrics::HistogramFamily *m_request_seconds = nullptr;
  metrics::GaugeFamily *m_mode = nullptr;
  std::unique_ptr<queue::CircuitGauge> m_circuit;
  metrics::Counter *m_mode_switches = nullptr;
  metrics::Gauge *m_mode_version = nullptr;
  std::unique_ptr<metrics::ProcessMetrics> m_process;
};

} // namespace usher::http
