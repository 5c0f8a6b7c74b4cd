// Retry decisions of the alert sender (see delivery.hpp).
#include <usher/alerts/delivery.hpp>

#include <algorithm>

#include <fmt/format.h>

namespace usher::alerts {

std::chrono::milliseconds retry_delay(const RetrySettings &settings, int attempts,
                                      double jitter01) {
  const int exponent = std::clamp(attempts - 1, 0, 30);
  const double full =
      std::min(static_cast<double>(settings.backoff.count()) * static_cast<double>(1LL << exponent),
               static_cast<double>(settings.max_backoff.count()));
  const double jitter = 0.5 + 0.5 * std::clamp(jitter01, 0.0, 1.0);
  return std::chrono::milliseconds(std::max<long long>(1, static_cast<long long>(full * jitter)));
}

const char *to_string(Decision::Action action) {
  switch (action) {
  case Decision::Action::sent: return "sent";
  case Decision::Action::retry: return "retry";
  case Decision::Action::migrate: return "migrate";
  case Decision::Action::reject: return "reject";
  case Decision::Action::give_up: return "give_up";
  case Decision::Action::release: return "release";
  }
  return "retry";
}

Decision decide(const SendResult &result, int attempts, clock::WallTime created_at,
                clock::WallTime now, const RetrySettings &settings, double jitter01) {
  Decision decision;
  decision.next_attempt_at = now;
  const std::string status =
      result.http_status > 0 ? fmt::format("HTTP {}: ", result.http_status) : std::string();
  decision.error = status + result.description;
  switch (result.outcome) {
  case SendResult::Outcome::delivered:
    decision.action = Decision::Action::sent;
    decision.error.clear();
    return decision;
  case SendResult::Outcome::aborted: decision.action = Decision::Action::release; return decision;
  case SendResult::Outcome::rejected: decision.action = Decision::Action::reject; return decision;
  case SendResult::Outcome::migrated: decision.action = Decision::Action::migrate; break;
  case SendResult::Outcome::rate_limited:
  case SendResult::Outcome::failed: decision.action = Decision::Action::retry; break;
  }
  const auto deadline = created_at + settings.give_up;
  if (now >= deadline) {
    decision.action = Decision::Action::give_up;
    return decision;
  }
  if (decision.action == Decision::Action::retry) {
    if (result.outcome == SendResult::Outcome::rate_limited &&
        result.retry_after > std::chrono::seconds(0)) {
      // Telegram's flood control is obeyed even past the deadline: the last
      // attempt then comes retry_after late rather than early.
      decision.next_attempt_at = now + result.retry_after;
    } else {
      decision.next_attempt_at =
          std::min(now + retry_delay(settings, attempts, jitter01), deadline);
    }
  }
  return decision;
}

} // namespace usher::alerts
