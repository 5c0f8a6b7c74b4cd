// SQL and rules of alert throttling (see conditions.hpp).
#include <usher/alerts/conditions.hpp>

#include <algorithm>

#include <usher/alerts/message.hpp>
#include <usher/alerts/outbox.hpp>

namespace usher::alerts {
namespace {

// Creates the row when absent and, either way, writes it, which locks it
// (PostgreSQL: the row; SQLite: the database) for the transaction.
constexpr const char *k_lock =
    "INSERT INTO alert_conditions (condition_key, kind, window_started_at, window_ends_at, "
    "suppressed, last_message, last_metadata, last_instance, active, updated_at) "
    "VALUES (:key, :kind, '', '', 0, '', '{}', '', 0, :now) "
    "ON CONFLICT (condition_key) DO UPDATE SET updated_at = excluded.updated_at "
    "RETURNING window_started_at, window_ends_at, suppressed, health_log_id, last_message, "
    "last_metadata, last_instance, active, active_since";

constexpr const char *k_first =
    "UPDATE alert_conditions SET window_started_at = :started, window_ends_at = :ends, "
    "suppressed = 0, health_log_id = :log_id, last_message = :message, last_metadata = :metadata, "
    "last_instance = :instance, active = :active, active_since = :since "
    "WHERE condition_key = :key";

constexpr const char *k_repeat =
    "UPDATE alert_conditions SET suppressed = suppressed + :count, health_log_id = :log_id, "
    "last_message = :message, last_metadata = :metadata, last_instance = :instance "
    "WHERE condition_key = :key";

constexpr const char *k_roll =
    "UPDATE alert_conditions SET window_started_at = :started, window_ends_at = :ends, "
    "suppressed = 0, health_log_id = NULL WHERE condition_key = :key";

constexpr const char *k_resolved =
    "UPDATE alert_conditions SET window_ends_at = :now, suppressed = 0, health_log_id = NULL, "
    "active = 0, active_since = NULL WHERE condition_key = :key";

constexpr const char *k_due =
    "SELECT condition_key FROM alert_conditions WHERE suppressed > 0 AND window_ends_at <= :now "
    "ORDER BY window_ends_at LIMIT :limit";

nlohmann::json parse_metadata(const std::string &text) {
  auto json = nlohmann::json::parse(text, nullptr, false);
  return json.is_discarded() ? nlohmann::json::object() : json;
}

std::string dump_metadata(const nlohmann::json &metadata) {
  return metadata.is_null()
             ? "{}"
             : metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string condition_key(AlertKind kind, std::string_view condition) {
  return std::string(to_string(kind)) + ":" + std::string(condition);
}

bool in_window(const ConditionState &state, const std::string &now) {
  return !state.window_ends_at.empty() && now < state.window_ends_at;
}

bool summary_due(const ConditionState &state, const std::string &now) {
  return state.suppressed > 0 && !in_window(state, now);
}

ConditionState lock_condition(soci::session &sql, const std::string &key, AlertKind kind,
                              const std::string &now) {
  ConditionState state;
  state.key = key;
  state.kind = kind;
  const std::string kind_text = to_string(kind);
  long long log_id = 0;
  int active = 0;
  soci::indicator log_indicator = soci::i_null, since_indicator = soci::i_null;
  sql << k_lock, soci::use(key), soci::use(kind_text), soci::use(now),
      soci::into(state.window_started_at), soci::into(state.window_ends_at),
      soci::into(state.suppressed), soci::into(log_id, log_indicator),
      soci::into(state.last_message), soci::into(state.last_metadata),
      soci::into(state.last_instance), soci::into(active),
      soci::into(state.active_since, since_indicator);
  if (log_indicator == soci::i_ok) state.health_log_id = log_id;
  if (since_indicator != soci::i_ok) state.active_since.clear();
  state.active = active != 0;
  return state;
}

void note_first(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
                const Occurrence &occurrence, clock::WallTime now) {
  const std::string started = clock::iso8601(now);
  const std::string ends = clock::iso8601(now + policy.throttle);
  const std::string metadata = dump_metadata(occurrence.metadata);
  const long long log_id = occurrence.health_log_id;
  if (state.kind == AlertKind::critical && !state.active) {
    state.active = true;
    state.active_since = started;
  }
  const int active = state.active ? 1 : 0;
  std::string since = state.active_since;
  soci::indicator since_indicator = state.active ? soci::i_ok : soci::i_null;
  sql << k_first, soci::use(started), soci::use(ends), soci::use(log_id),
      soci::use(occurrence.message), soci::use(metadata), soci::use(occurrence.instance),
      soci::use(active), soci::use(since, since_indicator), soci::use(state.key);
  state.window_started_at = started;
  state.window_ends_at = ends;
  state.suppressed = 0;
  state.health_log_id = occurrence.health_log_id;
  state.last_message = occurrence.message;
  state.last_metadata = metadata;
  state.last_instance = occurrence.instance;

  EventAlert alert;
  alert.kind = state.kind;
  alert.message = occurrence.message;
  alert.time = occurrence.time;
  alert.instance = occurrence.instance;
  alert.details = occurrence.metadata;
  alert.event_id = occurrence.health_log_id;
  if (policy.enabled() && policy.alerts(state.kind)) {
    enqueue(sql, policy, state.kind, occurrence.health_log_id, format_event(alert), started);
  }
}

void note_repeat(soci::session &sql, ConditionState &state, const Occurrence &occurrence,
                 long long count) {
  const std::string metadata = dump_metadata(occurrence.metadata);
  const long long log_id = occurrence.health_log_id;
  sql << k_repeat, soci::use(count), soci::use(log_id), soci::use(occurrence.message),
      soci::use(metadata), soci::use(occurrence.instance), soci::use(state.key);
  state.suppressed += count;
  state.health_log_id = occurrence.health_log_id;
  state.last_message = occurrence.message;
  state.last_metadata = metadata;
  state.last_instance = occurrence.instance;
}

bool close_window(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
                  clock::WallTime now, bool force) {
  const std::string now_text = clock::iso8601(now);
  if (state.suppressed <= 0 || (!force && in_window(state, now_text))) return false;
  const auto started = clock::parse_iso8601(state.window_started_at).value_or(now);
  const auto ends = clock::parse_iso8601(state.window_ends_at).value_or(now);
  RepeatSummary summary;
  summary.kind = state.kind;
  summary.repeats = state.suppressed;
  summary.window =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::min(now, ends) - started);
  summary.latest_message = state.last_message;
  summary.latest_details = parse_metadata(state.last_metadata);
  summary.time = now_text;
  summary.instance = state.last_instance.empty() ? policy.instance : state.last_instance;
  summary.event_id = state.health_log_id.value_or(0);
  enqueue(sql, policy, state.kind, state.health_log_id, format_summary(summary), now_text);

  const std::string ends_text = clock::iso8601(now + policy.throttle);
  sql << k_roll, soci::use(now_text), soci::use(ends_text), soci::use(state.key);
  state.window_started_at = now_text;
  state.window_ends_at = ends_text;
  state.suppressed = 0;
  state.health_log_id.reset();
  return true;
}

bool resolve(soci::session &sql, const AlertPolicy &policy, ConditionState &state,
             const Occurrence &occurrence, clock::WallTime now) {
  if (!state.active) return false;
  close_window(sql, policy, state, now, /*force=*/true);
  ResolvedNotice notice;
  notice.message = occurrence.message;
  notice.time = occurrence.time;
  notice.instance = occurrence.instance;
  notice.details = occurrence.metadata;
  notice.critical_since = state.active_since;
  notice.critical_message = state.last_message;
  notice.event_id = occurrence.health_log_id;
  const std::string now_text = clock::iso8601(now);
  // No notice for a CRITICAL that never alerted.
  if (policy.alerts(AlertKind::critical)) {
    enqueue(sql, policy, AlertKind::resolved, occurrence.health_log_id, format_resolved(notice),
            now_text);
  }
  sql << k_resolved, soci::use(now_text), soci::use(state.key);
  state.window_ends_at = now_text;
  state.suppressed = 0;
  state.health_log_id.reset();
  state.active = false;
  state.active_since.clear();
  return true;
}

std::vector<std::string> due_summaries(soci::session &sql, const std::string &now, int limit) {
  std::string key;
  soci::statement st = (sql.prepare << k_due, soci::use(now), soci::use(limit), soci::into(key));
  st.execute();
  std::vector<std::string> keys;
  while (st.fetch()) keys.push_back(key);
  return keys;
}

} // namespace usher::alerts
