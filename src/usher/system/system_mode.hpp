// The kill switch: system_config.system_mode decides whether requests go
// through the job queue (async_queue) or are provisioned inline
// (sync_direct). Every change bumps a version and writes a SWITCH event.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/util/error.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::system {

enum class SystemMode : std::uint8_t { async_queue = 0, sync_direct = 1 };

const char *to_string(SystemMode mode);
std::optional<SystemMode> parse_mode(std::string_view text);

struct ModeState {
  SystemMode mode = SystemMode::async_queue;
  std::int64_t version = 0;
  std::string updated_at;
  std::string updated_by;
};

// Reads the current mode; throws soci_error when the database fails.
ModeState load_mode(soci::session &sql);

struct ModeChange {
  SystemMode to = SystemMode::sync_direct;
  std::string reason;
  std::string actor;                           // who: "NAME (token ID)" or "cli:USER"
  std::string instance;                        // where the change was made
  const alerts::AlertPolicy *alerts = nullptr; // null: the SWITCH event is only logged
};

struct ModeChangeResult {
  ModeState state;
  bool changed = false; // false when the mode already was `to`
};

// Flips the switch and records the SWITCH event in the caller's
// transaction. Setting the current mode again changes nothing and writes
// no event.
ModeChangeResult set_mode(soci::session &sql, const ModeChange &change);

// Validates a PUT /api/v1/admin/system/mode body {"mode","reason"}.
Result<ModeChange> parse_mode_change(const nlohmann::json &body);

} // namespace usher::system
