// Wall-clock timestamps as stored in the database and shown in the API:
// ISO 8601 UTC with milliseconds ("2026-11-28T16:25:00.123Z"), which sorts
// as text on SQLite and PostgreSQL alike.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace usher::clock {

using WallTime = std::chrono::system_clock::time_point;

std::string iso8601(WallTime t);
inline std::string now_iso8601() { return iso8601(std::chrono::system_clock::now()); }

// Parses what iso8601() writes (milliseconds optional); nullopt otherwise.
std::optional<WallTime> parse_iso8601(const std::string &text);

} // namespace usher::clock
