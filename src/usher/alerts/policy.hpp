// What alerts and where to: the kinds of alert, and the AlertPolicy built
// once from the configuration and passed to whoever records events (SPEC §6).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <usher/config/config.hpp>
#include <usher/util/clock.hpp>

namespace usher::alerts {

// The kinds of alert. WARNING and INFO events never alert.
enum class AlertKind { critical, switch_, error, resolved };

// "CRITICAL", "SWITCH", "ERROR", "RESOLVED".
const char *to_string(AlertKind kind);
std::optional<AlertKind> parse_alert_kind(std::string_view text);

// The emoji that opens a message of `kind`.
const char *emoji(AlertKind kind);

struct AlertPolicy {
  // Chats every alert goes to; empty when alerts are off (no bot token).
  std::vector<std::string> chat_ids;
  // Kinds that produce a message (ALERT_KINDS).
  std::vector<AlertKind> kinds;
  // Repeats of one condition within this window are folded (ALERT_THROTTLE_MS).
  std::chrono::milliseconds throttle{60000};
  // The instance named in summaries and notices this process writes.
  std::string instance;
  // What throttling windows, retries and give-up times are measured by: the
  // events recorded under this policy and the sender delivering them read
  // one clock. Never null; a test passes a clock it moves.
  const clock::Clock *clock = &clock::system_clock();

  // True when messages are written to the outbox at all.
  bool enabled() const { return !chat_ids.empty(); }
  // True when an event of `kind` produces a message.
  bool alerts(AlertKind kind) const;
  // True when repeats of `kind` within the window bump the repeat_count of
  // one health log row instead of adding rows. Only CRITICAL conditions
  // (an outage: the same failure again and again) fold; every SWITCH is a
  // deliberate admin action and every dead job a different customer, so
  // those keep a row each while their messages are still throttled.
  static bool folds_log(AlertKind kind) { return kind == AlertKind::critical; }
};

// The policy `config` asks for: no chats unless TELEGRAM_BOT_TOKEN is set.
AlertPolicy policy_from(const config::Config &config);

} // namespace usher::alerts
