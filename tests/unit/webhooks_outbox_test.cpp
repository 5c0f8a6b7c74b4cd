// Unit tests for outbound events (webhooks/outbox.hpp) on a temporary SQLite
// file: user.provisioned is written by the one provisioning routine and
// job.dead by the dead transitions, in the same transaction (a rolled-back
// provisioning writes none), one row per URL with a deterministic id, and
// nothing at all when no URL is configured; the sender's claim is a lease.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include <usher/jobs/job_store.hpp>
#include <usher/jobs/provisioner.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/clock.hpp>
#include <usher/webhooks/outbox.hpp>
#include <usher/webhooks/sender.hpp>
#include <usher/webhooks/signature.hpp>

#include "manual_clock.hpp"
#include "temp_database.hpp"

namespace usher::webhooks {
namespace outbox_test {

using namespace std::chrono_literals;

constexpr std::chrono::hours k_ttl{24};

class WebhooksOutbox : public ::testing::Test {
protected:
  WebhooksOutbox() : m_db("webhooks_outbox") {
    m_targets.urls = {"http://127.0.0.1:9/a", "https://crm.example.com/hook"};
    m_creator.token_id = 0;
    m_creator.actor = "sales (token 7)";
  }

  static provisioning::NewUser buyer(const std::string &email) {
    provisioning::NewUser user;
    user.email = email;
    user.full_name = "Ana Lima";
    user.product = "Tripwire Pro";
    return user;
  }

  // sync_direct in its own transaction; committed only when `commit`.
  Result<provisioning::CreatedUser> inline_user(const std::string &email,
                                                const OutboundTargets *targets, bool commit) {
    soci::transaction tr(m_db.sql());
    jobs::Provisioner provisioner(m_db.sql());
    auto created = provisioner.provision_inline(buyer(email), m_creator, k_ttl, targets);
    if (created && commit) tr.commit();
    return created;
  }

  std::int64_t enqueue(const std::string &email) {
    soci::transaction tr(m_db.sql());
    jobs::IntakeStatements intake(m_db.sql());
    auto queued = intake.enqueue(buyer(email), m_creator, k_ttl);
    EXPECT_TRUE(queued);
    tr.commit();
    return queued ? queued->job_id : 0;
  }

  static std::string in(std::chrono::milliseconds delta) {
    return clock::iso8601(std::chrono::system_clock::now() + delta);
  }

  long long rows() { return m_db.count("SELECT COUNT(*) FROM webhook_outbox"); }

  nlohmann::json body_of(const std::string &event_id) {
    std::string body;
    m_db.sql() << "SELECT body FROM webhook_outbox WHERE event_id = :id ORDER BY id LIMIT 1",
        soci::use(event_id), soci::into(body);
    return nlohmann::json::parse(body);
  }

