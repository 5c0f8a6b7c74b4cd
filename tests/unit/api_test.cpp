// Unit tests for the HTTP handlers without a socket: http::Api answers
// HttpRequest values through a Responder, against a real SQLite file, the
// WriteBatcher, the BlockingPool and the embedded queue.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <usher/auth/api_tokens.hpp>
#include <usher/auth/attempt_limiter.hpp>
#include <usher/auth/hashing_pool.hpp>
#include <usher/config/config.hpp>
#include <usher/http/api.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/store/blocking_pool.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/util/text.hpp>
#include <usher/webhooks/signature.hpp>

#include "temp_database.hpp"

namespace usher::http {
namespace {

using namespace std::chrono_literals;

constexpr auto k_max_wait = 30s;

class ApiTest : public ::testing::Test {
protected:
  ApiTest()
      : m_database("api"), m_writer(m_database.db(), 100), m_pool(m_database.db(), 2, 100),
        m_queue(m_writer, 1h), m_mode([] { return Result<system::ModeState>(system::ModeState{}); },
                                      1h, [](const Error &) {}),
        m_hashing(1, 10), m_accounts({10, 60s}, 100), m_addresses({10, 60s}, 100) {
    m_config.instance = "test";
    m_config.webhook_secrets_generic = {"whsec_unit"};
    EXPECT_TRUE(m_mode.prime());
    m_sales = auth::create_token(m_database.sql(), auth::Role::sales_manager, "sam").token;
    m_tokens.reload(m_database.sql());
    m_domain = std::make_unique<Domain>(*this);
    m_api = std::make_unique<Api>(deps(nullptr), PasswordDeps{m_accounts, m_addresses});
  }
  ~ApiTest() override {
    m_api.reset();
    m_pool.stop();
    m_hashing.stop();
    m_writer.stop();
  }

  // The one response `handler` gives `request`.
  Response call(Api::Handler handler, HttpRequest request) {
    std::promise<Response> answer;
    auto future = answer.get_future();
    m_api->handle(handler, std::move(request),
                  [&answer](Response response) { answer.set_value(std::move(response)); });
    if (future.wait_for(k_max_wait) != std::future_status::ready) {
      ADD_FAILURE() << "no answer";
      return {};
    }
    return future.get();
  }

  HttpRequest post_user(const std::string &body) const {
    HttpRequest request;
    request.method = "POST";
    request.path = "/api/v1/users";
    request.headers = {{"authorization", "Bearer " + m_sales},
                       {"Content-Type", "application/json"}};
    request.body = body;
    return request;
  }

  // POST /api/v1/webhooks/generic signed with `secret` now.
  static HttpRequest post_webhook(const std::string &body, const std::string &secret,
                                  const std::string &provider = "generic") {
    const auto t = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
    HttpRequest request;
    request.method = "POST";
    request.path = "/api/v1/webhooks/" + provider;
    request.params = {{"provider", provider}};
    request.headers = {
        {"Usher-Signature",
         "t=" + t + ",v1=" + text::to_hex(webhooks::hmac_sha256(secret, t + "." + body))},
        {"Content-Type", "application/json"}};
    request.body = body;
    return request;
  }

