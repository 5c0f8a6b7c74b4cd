// What the sender does after an attempt, as a pure function of the
// attempt's result, the message's age and the retry settings: settle it as
// sent, retry it later (exponential backoff, or Telegram's retry_after),
// follow a chat migration, or give it up for good (docs/alerts.md).
#pragma once

#include <chrono>
#include <string>

#include <usher/alerts/telegram.hpp>
#include <usher/util/clock.hpp>

namespace usher::alerts {

struct RetrySettings {
  std::chrono::milliseconds backoff{1000};       // ALERT_BACKOFF_MS: the first delay
  std::chrono::milliseconds max_backoff{300000}; // a delay never grows beyond this
  std::chrono::milliseconds give_up{3600000};    // ALERT_GIVE_UP_MS, from the message's creation
};

// Delay after the `attempts`-th failed attempt: backoff * 2^(attempts-1),
// at most max_backoff, scaled by a jitter in [50 %, 100 %] (`jitter01` in [0, 1]).
std::chrono::milliseconds retry_delay(const RetrySettings &settings, int attempts, double jitter01);

struct Decision {
  enum class Action {
    sent,    // delivered
    retry,   // try again at next_attempt_at
    migrate, // the chat moved: send to result.migrate_to_chat_id at once
    reject,  // Telegram refused it (400 …): failed, WARNING with its description
    give_up, // retried until ALERT_GIVE_UP_MS: failed, WARNING
    release, // the sender is stopping: back to pending, no attempt counted
  };
  Action action = Action::retry;
  clock::WallTime next_attempt_at{};
  std::string error; // for last_error and the WARNING
};

const char *to_string(Decision::Action action);

// Decides after attempt number `attempts` (this one included) of a message
// created at `created_at`, now at `now`. A backoff never reaches past the
// give-up deadline (429's retry_after is obeyed even so); a failure at or
// after the deadline gives up.
Decision decide(const SendResult &result, int attempts, clock::WallTime created_at,
                clock::WallTime now, const RetrySettings &settings, double jitter01);

} // namespace usher::alerts
