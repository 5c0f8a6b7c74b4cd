// The HTTP API (SPEC §3): routes, authentication and the translation between
// requests and the domain. Handlers run on the I/O thread only to parse and
// validate; database work goes to the BlockingPool (reads, hashing) or the
// WriteBatcher (writes), which answer the request when they are done.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/auth/api_tokens.hpp>
#include <usher/auth/attempt_limiter.hpp>
#include <usher/auth/hashing_pool.hpp>
#include <usher/config/config.hpp>
#include <usher/health/folded_event.hpp>
#include <usher/http/exchange.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/intake/service.hpp>
#include <usher/metrics/process.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/queue/job_queue.hpp>
#include <usher/store/blocking_pool.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/util/error.hpp>
#include <usher/webhooks/outbox.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::http {

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

// Everything the handlers need, built once in main and passed in.
struct ApiDeps {
  const config::Config &config;
  store::BlockingPool &pool;
  store::WriteBatcher &writer;
  auth::TokenRegistry &tokens;
  system::ModeCache &mode;
  idempotency::InFlight &idempotency;
  queue::JobQueue &queue;
  // A hash verified when a login names no account, so both cost the same.
  std::string dummy_password_hash;
  // Mode switches alert through it (null: logged only).
  const alerts::AlertPolicy *alerts = nullptr;
  // Told after this instance changed the mode (announces it to the others).
  std::function<void(const system::ModeState &)> mode_changed;
  // Requests are counted and timed into it, and GET /metrics renders it
  // (null: nothing recorded, /metrics is 404).
  metrics::Registry *metrics = nullptr;
  // Where the user.provisioned events of inline and fallback provisioning
  // go (null: nowhere).
  const webhooks::OutboundTargets *outbound = nullptr;
};

// The template of an express-style route pattern, its parameters' regular
// expressions removed: "/api/v1/jobs/:id(\\d{1,18})" -> "/api/v1/jobs/:id".
std::string route_template(const std::string &pattern);

// The route GET /metrics is served on (the API's listener, or alone on
// METRICS_LISTEN's).
inline constexpr const char *k_metrics_path = "/metrics";

// Password attempts (login, activation): argon2id on its own bounded pool,
// attempts limited per account and per client address (docs/api.md).
struct PasswordDeps {
  auth::HashingPool &hashing;
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

  // Runs `task` on the pool; 503 when the pool is full or the database fails.
  void on_pool(const Request &req, store::BlockingPool::Task task);
  // Queues a write; `done` answers. 503 when the write queue is full.
  void on_writer(const Request &req, store::WriteBatcher::Apply apply,
                 store::WriteBatcher::Done done);

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
  // Runs argon2id work on the hashing pool; 503 when its queue is full.
  void on_hashing(const Request &req, auth::HashingPool::Task task);
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
  // POST /api/v1/users: everything after parsing (intake/service.hpp).
  intake::Service m_intake;
  // One WARNING row for a sustained run of refused password attempts.
  health::FoldedEvent m_throttled;
  // Shared with the Responders, which may outlive a request's handler.
  std::shared_ptr<std::atomic<int>> m_in_flight = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> m_draining{false};
  // Null without a registry.
  metrics::CounterFamily *m_requests = nullptr;
  metrics::HistogramFamily *m_request_seconds = nullptr;
  metrics::GaugeFamily *m_mode = nullptr;
  metrics::GaugeFamily *m_circuit = nullptr;
  metrics::Counter *m_mode_switches = nullptr;
  std::unique_ptr<metrics::ProcessMetrics> m_process;
};

} // namespace usher::http
