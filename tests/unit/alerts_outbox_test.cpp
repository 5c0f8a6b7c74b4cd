// Unit tests for the alert outbox and throttling on a temporary SQLite file:
// health::record with an alert policy writes the event and its messages in
// one transaction, folds repeats, sums them up when the window ends, sends
// RESOLVED when a CRITICAL clears; the sender's claim/settle statements.
// Time is a ManualClock the tests advance: windows end exactly when they say.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

#include <usher/alerts/conditions.hpp>
#include <usher/alerts/outbox.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/health/health_log.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/util/clock.hpp>

#include "manual_clock.hpp"

namespace usher::alerts {
namespace {

using namespace std::chrono_literals;
using health::EventType;

class AlertsOutbox : public ::testing::Test {
protected:
  AlertsOutbox()
      : m_path(unique_path()), m_db("sqlite:" + m_path.string(), std::chrono::milliseconds(5000)),
        m_sql(m_db.connect()) {
    store::migrate(*m_sql, m_db.dialect());
    m_policy.chat_ids = {"111", "-222"};
    m_policy.kinds = {AlertKind::critical, AlertKind::switch_, AlertKind::error,
                      AlertKind::resolved};
    m_policy.throttle = 60s;
    m_policy.instance = "unit";
    m_policy.clock = &m_clock;
  }
  ~AlertsOutbox() override {
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }

  // One event in its own transaction, as a writer batch would record it.
  std::int64_t record(EventType type, const std::string &message, const std::string &condition,
                      const AlertPolicy *policy) {
    soci::transaction tr(*m_sql);
    const auto id =
        health::record(*m_sql, type, message, {{"n", message}}, "unit", {policy, condition});
    tr.commit();
    return id;
  }
  std::int64_t record(EventType type, const std::string &message,
                      const std::string &condition = "c") {
    return record(type, message, condition, &m_policy);
  }

  long long count(const std::string &query) {
    long long n = -1;
    *m_sql << query, soci::into(n);
    return n;
  }
  std::string text_of(long long outbox_id) {
    std::string text;
    *m_sql << "SELECT text FROM alert_outbox WHERE id = :id", soci::use(outbox_id),
        soci::into(text);
    return text;
  }
  std::string latest_text() {
    long long id = 0;
    *m_sql << "SELECT MAX(id) FROM alert_outbox", soci::into(id);
    return text_of(id);
  }

  static std::filesystem::path unique_path() {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher_unit_alerts_" + std::to_string(getpid()) + "_" + std::to_string(counter++) +
            "_" + std::to_string(std::random_device{}()) + ".db");
  }

  std::string now_text() const { return clock::iso8601(m_clock.wall()); }

  testing::ManualClock m_clock;
  std::filesystem::path m_path;
  store::Database m_db;
  std::unique_ptr<soci::session> m_sql;
  AlertPolicy m_policy;
};

TEST_F(AlertsOutbox, FirstCriticalAlertsEveryChatAndRepeatsFoldIntoOneLogRow) {
  const auto first = record(EventType::critical, "queue down");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(record(EventType::critical, "queue down again"), first);
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs"), 1);
  EXPECT_EQ(count("SELECT repeat_count FROM system_health_logs"), 5);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2);
  EXPECT_EQ(
      count("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'CRITICAL' AND status = 'pending' "
            "AND health_log_id = " +
            std::to_string(first)),
      2);
  EXPECT_EQ(count("SELECT COUNT(DISTINCT chat_id) FROM alert_outbox"), 2);
  EXPECT_EQ(count("SELECT suppressed FROM alert_conditions WHERE condition_key = 'CRITICAL:c'"), 4);
  EXPECT_NE(text_of(1).find("\U0001F6A8 <b>CRITICAL</b>\nqueue down\n"), std::string::npos);
}

TEST_F(AlertsOutbox, OccurrencesCountedInMemoryFoldLikeSingleRecords) {
  // What health::FoldedEvent writes: five occurrences in one call, then three.
  soci::transaction tr(*m_sql);
  const auto first =
      health::record(*m_sql, EventType::critical, "queue down", {}, "unit", {&m_policy, "c"}, 5);
  EXPECT_EQ(
      health::record(*m_sql, EventType::critical, "queue down", {}, "unit", {&m_policy, "c"}, 3),
      first);
  tr.commit();
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs"), 1);
  EXPECT_EQ(count("SELECT repeat_count FROM system_health_logs"), 8);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2) << "one message per chat, once";
  EXPECT_EQ(count("SELECT suppressed FROM alert_conditions WHERE condition_key = 'CRITICAL:c'"), 7);
}

