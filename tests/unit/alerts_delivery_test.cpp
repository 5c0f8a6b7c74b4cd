// Unit tests for alerts/telegram (reading Bot API answers, the request body)
// and alerts/delivery (backoff, retry_after, give-up, no retry on 400).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <usher/alerts/delivery.hpp>
#include <usher/alerts/telegram.hpp>

namespace usher::alerts {
namespace {

using namespace std::chrono_literals;
using Outcome = SendResult::Outcome;
using Action = Decision::Action;

TEST(AlertsTelegram, ReadsTheBotApiAnswers) {
  EXPECT_EQ(interpret_response(200, R"({"ok":true,"result":{"message_id":1}})").outcome,
            Outcome::delivered);

  const auto bad = interpret_response(
      400, R"({"ok":false,"error_code":400,"description":"Bad Request: chat not found"})");
  EXPECT_EQ(bad.outcome, Outcome::rejected);
  EXPECT_EQ(bad.description, "Bad Request: chat not found");
  EXPECT_EQ(bad.http_status, 400);

  const auto limited = interpret_response(
      429, R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7",)"
           R"("parameters":{"retry_after":7}})");
  EXPECT_EQ(limited.outcome, Outcome::rate_limited);
  EXPECT_EQ(limited.retry_after, 7s);

  const auto moved = interpret_response(
      400, R"({"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded",)"
           R"("parameters":{"migrate_to_chat_id":-1001234567890123}})");
  EXPECT_EQ(moved.outcome, Outcome::migrated);
  EXPECT_EQ(moved.migrate_to_chat_id, "-1001234567890123");

  EXPECT_EQ(
      interpret_response(403, R"({"ok":false,"error_code":403,"description":"Forbidden"})").outcome,
      Outcome::rejected);
  EXPECT_EQ(interpret_response(401, "").outcome, Outcome::rejected);
  const auto down = interpret_response(502, "<html>Bad Gateway</html>");
  EXPECT_EQ(down.outcome, Outcome::failed);
  EXPECT_EQ(down.description, "HTTP 502");
  EXPECT_EQ(interpret_response(500, R"({"ok":false,"error_code":500})").outcome, Outcome::failed);
  EXPECT_EQ(interpret_response(200, "not json").outcome, Outcome::failed);
  EXPECT_EQ(interpret_response(429, "{}").retry_after, 0s);
}

TEST(AlertsTelegram, RequestBodyUsesHtmlAndNumericChatIds) {
  auto body = nlohmann::json::parse(send_message_body("-100123", "<b>x</b>"));
  EXPECT_EQ(body["chat_id"], -100123);
  EXPECT_EQ(body["text"], "<b>x</b>");
  EXPECT_EQ(body["parse_mode"], "HTML");
  EXPECT_EQ(nlohmann::json::parse(send_message_body("@ops", "x"))["chat_id"], "@ops");
}

TEST(AlertsDelivery, BackoffDoublesUpToTheCap) {
  RetrySettings settings;
  settings.backoff = 1000ms;
  settings.max_backoff = 8000ms;
  EXPECT_EQ(retry_delay(settings, 1, 1.0), 1000ms);
  EXPECT_EQ(retry_delay(settings, 2, 1.0), 2000ms);
  EXPECT_EQ(retry_delay(settings, 3, 1.0), 4000ms);
  EXPECT_EQ(retry_delay(settings, 10, 1.0), 8000ms);
  EXPECT_EQ(retry_delay(settings, 1, 0.0), 500ms);
  EXPECT_EQ(retry_delay(settings, 100, 0.5), 6000ms);
}

class AlertsDecide : public ::testing::Test {
protected:
  SendResult result(Outcome outcome, long status = 0) {
    SendResult r;
    r.outcome = outcome;
    r.http_status = status;
    r.description = "what Telegram said";
    return r;
  }
  RetrySettings m_settings{1000ms, 300000ms, 3600000ms};
  clock::WallTime m_created = clock::parse_iso8601("2026-11-28T16:00:00.000Z").value();
};

TEST_F(AlertsDecide, DeliveredIsSent) {
  const auto d = decide(result(Outcome::delivered, 200), 1, m_created, m_created, m_settings, 1.0);
  EXPECT_EQ(d.action, Action::sent);
  EXPECT_TRUE(d.error.empty());
}

TEST_F(AlertsDecide, BadRequestIsNotRetried) {
  const auto d = decide(result(Outcome::rejected, 400), 1, m_created, m_created, m_settings, 1.0);
  EXPECT_EQ(d.action, Action::reject);
  EXPECT_EQ(d.error, "HTTP 400: what Telegram said");
}

TEST_F(AlertsDecide, FailuresBackOffExponentially) {
  const auto now = m_created + 10s;
  EXPECT_EQ(
      decide(result(Outcome::failed, 500), 1, m_created, now, m_settings, 1.0).next_attempt_at,
      now + 1s);
  EXPECT_EQ(decide(result(Outcome::failed), 4, m_created, now, m_settings, 1.0).next_attempt_at,
            now + 8s);
  EXPECT_EQ(decide(result(Outcome::failed), 4, m_created, now, m_settings, 1.0).action,
            Action::retry);
}

TEST_F(AlertsDecide, RateLimitWaitsRetryAfter) {
  auto limited = result(Outcome::rate_limited, 429);
  limited.retry_after = 3s;
  const auto now = m_created + 1s;
  const auto d = decide(limited, 1, m_created, now, m_settings, 0.0);
  EXPECT_EQ(d.action, Action::retry);
  EXPECT_EQ(d.next_attempt_at, now + 3s);
  // Even when the deadline is closer.
  const auto late = m_created + m_settings.give_up - 1s;
  EXPECT_EQ(decide(limited, 9, m_created, late, m_settings, 0.0).next_attempt_at, late + 3s);
}

TEST_F(AlertsDecide, BackoffNeverPassesTheDeadlineAndFailuresAfterItGiveUp) {
  const auto almost = m_created + m_settings.give_up - 2s;
  const auto d = decide(result(Outcome::failed), 12, m_created, almost, m_settings, 1.0);
  EXPECT_EQ(d.action, Action::retry);
  EXPECT_EQ(d.next_attempt_at, m_created + m_settings.give_up);
  const auto after = decide(result(Outcome::failed, 500), 13, m_created,
                            m_created + m_settings.give_up, m_settings, 1.0);
  EXPECT_EQ(after.action, Action::give_up);
  EXPECT_EQ(after.error, "HTTP 500: what Telegram said");
}

TEST_F(AlertsDecide, MigrationIsFollowedAtOnceAndStopIsARelease) {
  auto moved = result(Outcome::migrated, 400);
  moved.migrate_to_chat_id = "-100999";
  const auto d = decide(moved, 1, m_created, m_created + 1s, m_settings, 1.0);
  EXPECT_EQ(d.action, Action::migrate);
  EXPECT_EQ(d.next_attempt_at, m_created + 1s);
  EXPECT_EQ(decide(result(Outcome::aborted), 1, m_created, m_created, m_settings, 1.0).action,
            Action::release);
}

} // namespace
} // namespace usher::alerts
