// Unit tests for the schema's migrations (store/migrations.hpp) on SQLite:
// migration 10 rewrites the IN lists of the CHECKs and of the jobs' partial
// unique index as comparisons. The rules must be exactly as strict as
// before, and the statements on the hot paths must no longer build a
// throw-away table (OpenEphemeral) for them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <usher/store/migrations.hpp>

#include "temp_database.hpp"

namespace usher::store {
namespace {

class MigrationsTest : public ::testing::Test {
protected:
  MigrationsTest() : m_database("migrations") {}

  soci::session &sql() { return m_database.sql(); }

  // The opcodes SQLite compiles `statement` into.
  std::vector<std::string> opcodes(const std::string &statement) {
    soci::rowset<soci::row> rows = sql().prepare << "EXPLAIN " + statement;
    std::vector<std::string> names;
    for (const auto &row : rows) names.push_back(row.get<std::string>(1));
    return names;
  }

  bool builds_a_throwaway_table(const std::string &statement) {
    for (const auto &name : opcodes(statement)) {
      if (name == "OpenEphemeral") return true;
    }
    return false;
  }

  void insert_job(const std::string &email, const std::string &status) {
    sql() << "INSERT INTO jobs (email, email_normalized, payload, status, run_after, created_at, "
             "updated_at) VALUES (:e, :n, '{}', :s, 't', 't', 't')",
        soci::use(email), soci::use(email), soci::use(status);
  }

  testing::MigratedDatabase m_database;
};

TEST_F(MigrationsTest, TheJobsWritesBuildNoThrowawayTable) {
  EXPECT_FALSE(builds_a_throwaway_table(
      "INSERT INTO jobs (email, email_normalized, payload, status, run_after, created_at, "
      "updated_at) VALUES ('a', 'a', '{}', 'queued', 't', 't', 't') ON CONFLICT DO NOTHING"));
  EXPECT_FALSE(builds_a_throwaway_table(
      "UPDATE jobs SET status = 'succeeded', updated_at = 't' WHERE id = 1"));
  EXPECT_FALSE(builds_a_throwaway_table(
      "INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, finished_at, "
      "duration_ms) VALUES (1, 1, 'w', 'succeeded', 't', 't', 0)"));
  EXPECT_FALSE(builds_a_throwaway_table("INSERT INTO system_health_logs (event_type, message, "
                                        "created_at) VALUES ('INFO', 'm', 't')"));
  EXPECT_FALSE(builds_a_throwaway_table("UPDATE alert_outbox SET status = 'sent' WHERE id = 1"));
  EXPECT_FALSE(builds_a_throwaway_table("UPDATE webhook_outbox SET status = 'sent' WHERE id = 1"));
}

TEST_F(MigrationsTest, TheChecksRefuseWhatTheyRefusedBefore) {
  EXPECT_THROW(insert_job("a@example.com", "waiting"), soci::soci_error);
  for (const char *status : {"queued", "running", "succeeded", "dead"}) {
    EXPECT_NO_THROW(insert_job(std::string(status) + "@example.com", status)) << status;
  }
  EXPECT_THROW(sql() << "INSERT INTO system_health_logs (event_type, message, created_at) "
                        "VALUES ('NOTICE', 'm', 't')",
               soci::soci_error);
  EXPECT_THROW(sql() << "INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, "
                        "finished_at, duration_ms) VALUES (1, 1, 'w', 'lost', 't', 't', 0)",
               soci::soci_error);
  EXPECT_THROW(sql() << "INSERT INTO alert_outbox (chat_id, kind, text, status, next_attempt_at, "
                        "created_at) VALUES ('1', 'k', 't', 'queued', 't', 't')",
               soci::soci_error);
}

// One job per email that is not dead: any number of dead ones beside it.
TEST_F(MigrationsTest, TheUniqueIndexStillAllowsOneJobPerEmailThatIsNotDead) {
  insert_job("one@example.com", "dead");
  insert_job("one@example.com", "dead");
  insert_job("one@example.com", "queued");
  for (const char *status : {"queued", "running", "succeeded"}) {
    EXPECT_THROW(insert_job("one@example.com", status), soci::soci_error) << status;
  }
  sql() << "UPDATE jobs SET status = 'dead' WHERE status = 'queued'";
  EXPECT_NO_THROW(insert_job("one@example.com", "running"));
}

TEST_F(MigrationsTest, TheRewrittenSchemaIsIntactAndMigratingAgainChangesNothing) {
  std::string integrity;
  sql() << "PRAGMA integrity_check", soci::into(integrity);
  EXPECT_EQ(integrity, "ok");
  int writable = 1;
  sql() << "PRAGMA writable_schema", soci::into(writable);
  EXPECT_EQ(writable, 0);
  std::string jobs;
  sql() << "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'jobs'", soci::into(jobs);
  EXPECT_EQ(jobs.find("status IN"), std::string::npos) << jobs;
  EXPECT_EQ(migrate(sql(), Dialect::sqlite), 0);
}

} // namespace
} // namespace usher::store
