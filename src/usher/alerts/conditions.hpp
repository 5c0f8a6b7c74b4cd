// Throttling of alerts by condition (alert_conditions). A condition is a
// kind plus what failed ("CRITICAL:queue_unavailable"); its first
// occurrence alerts at once and opens a window of ALERT_THROTTLE_MS; the
// repeats inside it are counted and sent as one summary when it ends, and
// the window then rolls on while repeats keep coming. The state lives in the
// database so that every process (serve, worker, CLI) folds the same way,
// and every change to it happens in the transaction of the event.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/alerts/policy.hpp>
#include <usher/util/clock.hpp>

namespace usher::alerts {

// "KIND:condition"; an empty `condition` stands for the kind alone.
std::string condition_key(AlertKind kind, std::string_view condition);

// One alert_conditions row.
struct ConditionState {
  std::string key;
  AlertKind kind = AlertKind::critical;
  std::string window_started_at; // ISO 8601; "" before the first occurrence
  std::string window_ends_at;    // ISO 8601; "" before the first occurrence
  long long suppressed = 0;      // repeats folded since the last message
  // The health log row of this window: the one a CRITICAL repeat folds
  // into, else the latest repeat (nullopt: none yet).
  std::optional<std::int64_t> health_log_id;
  std::string last_message;
  std::string last_metadata; // JSON text
  std::string last_instance;
  bool active = false;      // a CRITICAL that has not been resolved
  std::string active_since; // when it was first alerted ("" unless active)
};

// An occurrence at `now` falls inside the open window (it is a repeat).
bool in_window(const ConditionState &state, const std::string &now);

// The window is over and holds repeats not yet summarised.
bool summary_due(const ConditionState &state, const std::string &now);

// The row of `key` (created when absent), locked for the rest of the
// caller's transaction so that concurrent writers decide one after another.
ConditionState lock_condition(soci::session &sql, const std::string &key, AlertKind kind,
                              const std::string &now);

// One event of a condition, as alerting sees it.
struct Occurrence {
  std::int64_t health_log_id = 0;
  std::string message;
  nlohmann::json metadata;
  std::string instance;
  std::string time; // ISO 8601, the event's created_at
};

// The first occurrence: opens a window at `now` and writes the alert to the
// outbox (when `policy` alerts its kind). A CRITICAL becomes active.
void note_first(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
                const Occurrence &occurrence, clock::WallTime now);

// `count` repeats inside the window: counted for the summary, no message.
void note_repeat(soci::session &sql, ConditionState &state, const Occurrence &occurrence,
                 long long count = 1);

// When the summary of `state` is due (or at once with `force`, when it holds
// repeats): writes "…and N more in the last S s" to the outbox, then rolls
// the window on from `now` with nothing counted. Returns true when it did.
bool close_window(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
                  clock::WallTime now, bool force = false);

// The CRITICAL condition `state` cleared: sums up its pending repeats, writes
// the RESOLVED notice for `occurrence` (an INFO event already recorded) and
// closes the window so that the next failure alerts at once. Nothing when
// the condition is not active; returns whether it was.
bool resolve(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
             const Occurrence &occurrence, clock::WallTime now);

// Keys whose window ended at or before `now` with repeats to summarise (a
// read, for the sender to close them).
std::vector<std::string> due_summaries(soci::session &sql, const std::string &now, int limit);

} // namespace usher::alerts
