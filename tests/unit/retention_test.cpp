// Unit tests for store/retention against a migrated temporary SQLite file and
// a ManualClock: which rows are pruned, which stay, and when a run is due.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

#include <unistd.h>

#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/retention.hpp>
#include <usher/util/clock.hpp>

#include "manual_clock.hpp"

namespace usher::store {
namespace {

using namespace std::chrono_literals;

class RetentionTest : public ::testing::Test {
protected:
  RetentionTest() : m_path(unique_path()), m_db("sqlite:" + m_path.string(), 5000ms) {}

  void SetUp() override {
    m_sql = m_db.connect();
    migrate(*m_sql, m_db.dialect());
  }

  void TearDown() override {
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }

  static std::filesystem::path unique_path() {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher-retention-test-" + std::to_string(getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + ".db");
  }

  std::string ago(std::chrono::hours age) const { return clock::iso8601(m_clock.wall() - age); }

  // A job in `status` last updated `age` ago, with `attempts` timeline rows.
  long long add_job(const std::string &status, std::chrono::hours age, int attempts) {
    const std::string at = ago(age);
    const std::string email = "job" + std::to_string(++m_rows) + "@example.com";
    long long id = 0;
    *m_sql << "INSERT INTO jobs (email, email_normalized, active_email, payload, status, "
              "attempts, run_after, created_at, updated_at) VALUES (:e, :n, "
              "CASE WHEN :s = 'dead' THEN NULL ELSE :n2 END, '{}', :s2, :a, :t, :t2, :t3) "
              "RETURNING id",
        soci::use(email), soci::use(email), soci::use(status), soci::use(email), soci::use(status),
        soci::use(attempts), soci::use(at), soci::use(at), soci::use(at), soci::into(id);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      const std::string outcome = status == "dead" ? "dead" : "succeeded";
      *m_sql << "INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, "
                "finished_at, duration_ms) VALUES (:j, :a, 'w', :o, :t, :t2, 5)",
          soci::use(id), soci::use(attempt), soci::use(outcome), soci::use(at), soci::use(at);
    }
    return id;
  }

  long long add_event(std::chrono::hours age) {
    const std::string at = ago(age);
    long long id = 0;
    *m_sql << "INSERT INTO system_health_logs (event_type, message, created_at) "
              "VALUES ('INFO', 'retention test', :t) RETURNING id",
        soci::use(at), soci::into(id);
    return id;
  }

  long long add_alert(const std::string &status, std::chrono::hours age,
                      std::optional<long long> event = std::nullopt) {
    const std::string at = ago(age);
    long long event_id = event.value_or(0);
    soci::indicator event_ind = event ? soci::i_ok : soci::i_null;
    long long id = 0;
    *m_sql << "INSERT INTO alert_outbox (health_log_id, chat_id, kind, text, status, "
              "next_attempt_at, created_at) VALUES (:h, '1', 'CRITICAL', 'x', :s, :t, :t2) "
              "RETURNING id",
        soci::use(event_id, event_ind), soci::use(status), soci::use(at), soci::use(at),
        soci::into(id);
    return id;
  }

  void add_idempotency_key(std::chrono::hours age) {
    const std::string at = ago(age);
    const std::string key = "key-" + std::to_string(++m_rows);
    *m_sql << "INSERT INTO idempotency_keys (token_id, idempotency_key, fingerprint, status_code, "
              "response_body, created_at) VALUES (1, :k, 'f', 201, '{}', :t)",
        soci::use(key), soci::use(at);
  }

  void add_session(std::chrono::hours expires_in_hours_from_now) {
    if (m_account == 0) {
      const std::string now = ago(0h);
      *m_sql << "INSERT INTO accounts (email, email_normalized, created_at) "
                "VALUES ('s@example.com', 's@example.com', :t) RETURNING id",
          soci::use(now), soci::into(m_account);
    }
    const std::string expires = clock::iso8601(m_clock.wall() + expires_in_hours_from_now);
    const std::string hash = "hash-" + std::to_string(++m_rows);
    const std::string now = ago(0h);
    *m_sql << "INSERT INTO sessions (account_id, token_hash, expires_at, created_at) "
              "VALUES (:a, :h, :e, :t)",
        soci::use(m_account), soci::use(hash), soci::use(expires), soci::use(now);
  }

