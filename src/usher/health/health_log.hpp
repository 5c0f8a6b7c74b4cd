// The health log (system_health_logs): what happened to usher, newest first.
// record() is the one place events are written; given an alert policy it
// also throttles the event's condition and writes its alert to the outbox,
// in the same transaction (docs/alerts.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::health {

enum class EventType { info, warning, error, switch_, critical };

const char *to_string(EventType type);
std::optional<EventType> parse_event_type(const std::string &text);

struct Event {
  std::int64_t id = 0;
  EventType type = EventType::info;
  std::string message;
  nlohmann::json metadata;
  std::string instance;
  int repeat_count = 1;
  std::string created_at;
};

// How an event takes part in alerting (SPEC §6).
struct Alerting {
  // Null: the event is only logged (as every event of a failed delivery is).
  const alerts::AlertPolicy *policy = nullptr;
  // What failed, a short fixed name ("job_dead", "queue_unavailable"); with
  // the event's kind it names the condition whose repeats are throttled.
  std::string condition;
};

// Writes one event inside the caller's transaction and returns its id.
// With `alerting.policy`, CRITICAL, SWITCH and ERROR events are throttled
// by condition: the first alerts at once (a message per chat in the
// outbox), repeats within ALERT_THROTTLE_MS are counted for one summary,
// and a repeated CRITICAL bumps the repeat_count of its window's row (whose
// id is returned) instead of adding one, even when alerts are off. An event
// that neither alerts nor folds leaves no throttling state. WARNING and INFO
// never alert. `occurrences` > 1 records that many at once (counted
// in memory by a FoldedEvent): the first as above, the rest as repeats.
std::int64_t record(soci::session &sql, EventType type, const std::string &message,
                    const nlohmann::json &metadata, const std::string &instance,
                    const Alerting &alerting = {}, long long occurrences = 1);

// Adds `count` occurrences to the row `id` (its repeat_count); used to fold
// a sustained WARNING (a login flood) into the row its first occurrence wrote.
void add_repeats(soci::session &sql, std::int64_t id, long long count);

// The CRITICAL condition `alerting.condition` cleared: when it was active,
// writes an INFO event and the RESOLVED notice and returns the event id;
// otherwise writes nothing (so callers may call it on every success).
std::optional<std::int64_t> record_resolved(soci::session &sql, const std::string &message,
                                            const nlohmann::json &metadata,
                                            const std::string &instance, const Alerting &alerting);

struct Filter {
  std::optional<EventType> type;
  std::optional<std::string> since; // ISO 8601, inclusive
  std::optional<std::int64_t> before_id;
  int limit = 50;
};

// Events matching `filter`, newest first.
std::vector<Event> list(soci::session &sql, const Filter &filter);

nlohmann::json to_json(const Event &event);

} // namespace usher::health