  // The Responder drops the in-flight count right after the send that
  // answered: waits for it (an observable count, with a deadline).
  bool in_flight_drops_to_zero() const {
    const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
    while (m_api->in_flight() != 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    return m_api->in_flight() == 0;
  }

  static Api::Handler handler_for(const std::string &method, const std::string &pattern) {
    for (const auto &route : Api::routes()) {
      if (route.method == method && route.pattern == pattern) return route.handler;
    }
    ADD_FAILURE() << "no route " << method << " " << pattern;
    return nullptr;
  }

  testing::MigratedDatabase m_database;
  config::Config m_config;
  store::WriteBatcher m_writer;
  store::BlockingPool m_pool;
  queue::EmbeddedQueue m_queue;
  system::ModeCache m_mode;
  auth::TokenRegistry m_tokens;
  idempotency::InFlight m_in_flight;
  auth::HashingPool m_hashing;
  auth::AttemptLimiter m_accounts;
  auth::AttemptLimiter m_addresses;
  std::string m_sales;
  metrics::Registry m_registry; // outlives m_api

  // The domain services the Api calls, built as app/serve.cpp builds them.
  struct Domain {
    explicit Domain(ApiTest &test)
        : intake(test.m_writer, test.m_mode, test.m_queue, test.m_in_flight,
                 intake::Settings{test.m_config.activation_ttl, test.m_config.job_lease,
                                  test.m_config.instance, nullptr, nullptr, nullptr}),
          users(test.m_pool), accounts(test.m_pool, test.m_writer, test.m_hashing,
                                       {test.m_config.activation_ttl, test.m_config.session_ttl,
                                        test.m_config.password_cost}),
          tokens(test.m_tokens, test.m_pool, test.m_writer, test.m_config.instance),
          jobs(test.m_pool, test.m_writer, test.m_config.instance,
               [&queue = test.m_queue](std::int64_t id) { queue.dispatch(id, {}); }),
          mode(test.m_pool, test.m_writer, test.m_mode, {test.m_config.instance, nullptr, {}}),
          health_log(test.m_pool) {}
    intake::Service intake;
    provisioning::UserDirectory users;
    auth::Accounts accounts;
    auth::TokenAdmin tokens;
    jobs::JobService jobs;
    system::ModeSwitch mode;
    health::LogReader health_log;
  };
  // Outlives m_api; its completions run until the pool and the writer stop.
  std::unique_ptr<Domain> m_domain;
  std::unique_ptr<Api> m_api;

  ApiDeps deps(metrics::Registry *registry) {
    return ApiDeps{.config = m_config,
                   .services = {.intake = m_domain->intake,
                                .users = m_domain->users,
                                .accounts = m_domain->accounts,
                                .tokens = m_domain->tokens,
                                .jobs = m_domain->jobs,
                                .mode = m_domain->mode,
                                .health_log = m_domain->health_log},
                   .pool = m_pool,
                   .writer = m_writer,
                   .tokens = m_tokens,
                   .mode = m_mode,
                   .queue = m_queue,
                   .metrics = registry};
  }

  // Rebuilds the Api with m_registry: requests are counted and /metrics answers.
  void record_metrics() {
    m_api = std::make_unique<Api>(deps(&m_registry), PasswordDeps{m_accounts, m_addresses});
  }
  double requests(const std::string &route, const std::string &method, const std::string &status) {
    return m_registry.counter("usher_http_requests_total", "", {"route", "method", "status"})
        .with({route, method, status})
        .value();
  }
};

TEST(ApiRoutes, TemplatesDropTheParametersExpressions) {
  EXPECT_EQ(route_template(R"(/api/v1/jobs/:id(\d{1,18}))"), "/api/v1/jobs/:id");
  EXPECT_EQ(route_template(R"(/api/v1/admin/jobs/:id(\d{1,18})/retry)"),
            "/api/v1/admin/jobs/:id/retry");
  EXPECT_EQ(route_template("/healthz"), "/healthz");
  for (const auto &route : Api::routes()) {
    const auto path = route_template(route.pattern);
    EXPECT_EQ(path.find_first_of("()\\{}[]"), std::string::npos) << path;
  }
}

TEST_F(ApiTest, RequestsAreCountedByRouteTemplateMethodAndStatus) {
  record_metrics();
  HttpRequest healthz;
  healthz.method = "GET";
  healthz.route = "/healthz";
  EXPECT_EQ(call(handler_for("GET", "/healthz"), healthz).status, 200);
  HttpRequest unknown;
  unknown.method = "PATCH";
  unknown.path = "/api/v1/users/someone@example.com";
  EXPECT_EQ(call(nullptr, unknown).status, 404);
  HttpRequest job;
  job.method = "GET";
  job.path = "/api/v1/jobs/42";
  job.route = "/api/v1/jobs/:id";
  job.params = {{"id", "42"}};
  EXPECT_EQ(call(handler_for("GET", R"(/api/v1/jobs/:id(\d{1,18}))"), job).status, 401);
  EXPECT_EQ(requests("/healthz", "GET", "200"), 1);
  EXPECT_EQ(requests("unmatched", "other", "404"), 1);
  EXPECT_EQ(requests("/api/v1/jobs/:id", "GET", "401"), 1);

  HttpRequest scrape;
  scrape.method = "GET";
  scrape.route = "/metrics";
  const auto metrics = call(handler_for("GET", "/metrics"), scrape);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(metrics.body.find("usher_http_requests_total{route=\"/api/v1/jobs/:id\",method="
                              "\"GET\",status=\"401\"} 1\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("usher_mode{mode=\"async_queue\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("process_resident_memory_bytes "), std::string::npos);
  // Neither the path nor anything in it is a label.
  EXPECT_EQ(metrics.body.find("someone@example.com"), std::string::npos);
  EXPECT_EQ(metrics.body.find("/42"), std::string::npos);
}

TEST_F(ApiTest, MetricsIsNotFoundWithoutARegistry) {
  EXPECT_EQ(call(handler_for("GET", "/metrics"), HttpRequest{}).status, 404);
}

TEST_F(ApiTest, HealthzAndNotFoundNeedNoSocket) {
  const auto ok = call(handler_for("GET", "/healthz"), HttpRequest{});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(nlohmann::json::parse(ok.body)["status"], "ok");
  const auto missing = call(nullptr, HttpRequest{});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.content_type, "application/problem+json");
  EXPECT_TRUE(in_flight_drops_to_zero());
}

TEST_F(ApiTest, CreateUserIsQueuedWithItsLocation) {
  const auto response = call(handler_for("POST", "/api/v1/users"),
                             post_user(R"({"email":"Ann@Example.com","full_name":"Ann"})"));
  ASSERT_EQ(response.status, 202) << response.body;
  const auto body = nlohmann::json::parse(response.body);
  EXPECT_EQ(body["status"], "queued");
  EXPECT_EQ(body["email"], "ann@example.com");
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Location");
  EXPECT_EQ(response.headers[0].second, "/api/v1/jobs/" + body["job_id"].dump());
  EXPECT_TRUE(in_flight_drops_to_zero());
}

TEST_F(ApiTest, CreateUserRefusalsAreProblems) {
  auto no_token = post_user(R"({"email":"a@example.com","full_name":"A"})");
  no_token.headers.erase(no_token.headers.begin());
  EXPECT_EQ(call(handler_for("POST", "/api/v1/users"), no_token).status, 401);

  auto text = post_user("{}");
  text.headers[1].second = "text/plain";
  EXPECT_EQ(call(handler_for("POST", "/api/v1/users"), text).status, 415);

  EXPECT_EQ(call(handler_for("POST", "/api/v1/users"), post_user("{not json")).status, 400);
  EXPECT_EQ(
      call(handler_for("POST", "/api/v1/users"), post_user(std::string(70 * 1024, ' '))).status,
      413);

  const auto first = call(handler_for("POST", "/api/v1/users"),
                          post_user(R"({"email":"dup@example.com","full_name":"D"})"));
  EXPECT_EQ(first.status, 202);
  const auto second = call(handler_for("POST", "/api/v1/users"),
                           post_user(R"({"email":"dup@example.com","full_name":"D"})"));
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(nlohmann::json::parse(second.body)["code"], "user_exists");
}

TEST_F(ApiTest, RouteAndQueryParametersComeFromTheRequestValue) {
  const auto created = call(handler_for("POST", "/api/v1/users"),
                            post_user(R"({"email":"q@example.com","full_name":"Q"})"));
  ASSERT_EQ(created.status, 202);
  const auto job_id = nlohmann::json::parse(created.body)["job_id"].get<long long>();

  HttpRequest job;
  job.headers = {{"Authorization", "Bearer " + m_sales}};
  job.params = {{"id", std::to_string(job_id)}};
  const auto found = call(handler_for("GET", R"(/api/v1/jobs/:id(\d{1,18}))"), job);
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(nlohmann::json::parse(found.body)["status"], "queued");

  HttpRequest by_email;
  by_email.headers = job.headers;
  by_email.query = NameValues{{"email", "nobody@example.com"}};
  EXPECT_EQ(call(handler_for("GET", "/api/v1/users"), by_email).status, 404);
  by_email.query = NameValues{};
  EXPECT_EQ(call(handler_for("GET", "/api/v1/users"), by_email).status, 400);
}

TEST_F(ApiTest, SignedWebhookPurchaseIsQueuedOnceWithoutItsToken) {
  const auto handler = handler_for("POST", R"(/api/v1/webhooks/:provider([a-z]{1,20}))");
  const std::string body = R"({"id":"order-1","email":"Buyer@Example.com","full_name":"B"})";
  const auto first = call(handler, post_webhook(body, "whsec_unit"));
  ASSERT_EQ(first.status, 202) << first.body;
  const auto answer = nlohmann::json::parse(first.body);
  EXPECT_EQ(answer["status"], "queued");
  EXPECT_FALSE(answer.contains("activation_token"));
  const auto again = call(handler, post_webhook(body, "whsec_unit"));
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(nlohmann::json::parse(again.body), answer);

  const auto forged = call(handler, post_webhook(body, "whsec_other"));
  EXPECT_EQ(forged.status, 400);
  EXPECT_EQ(nlohmann::json::parse(forged.body)["code"], "signature_mismatch");
  const auto ignored = call(handler, post_webhook(R"({"id":"x","type":"ping"})", "whsec_unit"));
  EXPECT_EQ(ignored.status, 200);
  EXPECT_EQ(nlohmann::json::parse(ignored.body)["status"], "ignored");
  // Stripe has no secret here, and paypal is no provider.
  EXPECT_EQ(call(handler, post_webhook(body, "whsec_unit", "stripe")).status, 404);
  EXPECT_EQ(call(handler, post_webhook(body, "whsec_unit", "paypal")).status, 404);
  EXPECT_TRUE(in_flight_drops_to_zero());
}

TEST_F(ApiTest, DrainingAnswers503) {
  m_api->begin_drain();
  const auto response = call(handler_for("GET", "/healthz"), HttpRequest{});
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(nlohmann::json::parse(response.body)["code"], "shutting_down");
}

} // namespace
} // namespace usher::http
