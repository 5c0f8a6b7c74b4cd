// Unit tests for the schema's migrations (store/migrations.hpp) on SQLite:
// migration 10 rewrites the IN lists of the CHECKs as comparisons. The
// rules must be exactly as strict as before, and the statements on the hot
// paths must no longer build a throw-away table (OpenEphemeral) for them.
// Migrations 11 and 12 move the unique index of active jobs' emails onto
// `active_email`, tied to the status by a CHECK, for the jobs that exist
// at the upgrade too. Migration 14 keeps only dead jobs' emails in an index
// of their own, which status changes do not write.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

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

  // Whether `statement` opens the index `index` (its root page) for writing.
  bool writes_index(const std::string &statement, const std::string &index) {
    int root = 0;
    sql() << "SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND name = :n",
        soci::use(index), soci::into(root);
    EXPECT_NE(root, 0) << index;
    soci::rowset<soci::row> rows = sql().prepare << "EXPLAIN " + statement;
    for (const auto &row : rows) {
      // SOCI reads EXPLAIN's untyped columns as text.
      if (row.get<std::string>(1) == "OpenWrite" && row.get<std::string>(3) == std::to_string(root))
        return true;
    }
    return false;
  }

  bool builds_a_throwaway_table(const std::string &statement) {
    for (const auto &name : opcodes(statement)) {
      if (name == "OpenEphemeral") return true;
    }
    return false;
  }

  // A job as usher writes one: active_email is the email unless it is dead.
  void insert_job(const std::string &email, const std::string &status) {
    insert_job(email, status, status == "dead" ? std::nullopt : std::optional(email));
  }

  void insert_job(const std::string &email, const std::string &status,
                  const std::optional<std::string> &active_email) {
    std::string active = active_email.value_or("");
    soci::indicator active_ind = active_email ? soci::i_ok : soci::i_null;
    sql() << "INSERT INTO jobs (email, email_normalized, active_email, payload, status, "
             "run_after, created_at, updated_at) VALUES (:e, :n, :a, '{}', :s, 't', 't', 't')",
        soci::use(email), soci::use(email), soci::use(active, active_ind), soci::use(status);
  }

  testing::MigratedDatabase m_database;
};

TEST_F(MigrationsTest, TheJobsWritesBuildNoThrowawayTable) {
  EXPECT_FALSE(builds_a_throwaway_table(
      "INSERT INTO jobs (email, email_normalized, active_email, payload, status, run_after, "
      "created_at, updated_at) VALUES ('a', 'a', 'a', '{}', 'queued', 't', 't', 't') "
      "ON CONFLICT DO NOTHING"));
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
  sql() << "UPDATE jobs SET status = 'dead', active_email = NULL WHERE status = 'queued'";
  EXPECT_NO_THROW(insert_job("one@example.com", "running"));
}

// active_email follows the status, or the statement fails: a job that dies
// but keeps it would block its email for ever; one that is not dead without
// it would let a second active job in.
TEST_F(MigrationsTest, ActiveEmailIsTheEmailExactlyWhileTheJobIsNotDead) {
  EXPECT_THROW(insert_job("a@example.com", "queued", std::nullopt), soci::soci_error);
  EXPECT_THROW(insert_job("a@example.com", "running", std::string("b@example.com")),
               soci::soci_error);
  EXPECT_THROW(insert_job("a@example.com", "dead", std::string("a@example.com")), soci::soci_error);
  insert_job("a@example.com", "queued");
  EXPECT_THROW(sql() << "UPDATE jobs SET status = 'dead'", soci::soci_error);
  EXPECT_THROW(sql() << "UPDATE jobs SET active_email = NULL", soci::soci_error);
  EXPECT_NO_THROW(sql() << "UPDATE jobs SET status = 'running'");
  EXPECT_NO_THROW(sql() << "UPDATE jobs SET status = 'dead', active_email = NULL");
  EXPECT_NO_THROW(sql() << "UPDATE jobs SET status = 'queued', active_email = email_normalized");
}

