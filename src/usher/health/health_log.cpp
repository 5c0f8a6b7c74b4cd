// The health log: writing events (with their alerts) and listing them.
#include <usher/health/health_log.hpp>

#include <algorithm>
#include <limits>

#include <usher/alerts/conditions.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/util/clock.hpp>

namespace usher::health {
namespace {

constexpr const char *k_insert_event =
    "INSERT INTO system_health_logs (event_type, message, metadata, instance, created_at) "
    "VALUES (:type, :message, :metadata, :instance, :created_at) RETURNING id";

constexpr const char *k_fold_event =
    "UPDATE system_health_logs SET repeat_count = repeat_count + :count WHERE id = :id";

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

namespace {

std::int64_t insert_event(soci::session &sql, EventType type, const std::string &message,
                          const nlohmann::json &metadata, const std::string &instance,
                          const std::string &now) {
  const std::string type_text = to_string(type);
  const std::string metadata_text =
      metadata.is_null() ? "{}"
                         : metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  long long id = 0;
  sql << k_insert_event, soci::use(type_text), soci::use(message), soci::use(metadata_text),
      soci::use(instance), soci::use(now), soci::into(id);
  return id;
}

std::optional<alerts::AlertKind> alert_kind(EventType type) {
  switch (type) {
  case EventType::critical: return alerts::AlertKind::critical;
  case EventType::switch_: return alerts::AlertKind::switch_;
  case EventType::error: return alerts::AlertKind::error;
  case EventType::warning:
  case EventType::info: return std::nullopt;
  }
  return std::nullopt;
}

} // namespace

std::int64_t record(soci::session &sql, EventType type, const std::string &message,
                    const nlohmann::json &metadata, const std::string &instance,
                    const Alerting &alerting, long long occurrences) {
  // The policy's clock measures its throttling windows (a test's, in unit tests).
  const auto now =
      alerting.policy != nullptr ? alerting.policy->clock->wall() : clock::system_clock().wall();
  const std::string now_text = clock::iso8601(now);
  const auto kind = alert_kind(type);
  const long long repeats = std::max(occurrences, 1LL) - 1; // after the first of this call
  // One row for all the occurrences of this call.
  const auto insert_folded = [&] {
    const auto id = insert_event(sql, type, message, metadata, instance, now_text);
    if (repeats > 0) {
      const long long fold_into = id;
      sql << k_fold_event, soci::use(repeats), soci::use(fold_into);
    }
    return id;
  };
  if (alerting.policy == nullptr || !kind) return insert_folded();
  const auto &policy = *alerting.policy;
  // Nothing to throttle when the event neither alerts nor folds the log.
  if (!(policy.enabled() && policy.alerts(*kind)) && !alerts::AlertPolicy::folds_log(*kind)) {
    return insert_folded();
  }
  auto state = alerts::lock_condition(sql, alerts::condition_key(*kind, alerting.condition), *kind,
                                      now_text);
  // A window that ended with repeats nobody summarised yet (no sender ran).
  alerts::close_window(sql, policy, state, now);

  if (alerts::in_window(state, now_text)) {
    std::int64_t id = 0;
    if (alerts::AlertPolicy::folds_log(*kind) && state.health_log_id) {
      const long long fold_into = *state.health_log_id;
      const long long count = repeats + 1;
      sql << k_fold_event, soci::use(count), soci::use(fold_into);
      id = fold_into;
    } else {
      id = insert_folded();
    }
    alerts::note_repeat(sql, state, {id, message, metadata, instance, now_text}, repeats + 1);
    return id;
  }
  const auto id = insert_event(sql, type, message, metadata, instance, now_text);
  alerts::note_first(sql, policy, state, {id, message, metadata, instance, now_text}, now);
  if (repeats > 0) {
    // The rest of this call's occurrences are repeats of the first.
    const long long fold_into = id;
    if (alerts::AlertPolicy::folds_log(*kind))
      sql << k_fold_event, soci::use(repeats), soci::use(fold_into);
    alerts::note_repeat(sql, state, {id, message, metadata, instance, now_text}, repeats);
  }
  return id;
}

void add_repeats(soci::session &sql, std::int64_t id, long long count) {
  const long long fold_into = id;
  sql << k_fold_event, soci::use(count), soci::use(fold_into);
}

std::optional<std::int64_t> record_resolved(soci::session &sql, const std::string &message,
                                            const nlohmann::json &metadata,
                                            const std::string &instance, const Alerting &alerting) {
  if (alerting.policy == nullptr) return std::nullopt;
  const auto now = alerting.policy->clock->wall();
  const std::string now_text = clock::iso8601(now);
  auto state = alerts::lock_condition(
      sql, alerts::condition_key(alerts::AlertKind::critical, alerting.condition),
      alerts::AlertKind::critical, now_text);
  if (!state.active) return std::nullopt;
  const auto id = insert_event(sql, EventType::info, message, metadata, instance, now_text);
  alerts::resolve(sql, *alerting.policy, state, {id, message, metadata, instance, now_text}, now);
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
