#include <usher/health/health_log.hpp>

#include <usher/util/clock.hpp>

namespace usher::health {
namespace {

constexpr const char *k_insert_event =
    "INSERT INTO system_health_logs (event_type, message, metadata, instance, created_at) "
    "VALUES (:type, :message, :metadata, :instance, :created_at) RETURNING id";

// Optional filters are bound as sentinel values so one statement serves all.
constexpr const char *k_list_events =
    "SELECT id, event_type, message, metadata, instance, repeat_count, created_at "
    "FROM system_health_logs "
    "WHERE (:type = '' OR event_type = :type2) AND created_at >= :since AND id < :before_id "
    "ORDER BY id DESC LIMIT :limit";

} // namespace

const char *to_string(EventType type) {
  switch (type) {
  case EventType::info: return "INFO";
  case EventType::warning: return "WARNING";
  case EventType::error: return "ERROR";
  case EventType::switch_: return "SWITCH";
  case EventType::critical: return "CRITICAL";
  }
  return "INFO";
}

std::optional<EventType> parse_event_type(const std::string &text) {
  for (auto t : {EventType::info, EventType::warning, EventType::error, EventType::switch_,
                 EventType::critical}) {
    if (text == to_string(t)) return t;
  }
  return std::nullopt;
}

std::int64_t record(soci::session &sql, EventType type, const std::string &message,
                    const nlohmann::json &metadata, const std::string &instance) {
  const std::string type_text = to_string(type);
  const std::string metadata_text = metadata.is_null() ? "{}" : metadata.dump();
  const std::string now = clock::now_iso8601();
  long long id = 0;
  sql << k_insert_event, soci::use(type_text), soci::use(message), soci::use(metadata_text),
      soci::use(instance), soci::use(now), soci::into(id);
  return id;
}

std::vector<Event> list(soci::session &sql, const Filter &filter) {
  const std::string type_text = filter.type ? to_string(*filter.type) : "";
  const std::string since = filter.since.value_or("");
  const long long before_id = filter.before_id.value_or(std::numeric_limits<long long>::max());
  const int limit = filter.limit;
  Event e;
  long long id = 0;
  std::string type, metadata;
  int count = 1;
  soci::statement st = (sql.prepare << k_list_events, soci::use(type_text), soci::use(type_text),
                        soci::use(since), soci::use(before_id), soci::use(limit), soci::into(id),
                        soci::into(type), soci::into(e.message), soci::into(metadata),
                        soci::into(e.instance), soci::into(count), soci::into(e.created_at));
  st.execute();
  std::vector<Event> events;
  while (st.fetch()) {
    e.id = id;
    e.type = parse_event_type(type).value_or(EventType::info);
    e.metadata = nlohmann::json::parse(metadata, nullptr, false);
    e.repeat_count = count;
    events.push_back(e);
  }
  return events;
}

nlohmann::json to_json(const Event &e) {
  return {{"id", e.id},
          {"type", to_string(e.type)},
          {"message", e.message},
          {"metadata", e.metadata.is_discarded() ? nlohmann::json::object() : e.metadata},
          {"instance", e.instance},
          {"count", e.repeat_count},
          {"created_at", e.created_at}};
}

} // namespace usher::health