TEST_F(AlertsOutbox, OccurrencesOfAnEventThatDoesNotFoldAreOneRowWithTheirCount) {
  soci::transaction tr(*m_sql);
  health::record(*m_sql, EventType::warning, "slow", {}, "unit", {}, 4);
  tr.commit();
  EXPECT_EQ(count("SELECT repeat_count FROM system_health_logs WHERE event_type = 'WARNING'"), 4);
}

TEST_F(AlertsOutbox, SwitchAndErrorKeepARowEachButAlertOncePerWindow) {
  for (int i = 0; i < 3; ++i)
    record(EventType::switch_, "switch " + std::to_string(i), "system_mode");
  for (int i = 0; i < 3; ++i) record(EventType::error, "job dead " + std::to_string(i), "job_dead");
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs"), 6);
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs WHERE repeat_count = 1"), 6);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'SWITCH'"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'ERROR'"), 2);
}

TEST_F(AlertsOutbox, ConditionsAreThrottledApart) {
  record(EventType::error, "a", "job_dead");
  record(EventType::error, "b", "other");
  record(EventType::critical, "c", "job_dead");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 6);
}

TEST_F(AlertsOutbox, WarningAndInfoNeverAlert) {
  record(EventType::warning, "w");
  record(EventType::info, "i");
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_conditions"), 0);
}

TEST_F(AlertsOutbox, WithoutAPolicyEventsAreOnlyLogged) {
  record(EventType::critical, "x", "c", nullptr);
  record(EventType::critical, "x", "c", nullptr);
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 0);
}

TEST_F(AlertsOutbox, AlertsOffStillFoldTheLog) {
  AlertPolicy off = m_policy;
  off.chat_ids.clear();
  for (int i = 0; i < 3; ++i) record(EventType::critical, "x", "c", &off);
  record(EventType::switch_, "s", "system_mode", &off);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_conditions"), 1) << "only the CRITICAL is tracked";
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'SWITCH'"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'CRITICAL'"), 1);
  EXPECT_EQ(count("SELECT repeat_count FROM system_health_logs WHERE event_type = 'CRITICAL'"), 3);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 0);
}

TEST_F(AlertsOutbox, OnlyConfiguredKindsAlert) {
  AlertPolicy critical_only = m_policy;
  critical_only.kinds = {AlertKind::critical};
  record(EventType::switch_, "s", "system_mode", &critical_only);
  record(EventType::error, "e", "job_dead", &critical_only);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_conditions"), 0) << "nothing to throttle";
  record(EventType::critical, "c", "q", &critical_only);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2);
}

TEST_F(AlertsOutbox, TheSummaryGoesWhenTheWindowEndsAndTheWindowRollsOn) {
  m_policy.throttle = 300ms;
  m_policy.chat_ids = {"111"};
  const auto first = record(EventType::critical, "down");
  for (int i = 0; i < 3; ++i) record(EventType::critical, "down " + std::to_string(i));
  EXPECT_TRUE(due_summaries(*m_sql, now_text(), 10).empty());
  m_clock.advance(299ms);
  EXPECT_TRUE(due_summaries(*m_sql, now_text(), 10).empty()) << "due before the window ended";
  m_clock.advance(1ms);
  const auto keys = due_summaries(*m_sql, now_text(), 10);
  ASSERT_EQ(keys, std::vector<std::string>{"CRITICAL:c"}) << "not due when the window ended";
  {
    soci::transaction tr(*m_sql);
    const auto now = m_clock.wall();
    auto state = lock_condition(*m_sql, keys[0], AlertKind::critical, clock::iso8601(now));
    EXPECT_EQ(state.suppressed, 3);
    EXPECT_EQ(state.health_log_id, first);
    EXPECT_TRUE(close_window(*m_sql, m_policy, state, now));
    EXPECT_FALSE(close_window(*m_sql, m_policy, state, now)) << "twice";
    tr.commit();
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2);
  const std::string summary = latest_text();
  EXPECT_NE(summary.find("(repeated)\n\u2026and 3 more in the last 300 ms\nLatest: down 2"),
            std::string::npos)
      << summary;
  // The window rolled on: a repeat right after is counted, in a new log row.
  const auto next = record(EventType::critical, "down again");
  EXPECT_NE(next, first);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2);
  EXPECT_EQ(count("SELECT suppressed FROM alert_conditions"), 1);
  // That window ends with its one repeat summed up; the window after it ends
  // with nothing folded and sends nothing; the next occurrence alerts at once.
  m_clock.advance(300ms);
  {
    soci::transaction tr(*m_sql);
    const auto now = m_clock.wall();
    auto state = lock_condition(*m_sql, "CRITICAL:c", AlertKind::critical, clock::iso8601(now));
    EXPECT_TRUE(close_window(*m_sql, m_policy, state, now)); // the one repeat
    tr.commit();
  }
  m_clock.advance(300ms);
  EXPECT_TRUE(due_summaries(*m_sql, now_text(), 10).empty());
  record(EventType::critical, "down once more");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 4);
  EXPECT_NE(latest_text().find("<b>CRITICAL</b>\ndown once more\n"), std::string::npos)
      << latest_text();
}

