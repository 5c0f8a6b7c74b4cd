// AlertKind names and emoji, and the AlertPolicy built from the configuration.
#include <usher/alerts/policy.hpp>

#include <algorithm>

namespace usher::alerts {

const char *to_string(AlertKind kind) {
  switch (kind) {
  case AlertKind::critical: return "CRITICAL";
  case AlertKind::switch_: return "SWITCH";
  case AlertKind::error: return "ERROR";
  case AlertKind::resolved: return "RESOLVED";
  }
  return "CRITICAL";
}

std::optional<AlertKind> parse_alert_kind(std::string_view text) {
  for (auto kind :
       {AlertKind::critical, AlertKind::switch_, AlertKind::error, AlertKind::resolved}) {
    if (text == to_string(kind)) return kind;
  }
  return std::nullopt;
}

const char *emoji(AlertKind kind) {
  switch (kind) {
  case AlertKind::critical: return "\U0001F6A8"; // police car light
  case AlertKind::switch_: return "\U0001F500";  // twisted arrows
  case AlertKind::error: return "\u274C";        // cross mark
  case AlertKind::resolved: return "\u2705";     // check mark
  }
  return "";
}

bool AlertPolicy::alerts(AlertKind kind) const {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

AlertPolicy policy_from(const config::Config &config) {
  AlertPolicy policy;
  if (!config.telegram_bot_token.empty()) policy.chat_ids = config.telegram_admin_chat_ids;
  for (const auto &name : config.alert_kinds) {
    if (auto kind = parse_alert_kind(name)) policy.kinds.push_back(*kind);
  }
  policy.throttle = config.alert_throttle;
  policy.instance = config.instance;
  return policy;
}

} // namespace usher::alerts
