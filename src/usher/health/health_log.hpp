// The health log (system_health_logs): what happened to usher, newest first.
// record() is the one place events are written, so that alerts (the outbox)
// can be added in the same transaction later.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

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

// Writes one event inside the caller's transaction; returns its id.
std::int64_t record(soci::session &sql, EventType type, const std::string &message,
                    const nlohmann::json &metadata, const std::string &instance);

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