TEST_F(AlertsOutbox, ASummaryNobodySentIsWrittenByTheNextEvent) {
  m_policy.throttle = 200ms;
  m_policy.chat_ids = {"111"};
  record(EventType::error, "dead 1", "job_dead");
  record(EventType::error, "dead 2", "job_dead");
  record(EventType::error, "dead 3", "job_dead");
  m_clock.advance(199ms);
  record(EventType::error, "dead 3b", "job_dead");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 1) << "a summary before the window ended";
  m_clock.advance(1ms);
  record(EventType::error, "dead 4", "job_dead");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 2);
  EXPECT_NE(latest_text().find("\u2026and 3 more in the last 200 ms\nLatest: dead 3b"),
            std::string::npos)
      << latest_text();
}

TEST_F(AlertsOutbox, ResolvedFollowsAnActiveCriticalOnly) {
  m_policy.chat_ids = {"111"};
  EXPECT_FALSE(health::record_resolved(*m_sql, "fine", {}, "unit", {&m_policy, "q"}));
  record(EventType::critical, "queue <down>", "q");
  record(EventType::critical, "queue still down", "q");
  std::optional<std::int64_t> resolved;
  {
    soci::transaction tr(*m_sql);
    resolved = health::record_resolved(*m_sql, "queue is back", {{"after_s", 3}}, "unit",
                                       {&m_policy, "q"});
    tr.commit();
  }
  ASSERT_TRUE(resolved);
  EXPECT_EQ(count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'INFO' AND id = " +
                  std::to_string(*resolved)),
            1);
  // CRITICAL, the summary of the one repeat, then RESOLVED.
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox"), 3);
  EXPECT_NE(text_of(2).find("\u2026and 1 more"), std::string::npos) << text_of(2);
  const std::string notice = text_of(3);
  EXPECT_NE(notice.find("\u2705 <b>RESOLVED</b>\nqueue is back\n"), std::string::npos) << notice;
  EXPECT_NE(notice.find("<b>Was:</b> queue still down"), std::string::npos) << notice;
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'RESOLVED'"), 1);
  // Resolved once; the next failure alerts at once.
  EXPECT_FALSE(health::record_resolved(*m_sql, "fine", {}, "unit", {&m_policy, "q"}));
  record(EventType::critical, "down again", "q");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'CRITICAL'"), 3);
}