  testing::MigratedDatabase m_db;
  OutboundTargets m_targets;
  provisioning::Creator m_creator;
};

TEST(WebhooksEventIds, AreDeterministic) {
  EXPECT_EQ(user_provisioned_id(42), "evt_user_provisioned_42");
  EXPECT_EQ(job_dead_id(42, 3), "evt_job_dead_42_3");
  EXPECT_EQ(job_dead_id(42, 3, 1), "evt_job_dead_42_3");
  EXPECT_EQ(job_dead_id(42, 1, 2), "evt_job_dead_42_1_2");
  EXPECT_EQ(user_provisioned_id(42), user_provisioned_id(42));
}

TEST_F(WebhooksOutbox, AProvisionedUserIsOneEventPerUrlWrittenWithTheJob) {
  auto created = inline_user("ana@example.com", &m_targets, true);
  ASSERT_TRUE(created) << created.error().detail;
  const std::string id = "evt_user_provisioned_" + std::to_string(created->job_id);
  EXPECT_EQ(m_db.count("SELECT COUNT(*) FROM webhook_outbox WHERE event_id = :id", id), 2);
  EXPECT_EQ(m_db.count("SELECT COUNT(DISTINCT url) FROM webhook_outbox"), 2);
  const auto body = body_of(id);
  EXPECT_EQ(body["id"], id);
  EXPECT_EQ(body["type"], "user.provisioned");
  EXPECT_TRUE(clock::parse_iso8601(body["created_at"].get<std::string>()).has_value());
  const auto &data = body["data"];
  EXPECT_EQ(data["user_id"], created->user_id);
  EXPECT_EQ(data["job_id"], created->job_id);
  EXPECT_EQ(data["email"], "ana@example.com");
  EXPECT_EQ(data["full_name"], "Ana Lima");
  EXPECT_EQ(data["product"], "Tripwire Pro");
  EXPECT_EQ(data["created_by"], "sales (token 7)");
  EXPECT_EQ(body.dump().find(created->activation_token), std::string::npos)
      << "the activation token never leaves";
  EXPECT_EQ(data.size(), 6u);
}

TEST_F(WebhooksOutbox, ARolledBackProvisioningWritesNoEvent) {
  ASSERT_TRUE(inline_user("gone@example.com", &m_targets, false));
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(m_db.count("SELECT COUNT(*) FROM jobs"), 0);
}

TEST_F(WebhooksOutbox, ALostLeaseWritesNoEvent) {
  const auto id = enqueue("lost@example.com");
  auto claimed = jobs::claim(m_db.sql(), "w1", 1, in(30s));
  ASSERT_EQ(claimed.size(), 1u);
  soci::transaction tr(m_db.sql());
  jobs::Provisioner provisioner(m_db.sql());
  auto provisioned = provisioner.provision(claimed[0], "not-the-owner", &m_targets);
  ASSERT_FALSE(provisioned);
  tr.rollback();
  EXPECT_EQ(rows(), 0);
  // Its owner then provisions it: the event is there, once per URL.
  soci::transaction tr2(m_db.sql());
  ASSERT_TRUE(provisioner.provision(claimed[0], "w1", &m_targets));
  tr2.commit();
  EXPECT_EQ(m_db.count("SELECT COUNT(*) FROM webhook_outbox WHERE event_id = :id",
                       user_provisioned_id(id)),
            2);
}

TEST_F(WebhooksOutbox, NoUrlsWritesNothing) {
  OutboundTargets none;
  ASSERT_TRUE(inline_user("a@example.com", &none, true));
  ASSERT_TRUE(inline_user("b@example.com", nullptr, true));
  EXPECT_EQ(rows(), 0);
}

TEST_F(WebhooksOutbox, ADeadJobIsAJobDeadEvent) {
  const auto id = enqueue("dead@example.com");
  ASSERT_EQ(jobs::claim(m_db.sql(), "w1", 1, in(30s)).size(), 1u);
  {
    soci::transaction tr(m_db.sql());
    EXPECT_EQ(jobs::fail_attempt(m_db.sql(), id, "w1", "smtp down", in(0ms), 1, "unit", nullptr,
                                 &m_targets),
              jobs::JobStatus::dead);
    tr.commit();
  }
  const auto body = body_of(job_dead_id(id, 1));
  EXPECT_EQ(body["type"], "job.dead");
  EXPECT_EQ(body["data"]["job_id"], id);
  EXPECT_EQ(body["data"]["email"], "dead@example.com");
  EXPECT_EQ(body["data"]["attempts"], 1);
  EXPECT_EQ(body["data"]["last_error"], "smtp down");
  EXPECT_EQ(rows(), 2);
}

TEST_F(WebhooksOutbox, ADeadJobRetriedAndDeadAgainIsASecondEvent) {
  const auto id = enqueue("twice@example.com");
  for (int death = 1; death <= 2; ++death) {
    ASSERT_EQ(jobs::claim(m_db.sql(), "w1", 1, in(30s)).size(), 1u);
    ASSERT_EQ(jobs::fail_attempt(m_db.sql(), id, "w1", "smtp down", in(0ms), 1, "unit", nullptr,
                                 &m_targets),
              jobs::JobStatus::dead);
    if (death == 1) {
      ASSERT_TRUE(jobs::retry_dead(m_db.sql(), id, "admin", "unit"));
    }
  }
  EXPECT_EQ(m_db.count("SELECT COUNT(DISTINCT event_id) FROM webhook_outbox"), 2);
  EXPECT_EQ(body_of(job_dead_id(id, 1))["type"], "job.dead");
  EXPECT_EQ(body_of(job_dead_id(id, 1, 2))["id"], "evt_job_dead_" + std::to_string(id) + "_1_2");
}

TEST_F(WebhooksOutbox, AFailedAttemptThatIsRetriedIsNoEvent) {
  const auto id = enqueue("retry@example.com");
  ASSERT_EQ(jobs::claim(m_db.sql(), "w1", 1, in(30s)).size(), 1u);
  EXPECT_EQ(
      jobs::fail_attempt(m_db.sql(), id, "w1", "smtp down", in(1h), 3, "unit", nullptr, &m_targets),
      jobs::JobStatus::queued);
  EXPECT_EQ(rows(), 0);
}

TEST_F(WebhooksOutbox, AnExpiredLeaseOnTheLastAttemptIsAJobDeadEvent) {
  const auto id = enqueue("crashed@example.com");
  ASSERT_EQ(jobs::claim(m_db.sql(), "crashed", 1, in(-1s)).size(), 1u);
  std::size_t died = 0;
  jobs::recover_expired_leases(m_db.sql(), 1, "unit", nullptr, &died, &m_targets);
  EXPECT_EQ(died, 1u);
  EXPECT_EQ(body_of(job_dead_id(id, 1))["data"]["last_error"],
            "the worker holding the lease stopped or crashed");
}

TEST_F(WebhooksOutbox, AClaimIsALeaseAndSettlingEndsIt) {
  ASSERT_TRUE(inline_user("lease@example.com", &m_targets, true));
  const auto now = in(0ms);
  const auto first = claim_next(m_db.sql(), now, in(60s));
  const auto second = claim_next(m_db.sql(), now, in(60s));
  const auto third = claim_next(m_db.sql(), now, in(60s));
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->id, second->id);
  EXPECT_EQ(first->event_id, second->event_id);
  EXPECT_NE(first->url, second->url);
  EXPECT_FALSE(third) << "both rows are leased";
  EXPECT_FALSE(has_due(m_db.sql(), now));

