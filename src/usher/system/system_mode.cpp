#include <usher/system/system_mode.hpp>

#include <fmt/format.h>

#include <usher/health/health_log.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/json_fields.hpp>

namespace usher::system {
namespace {

constexpr const char *k_select_mode =
    "SELECT value, version, updated_at, updated_by FROM system_config WHERE key = 'system_mode'";

constexpr const char *k_update_mode =
    "UPDATE system_config SET value = :value, version = version + 1, updated_at = :now, "
    "updated_by = :by WHERE key = 'system_mode' AND version = :version";

constexpr std::size_t k_max_reason = 500;

} // namespace

const char *to_string(SystemMode mode) {
  return mode == SystemMode::sync_direct ? "sync_direct" : "async_queue";
}

std::optional<SystemMode> parse_mode(std::string_view text) {
  if (text == "async_queue") return SystemMode::async_queue;
  if (text == "sync_direct") return SystemMode::sync_direct;
  return std::nullopt;
}

ModeState load_mode(soci::session &sql) {
  std::string value;
  long long version = 0;
  ModeState state;
  sql << k_select_mode, soci::into(value), soci::into(version), soci::into(state.updated_at),
      soci::into(state.updated_by);
  if (!sql.got_data()) throw soci::soci_error("system_config has no system_mode row");
  // An unknown value in the table is read as the safe choice: inline.
  state.mode = parse_mode(value).value_or(SystemMode::sync_direct);
  state.version = version;
  return state;
}

ModeChangeResult set_mode(soci::session &sql, const ModeChange &change) {
  const ModeState before = load_mode(sql);
  if (before.mode == change.to) return ModeChangeResult{before, false};
  const std::string value = to_string(change.to);
  const std::string now = clock::now_iso8601();
  const long long version = before.version;
  soci::statement st = (sql.prepare << k_update_mode, soci::use(value), soci::use(now),
                        soci::use(change.actor), soci::use(version));
  st.execute(true);
  if (st.get_affected_rows() != 1) {
    throw soci::soci_error("system_mode changed concurrently; retry");
  }
  health::record(sql, health::EventType::switch_,
                 fmt::format("system mode switched from {} to {}", to_string(before.mode), value),
                 {{"from", to_string(before.mode)},
                  {"to", value},
                  {"by", change.actor},
                  {"reason", change.reason},
                  {"version", version + 1}},
                 change.instance, {change.alerts, "system_mode"});
  return ModeChangeResult{load_mode(sql), true};
}

Result<ModeChange> parse_mode_change(const nlohmann::json &body) {
  json_fields::Reader reader(body, {"mode", "reason"});
  if (auto err = reader.check()) return tl::unexpected(*err);
  auto mode_text = reader.required_text("mode", 1, 32);
  if (!mode_text) return tl::unexpected(mode_text.error());
  auto mode = parse_mode(*mode_text);
  if (!mode) {
    return fail(ErrorKind::invalid, "mode_invalid", "mode must be async_queue or sync_direct",
                "mode");
  }
  auto reason = reader.optional_text("reason", k_max_reason);
  if (!reason) return tl::unexpected(reason.error());
  ModeChange change;
  change.to = *mode;
  change.reason = reason->value_or("");
  return change;
}

} // namespace usher::system