  long long count(const std::string &table, const std::string &where = "1 = 1") {
    long long n = 0;
    *m_sql << "SELECT COUNT(*) FROM " + table + " WHERE " + where, soci::into(n);
    return n;
  }

  static RetentionSettings settings() {
    RetentionSettings s;
    s.jobs = 24h * 30;
    s.health_events = 24h * 7;
    s.alerts = 24h * 14;
    s.idempotency_keys = 24h;
    s.interval = 60s;
    s.batch_size = 10;
    s.max_batches = 20;
    return s;
  }

  std::filesystem::path m_path;
  Database m_db;
  std::unique_ptr<soci::session> m_sql;
  testing::ManualClock m_clock;
  int m_rows = 0;
  long long m_account = 0;
};

TEST_F(RetentionTest, old_succeeded_jobs_lose_their_attempts_but_keep_their_row) {
  const long long old_done = add_job("succeeded", 24h * 31, 2);
  const long long new_done = add_job("succeeded", 24h * 29, 1);
  const long long old_dead = add_job("dead", 24h * 90, 3);
  Retention retention(settings(), m_db.dialect(), m_clock);

  const auto counts = retention.run_if_due(*m_sql);
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->job_attempts, 2);
  EXPECT_EQ(count("job_attempts", "job_id = " + std::to_string(old_done)), 0);
  EXPECT_EQ(count("job_attempts", "job_id = " + std::to_string(new_done)), 1);
  EXPECT_EQ(count("job_attempts", "job_id = " + std::to_string(old_dead)), 3);
  // Every job row stays: the succeeded one still answers a second request 409.
  EXPECT_EQ(count("jobs"), 3);
}

TEST_F(RetentionTest, many_old_jobs_are_pruned_in_batches_of_the_configured_size) {
  for (int i = 0; i < 35; ++i) add_job("succeeded", 24h * 40, 1);
  RetentionSettings s = settings();
  s.max_batches = 2;
  Retention retention(s, m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->job_attempts, 20);
  EXPECT_EQ(count("job_attempts"), 15);
  m_clock.advance(60s);
  EXPECT_EQ(retention.run_if_due(*m_sql)->job_attempts, 15);
  EXPECT_EQ(count("job_attempts"), 0);
  EXPECT_EQ(count("jobs"), 35);
}

TEST_F(RetentionTest, old_health_events_go_and_alerts_pointing_at_them_keep_their_text) {
  const long long old_event = add_event(24h * 8);
  add_event(24h * 8);
  const long long recent_event = add_event(24h * 6);
  const long long alert = add_alert("sent", 24h * 2, old_event);
  Retention retention(settings(), m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->health_events, 2);
  EXPECT_EQ(count("system_health_logs"), 1);
  EXPECT_EQ(count("system_health_logs", "id = " + std::to_string(recent_event)), 1);
  EXPECT_EQ(count("alert_outbox", "id = " + std::to_string(alert) + " AND health_log_id IS NULL"),
            1);
}

TEST_F(RetentionTest, a_newer_event_written_first_does_not_hold_older_ones_back) {
  // Another instance's clock ran ahead, or rows were imported: ids are not
  // in time order.
  const long long newer = add_event(1h);
  add_event(24h * 9);
  add_event(24h * 8);
  Retention retention(settings(), m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->health_events, 2);
  EXPECT_EQ(count("system_health_logs"), 1);
  EXPECT_EQ(count("system_health_logs", "id = " + std::to_string(newer)), 1);
}

TEST_F(RetentionTest, many_old_events_go_in_batches_and_their_alerts_stay_linked_until_then) {
  long long last_event = 0;
  for (int i = 0; i < 25; ++i) last_event = add_event(24h * 8);
  const long long kept_event = add_event(24h);
  const long long alert_on_old = add_alert("pending", 1h, last_event);
  const long long alert_on_kept = add_alert("pending", 1h, kept_event);
  RetentionSettings s = settings();
  s.max_batches = 2;
  Retention retention(s, m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->health_events, 20);
  // The 21st to 25th old events are not pruned yet: their alert is linked.
  EXPECT_EQ(count("alert_outbox",
                  "id = " + std::to_string(alert_on_old) + " AND health_log_id IS NOT NULL"),
            1);
  m_clock.advance(60s);
  EXPECT_EQ(retention.run_if_due(*m_sql)->health_events, 5);
  EXPECT_EQ(count("system_health_logs"), 1);
  EXPECT_EQ(
      count("alert_outbox", "id = " + std::to_string(alert_on_old) + " AND health_log_id IS NULL"),
      1);
  EXPECT_EQ(count("alert_outbox", "id = " + std::to_string(alert_on_kept) +
                                      " AND health_log_id = " + std::to_string(kept_event)),
            1);
}

