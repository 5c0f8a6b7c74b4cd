// Unit tests for jobs/timeline and jobs/attempts against a migrated temporary
// SQLite database: which rows make a job's story, and in what order.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

#include <unistd.h>

#include <usher/health/health_log.hpp>
#include <usher/jobs/attempts.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/jobs/provisioner.hpp>
#include <usher/jobs/timeline.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/util/crypto.hpp>

namespace usher::jobs {
namespace {

using namespace std::chrono_literals;

class JobsTimelineTest : public ::testing::Test {
protected:
  JobsTimelineTest() : m_path(unique_path()), m_db("sqlite:" + m_path.string(), 5000ms) {}

  void SetUp() override {
    crypto::initialise();
    m_sql = m_db.connect();
    store::migrate(*m_sql, m_db.dialect());
  }

  void TearDown() override {
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }

  std::int64_t enqueue(const std::string &email) {
    IntakeStatements intake(*m_sql);
    provisioning::NewUser user{email, "Tess Timeline", std::nullopt, std::nullopt};
    auto queued = intake.enqueue(user, {7, "tess (token 7)", ""}, 24h);
    EXPECT_TRUE(queued.has_value());
    return queued ? queued->job_id : 0;
  }

  static std::filesystem::path unique_path() {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher-timeline-test-" + std::to_string(getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + ".db");
  }

  std::filesystem::path m_path;
  store::Database m_db;
  std::unique_ptr<soci::session> m_sql;
};

TEST_F(JobsTimelineTest, UnknownJobHasNoTimeline) {
  EXPECT_FALSE(timeline(*m_sql, 42).has_value());
  EXPECT_FALSE(newest_job_for_email(*m_sql, "nobody@example.com").has_value());
}

TEST_F(JobsTimelineTest, RequestAttemptsEventsInTimeOrder) {
  const auto id = enqueue("tess@example.com");
  // Written out of order on purpose: the timeline sorts by time.
  record_attempt(*m_sql, {id, 2, "w:1:a:0", "succeeded", std::nullopt, "2999-01-01T00:00:03.000Z",
                          "2999-01-01T00:00:03.010Z", 10});
  record_attempt(*m_sql, {id, 1, "w:1:a:0", "failed", "boom", "2999-01-01T00:00:01.000Z",
                          "2999-01-01T00:00:01.005Z", 5});
  health::record(*m_sql, health::EventType::info, "about the job", {{"job_id", id}}, "i");
  health::record(*m_sql, health::EventType::info, "about another job", {{"job_id", id + 100}}, "i");
  health::record(*m_sql, health::EventType::info, "a job id as text", {{"job_id", "x"}}, "i");

  const auto found = timeline(*m_sql, id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->created_by, "tess (token 7)");
  const auto &entries = found->entries;
  ASSERT_EQ(entries.size(), 4U) << entries.dump(2);
  EXPECT_EQ(entries[0]["kind"], "request");
  EXPECT_EQ(entries[0]["mode"], "async_queue");
  EXPECT_EQ(entries[0]["idempotency_key"], false);
  EXPECT_EQ(entries[1]["kind"], "event");
  EXPECT_EQ(entries[1]["message"], "about the job");
  EXPECT_EQ(entries[2]["kind"], "attempt");
  EXPECT_EQ(entries[2]["number"], 1);
  EXPECT_EQ(entries[2]["error"], "boom");
  EXPECT_EQ(entries[3]["number"], 2);
  EXPECT_EQ(entries[3]["outcome"], "succeeded");
  EXPECT_TRUE(entries[3]["error"].is_null());
  EXPECT_EQ(newest_job_for_email(*m_sql, "tess@example.com"), id);
}

// The newest job of an email, dead or not, through the two indexes that
// hold a job's email (migration 14; that it reads no whole table:
// ProvisionQueuedTest.NoStatementOfTheDrainOrOfALookupReadsAWholeTableOrSorts).
TEST_F(JobsTimelineTest, TheNewestJobOfAnEmailIsFoundWhetherItDiedOrNot) {
  const auto first = enqueue("dora@example.com");
  *m_sql << "UPDATE jobs SET status = 'dead', active_email = NULL WHERE id = :id",
      soci::use(static_cast<long long>(first));
  EXPECT_EQ(newest_job_for_email(*m_sql, "dora@example.com"), first) << "only a dead job";
  const auto second = enqueue("dora@example.com");
  EXPECT_EQ(newest_job_for_email(*m_sql, "dora@example.com"), second) << "a newer live job";
  *m_sql << "UPDATE jobs SET status = 'dead', active_email = NULL WHERE id = :id",
      soci::use(static_cast<long long>(second));
  // The older one retried: live again, but the dead one is newer.
  *m_sql << "UPDATE jobs SET status = 'queued', active_email = email_normalized WHERE id = :id",
      soci::use(static_cast<long long>(first));
  EXPECT_EQ(newest_job_for_email(*m_sql, "dora@example.com"), second);
  EXPECT_FALSE(newest_job_for_email(*m_sql, "dor@example.com").has_value());
}

TEST_F(JobsTimelineTest, InlineProvisioningIsSyncDirect) {
  provisioning::NewUser user{"ivy@example.com", "Ivy Inline", std::nullopt, std::nullopt};
  auto created = jobs::provision_inline(*m_sql, user, {3, "ivy (token 3)", ""}, 24h);
  ASSERT_TRUE(created.has_value());
  const auto found = timeline(*m_sql, created->job_id);
  ASSERT_TRUE(found.has_value());
  ASSERT_EQ(found->entries.size(), 1U);
  EXPECT_EQ(found->entries[0]["mode"], "sync_direct");
  EXPECT_EQ(found->entries[0]["provisioned_inline"], true);
  EXPECT_EQ(found->job.status, JobStatus::succeeded);
}

} // namespace
} // namespace usher::jobs