TEST_F(AlertsOutbox, ClaimIsALeaseAndEveryOutcomeIsRecorded) {
  m_policy.chat_ids = {"111"};
  record(EventType::critical, "x");
  const auto now = m_clock.wall();
  const std::string now_text = clock::iso8601(now);
  EXPECT_TRUE(has_due(*m_sql, now_text));
  auto claimed = claim_next(*m_sql, now_text, clock::iso8601(now + 30s));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->chat_id, "111");
  EXPECT_EQ(claimed->kind, "CRITICAL");
  EXPECT_EQ(claimed->attempts, 0);
  EXPECT_FALSE(has_due(*m_sql, now_text));
  EXPECT_FALSE(claim_next(*m_sql, now_text, clock::iso8601(now + 30s))) << "claimed twice";
  EXPECT_TRUE(has_due(*m_sql, clock::iso8601(now + 31s))) << "a dead sender's lease ends";

  schedule_retry(*m_sql, claimed->id, now_text, "HTTP 500: down");
  EXPECT_EQ(count("SELECT attempts FROM alert_outbox"), 1);
  claimed = claim_next(*m_sql, now_text, clock::iso8601(now + 30s));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->attempts, 1);
  release(*m_sql, claimed->id, now_text);
  EXPECT_EQ(count("SELECT attempts FROM alert_outbox"), 1) << "a release is no attempt";
  EXPECT_EQ(move_chat(*m_sql, "111", "-100111"), 1);
  mark_sent(*m_sql, claimed->id, "-100111", now_text);
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE status = 'sent' AND chat_id = '-100111' "
                  "AND attempts = 2 AND sent_at IS NOT NULL AND last_error IS NULL"),
            1);
  record(EventType::error, "y", "other");
  m_clock.advance(1s);
  const auto later = m_clock.wall();
  claimed = claim_next(*m_sql, clock::iso8601(later), clock::iso8601(later + 30s));
  ASSERT_TRUE(claimed);
  mark_failed(*m_sql, claimed->id, "HTTP 400: chat not found");
  EXPECT_EQ(count("SELECT COUNT(*) FROM alert_outbox WHERE status = 'failed'"), 1);
  EXPECT_FALSE(has_due(*m_sql, clock::iso8601(now + 1h)));
}

TEST_F(AlertsOutbox, EachChatGetsItsMessagesInTheOrderTheyWereWritten) {
  m_policy.chat_ids = {"111", "222"};
  record(EventType::critical, "queue down", "q");
  const auto now = m_clock.wall();
  const std::string now_text = clock::iso8601(now);
  // The CRITICAL to 111 fails and waits 10 s for its retry; 222's is sent.
  auto first = claim_next(*m_sql, now_text, clock::iso8601(now + 30s));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->chat_id, "111");
  schedule_retry(*m_sql, first->id, clock::iso8601(now + 10s), "timed out");
  auto other = claim_next(*m_sql, now_text, clock::iso8601(now + 30s));
  ASSERT_TRUE(other);
  ASSERT_EQ(other->chat_id, "222");
  mark_sent(*m_sql, other->id, "222", now_text);

  // The queue recovers at once: the RESOLVED to 222 goes, 111's waits behind
  // its CRITICAL.
  ASSERT_TRUE(health::record_resolved(*m_sql, "queue back", {}, "unit", {&m_policy, "q"}));
  auto resolved = claim_next(*m_sql, now_text, clock::iso8601(now + 30s));
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->chat_id, "222");
  EXPECT_EQ(resolved->kind, "RESOLVED");
  mark_sent(*m_sql, resolved->id, "222", now_text);
  EXPECT_FALSE(has_due(*m_sql, now_text)) << "111's RESOLVED is not due before its CRITICAL";
  EXPECT_FALSE(claim_next(*m_sql, now_text, clock::iso8601(now + 30s)));

  // At the retry: the CRITICAL first, then (while it is leased, and after it)
  // the RESOLVED.
  const std::string retry_text = clock::iso8601(now + 10s);
  auto again = claim_next(*m_sql, retry_text, clock::iso8601(now + 40s));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, first->id);
  EXPECT_FALSE(claim_next(*m_sql, retry_text, clock::iso8601(now + 40s)))
      << "the RESOLVED went while its CRITICAL was being sent";
  mark_sent(*m_sql, again->id, "111", retry_text);
  auto last = claim_next(*m_sql, retry_text, clock::iso8601(now + 40s));
  ASSERT_TRUE(last);
  EXPECT_EQ(last->chat_id, "111");
  EXPECT_EQ(last->kind, "RESOLVED");
  // A message that failed for good does not hold the chat up.
  mark_failed(*m_sql, last->id, "HTTP 400: message is too long");
  record(EventType::error, "a job died", "jobs");
  EXPECT_TRUE(has_due(*m_sql, clock::iso8601(m_clock.wall())));
}

} // namespace
} // namespace usher::alerts