TEST_F(RetentionTest, settled_alerts_past_their_age_go_and_pending_ones_stay) {
  add_alert("sent", 24h * 15);
  add_alert("failed", 24h * 15);
  const long long pending = add_alert("pending", 24h * 15);
  const long long recent = add_alert("sent", 24h * 13);
  Retention retention(settings(), m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->alerts, 2);
  EXPECT_EQ(count("alert_outbox"), 2);
  EXPECT_EQ(count("alert_outbox",
                  "id IN (" + std::to_string(pending) + ", " + std::to_string(recent) + ")"),
            2);
}

TEST_F(RetentionTest, settled_outbound_events_past_the_alerts_age_go_and_pending_ones_stay) {
  const auto add_event = [this](const std::string &status, std::chrono::hours age) {
    const std::string at = ago(age);
    const std::string id = "evt_" + std::to_string(++m_rows);
    *m_sql << "INSERT INTO webhook_outbox (event_id, event_type, url, body, status, "
              "next_attempt_at, created_at) VALUES (:e, 'job.dead', 'http://x/', '{}', :s, :t, "
              ":t2)",
        soci::use(id), soci::use(status), soci::use(at), soci::use(at);
  };
  add_event("sent", 24h * 15);
  add_event("failed", 24h * 15);
  add_event("pending", 24h * 15);
  add_event("sent", 24h * 13);
  Retention retention(settings(), m_db.dialect(), m_clock);

  EXPECT_EQ(retention.run_if_due(*m_sql)->outbound_events, 2);
  EXPECT_EQ(count("webhook_outbox"), 2);
  EXPECT_EQ(count("webhook_outbox", "status = 'pending'"), 1);
}

TEST_F(RetentionTest, idempotency_keys_are_kept_for_their_ttl_and_expired_sessions_go) {
  add_idempotency_key(25h);
  add_idempotency_key(23h);
  add_session(-1h);
  add_session(1h);
  Retention retention(settings(), m_db.dialect(), m_clock);

  const auto counts = retention.run_if_due(*m_sql);
  EXPECT_EQ(counts->idempotency_keys, 1);
  EXPECT_EQ(counts->sessions, 1);
  EXPECT_EQ(count("idempotency_keys"), 1);
  EXPECT_EQ(count("sessions"), 1);

  // Two hours on, the younger key and the other session are past their time.
  m_clock.advance(2h);
  const auto later = retention.run_if_due(*m_sql);
  EXPECT_EQ(later->idempotency_keys, 1);
  EXPECT_EQ(later->sessions, 1);
  EXPECT_EQ(count("idempotency_keys"), 0);
  EXPECT_EQ(count("sessions"), 0);
}

TEST_F(RetentionTest, a_run_is_due_once_per_interval_on_the_injected_clock) {
  Retention retention(settings(), m_db.dialect(), m_clock);
  ASSERT_TRUE(retention.run_if_due(*m_sql).has_value());
  add_event(24h * 8);

  m_clock.advance(59s);
  EXPECT_FALSE(retention.run_if_due(*m_sql).has_value());
  EXPECT_EQ(count("system_health_logs"), 1);

  m_clock.advance(1s);
  const auto counts = retention.run_if_due(*m_sql);
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->health_events, 1);
  EXPECT_EQ(count("system_health_logs"), 0);
}

TEST_F(RetentionTest, nothing_old_means_nothing_pruned) {
  add_job("succeeded", 1h, 1);
  add_event(1h);
  add_alert("sent", 1h);
  add_idempotency_key(1h);
  Retention retention(settings(), m_db.dialect(), m_clock);
  EXPECT_EQ(retention.run_if_due(*m_sql)->total(), 0);
  EXPECT_EQ(count("job_attempts") + count("system_health_logs") + count("alert_outbox") +
                count("idempotency_keys"),
            4);
}

} // namespace
} // namespace usher::store