// SQLite rewrites an index entry when a column its WHERE names changes:
// the index on active_email names none, so a status change leaves it alone.
TEST_F(MigrationsTest, AStatusChangeDoesNotRewriteTheActiveEmailIndex) {
  EXPECT_FALSE(writes_index("UPDATE jobs SET status = 'running', updated_at = 't' WHERE id = 1",
                            "jobs_active_email_key"));
  EXPECT_FALSE(writes_index("UPDATE jobs SET status = 'succeeded', user_id = 1, lease_owner = "
                            "NULL, updated_at = 't' WHERE id = 1 AND status = 'running'",
                            "jobs_active_email_key"));
  // It is written when the job dies, the change it exists for.
  EXPECT_TRUE(writes_index("UPDATE jobs SET status = 'dead', active_email = NULL WHERE id = 1",
                           "jobs_active_email_key"));
}

// Migration 14: the index of dead jobs' emails is written when a job dies
// or is retried, not by the claim or the completion.
TEST_F(MigrationsTest, AStatusChangeDoesNotRewriteTheDeadEmailIndex) {
  EXPECT_FALSE(writes_index("UPDATE jobs SET status = 'running', updated_at = 't' WHERE id = 1",
                            "jobs_dead_email"));
  EXPECT_FALSE(writes_index("UPDATE jobs SET status = 'succeeded', user_id = 1, lease_owner = "
                            "NULL, updated_at = 't' WHERE id = 1 AND status = 'running'",
                            "jobs_dead_email"));
  EXPECT_TRUE(writes_index("UPDATE jobs SET status = 'dead', active_email = NULL WHERE id = 1",
                           "jobs_dead_email"));
  insert_job("live@example.com", "queued");
  insert_job("gone@example.com", "dead");
  // The index's own entries (its leaf cells, from SQLite's dbstat table).
  long long entries = -1;
  sql() << "SELECT SUM(ncell) FROM dbstat WHERE name = 'jobs_dead_email' AND pagetype = 'leaf'",
      soci::into(entries);
  EXPECT_EQ(entries, 1) << "a job that is not dead is not in it";
  int old_index = -1;
  sql() << "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'jobs_email_normalized_id'",
      soci::into(old_index);
  EXPECT_EQ(old_index, 0);
}

// An upgrade: the jobs that exist when migration 11 runs get active_email
// from their status, and the CHECK of migration 12 holds for them.
TEST(MigrationsUpgrade, JobsThatExistGetActiveEmailFromTheirStatus) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("usher_unit_upgrade_" + std::to_string(::getpid()) + ".db");
  {
    Database db("sqlite:" + path.string(), std::chrono::milliseconds(5000));
    auto sql = db.connect();
    ASSERT_EQ(migrate(*sql, Dialect::sqlite, 10), 10);
    for (const char *status : {"queued", "running", "succeeded", "dead"}) {
      const std::string email = std::string(status) + "@example.com";
      const std::string state = status;
      *sql << "INSERT INTO jobs (email, email_normalized, payload, status, run_after, "
              "created_at, updated_at) VALUES (:e, :n, '{}', :s, 't', 't', 't')",
          soci::use(email), soci::use(email), soci::use(state);
    }
    EXPECT_EQ(migrate(*sql, Dialect::sqlite), latest_migration() - 10);
    int mismatched = -1;
    *sql << "SELECT COUNT(*) FROM jobs WHERE active_email IS NOT "
            "(CASE WHEN status = 'dead' THEN NULL ELSE email_normalized END)",
        soci::into(mismatched);
    EXPECT_EQ(mismatched, 0);
    EXPECT_THROW(*sql << "UPDATE jobs SET status = 'dead' WHERE status = 'queued'",
                 soci::soci_error);
    std::string integrity;
    *sql << "PRAGMA integrity_check", soci::into(integrity);
    EXPECT_EQ(integrity, "ok");
  }
  for (const char *suffix : {"", "-wal", "-shm"}) {
    std::error_code ignored;
    std::filesystem::remove(path.string() + suffix, ignored);
  }
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
