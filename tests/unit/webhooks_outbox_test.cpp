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
#include <usher/util/clock.hpp>
#include <usher/webhooks/outbox.hpp>

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