  mark_sent(m_db.sql(), first->id, now);
  schedule_retry(m_db.sql(), second->id, now, "HTTP 500");
  const auto again = claim_next(m_db.sql(), in(1ms), in(60s));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, second->id);
  EXPECT_EQ(again->attempts, 1);
  mark_failed(m_db.sql(), again->id, "gave up");
  EXPECT_FALSE(has_due(m_db.sql(), in(1h)));
  EXPECT_EQ(m_db.count("SELECT COUNT(*) FROM webhook_outbox WHERE status = 'sent'"), 1);
  EXPECT_EQ(m_db.count("SELECT COUNT(*) FROM webhook_outbox WHERE status = 'failed'"), 1);
}

} // namespace outbox_test
} // namespace usher::webhooks

namespace usher::webhooks {
namespace sender_test {

using namespace std::chrono_literals;

SenderSettings settings_with(std::chrono::hours window) {
  SenderSettings settings;
  settings.secret = "whsec_test";
  settings.timeout = 500ms;
  settings.backoff = 1000ms;
  settings.max_backoff = 60000ms;
  settings.retry_window = window;
  settings.instance = "unit";
  return settings;
}

PostResult failed(long status) {
  return {PostResult::Outcome::failed, status, "HTTP " + std::to_string(status)};
}

TEST(WebhooksSignature, IsHmacOfTheTimestampDotBody) {
  // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
  const std::string header = signature_header("whsec_test", 1700000000, R"({"a":1})");
  EXPECT_EQ(header.rfind("t=1700000000,v1=", 0), 0u) << header;
  EXPECT_EQ(header.size(), std::string("t=1700000000,v1=").size() + 64);
  // The inbound verifier (the same scheme as Usher-Signature) accepts it.
  testing::ManualClock clock(clock::WallTime(std::chrono::seconds(1700000010)));
  VerifyOptions options;
  options.secrets = {"whsec_test"};
  EXPECT_EQ(verify(Provider::generic, header, R"({"a":1})", options, clock), Verdict::ok);
  options.secrets = {"wrong"};
  EXPECT_EQ(verify(Provider::generic, header, R"({"a":1})", options, clock), Verdict::mismatch);
}

TEST(WebhooksSender, UrlCredentialsAreNotLogged) {
  EXPECT_EQ(loggable_url("https://crm.example.com/hook?a=b"), "https://crm.example.com/hook?a=b");
  EXPECT_EQ(loggable_url("https://bob:s3cret@crm.example.com/hook"),
            "https://***@crm.example.com/hook");
  EXPECT_EQ(loggable_url("http://tok@crm.example.com"), "http://***@crm.example.com");
  EXPECT_EQ(loggable_url("http://crm.example.com/a@b"), "http://crm.example.com/a@b");
}

TEST(WebhooksDecide, A2xxIsSentAnythingElseBacksOffWithJitterUpToTheCap) {
  const auto settings = settings_with(24h);
  const clock::WallTime created(std::chrono::seconds(1'795'867'200));
  EXPECT_EQ(
      decide({PostResult::Outcome::delivered, 204, ""}, 1, created, created, settings, 0.5).action,
      Decision::Action::sent);
  const auto first = decide(failed(500), 1, created, created, settings, 1.0);
  EXPECT_EQ(first.action, Decision::Action::retry);
  EXPECT_EQ(first.next_attempt_at - created, 1000ms);
  EXPECT_EQ(decide(failed(500), 1, created, created, settings, 0.0).next_attempt_at - created,
            500ms)
      << "jitter takes off at most half";
  EXPECT_EQ(decide(failed(503), 3, created, created, settings, 1.0).next_attempt_at - created,
            4000ms);
  EXPECT_EQ(decide(failed(0), 30, created, created, settings, 1.0).next_attempt_at - created,
            60000ms)
      << "bounded by max_backoff";
  EXPECT_EQ(decide({PostResult::Outcome::aborted, 0, "stopped"}, 1, created, created, settings, 1.0)
                .action,
            Decision::Action::release);
}

TEST(WebhooksDecide, NeverRetriesPastTheWindowAndGivesUpAtIt) {
  const auto settings = settings_with(24h);
  const clock::WallTime created(std::chrono::seconds(1'795'867'200));
  const auto late = created + 24h - 10ms;
  const auto retry = decide(failed(500), 40, created, late, settings, 1.0);
  EXPECT_EQ(retry.action, Decision::Action::retry);
  EXPECT_EQ(retry.next_attempt_at, created + 24h);
  const auto done = decide(failed(500), 41, created, created + 24h, settings, 1.0);
  EXPECT_EQ(done.action, Decision::Action::give_up);
  EXPECT_EQ(done.error, "HTTP 500");
}

// The sender's loop against a receiver that is not there (a closed port):
// each attempt fails, is retried after its backoff, and after the retry
// window the event is given up with one WARNING naming the URL and the
// event id, never the secret.
TEST(WebhooksSender, GivesUpAfterTheRetryWindowWithOneWarning) {
  usher::testing::MigratedDatabase db("webhooks_sender");
  usher::testing::ManualClock clock;
  OutboundTargets targets{{"http://127.0.0.1:1/hook"}};
  const auto now = clock::iso8601(clock.wall());
  {
    soci::transaction tr(db.sql());
    enqueue_job_dead(db.sql(), &targets, {77, "x@example.com", 3, "boom"}, now);
    tr.commit();
  }
  store::WriteBatcher writer(db.db(), 100);
  auto settings = settings_with(24h);
  settings.clock = &clock;
  OutboundSender sender(db.db(), writer, settings);

  EXPECT_EQ(sender.deliver_due(db.sql()), 1);
  EXPECT_EQ(db.count("SELECT attempts FROM webhook_outbox"), 1);
  EXPECT_EQ(sender.deliver_due(db.sql()), 0) << "waiting out its backoff";
  clock.advance(2s);
  EXPECT_EQ(sender.deliver_due(db.sql()), 1);
  EXPECT_EQ(db.count("SELECT attempts FROM webhook_outbox"), 2);
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'WARNING'"), 0);

  clock.advance(24h);
  EXPECT_EQ(sender.deliver_due(db.sql()), 1);
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM webhook_outbox WHERE status = 'failed'"), 1);
  clock.advance(24h);
  EXPECT_EQ(sender.deliver_due(db.sql()), 0) << "given up for good";
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'WARNING'"), 1);
  std::string message, metadata;
  db.sql() << "SELECT message, metadata FROM system_health_logs WHERE event_type = 'WARNING'",
      soci::into(message), soci::into(metadata);
  EXPECT_NE(message.find("evt_job_dead_77_3"), std::string::npos) << message;
  EXPECT_NE(message.find("http://127.0.0.1:1/hook"), std::string::npos) << message;
  EXPECT_EQ((message + metadata).find("whsec_test"), std::string::npos);
  sender.stop();
  writer.stop();
}

} // namespace sender_test
} // namespace usher::webhooks
