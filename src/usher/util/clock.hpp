// Wall-clock timestamps as stored in the database and shown in the API:
// ISO 8601 UTC with milliseconds ("2026-11-28T16:25:00.123Z"), which sorts
// as text on SQLite and PostgreSQL alike; and the Clock that code which
// expires things reads, so that tests set the time instead of sleeping.
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

// The time as code that waits or expires things reads it: the system's
// clocks in production (system_clock()), a clock the test moves in unit
// tests (tests/unit/manual_clock.hpp).
class Clock {
public:
  virtual ~Clock() = default;
  // Monotonic time, for intervals within this process.
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Wall time, for what is stored or compared across processes.
  virtual WallTime wall() const = 0;
};

// The system's clocks. Stateless: the one instance is shared, not global state.
const Clock &system_clock();

} // namespace usher::clock
