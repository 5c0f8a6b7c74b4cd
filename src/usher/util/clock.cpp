#include <usher/util/clock.hpp>

#include <cstdio>
#include <ctime>

#include <fmt/format.h>

namespace usher::clock {
namespace {

class SystemClock final : public Clock {
public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  WallTime wall() const override { return std::chrono::system_clock::now(); }
};

} // namespace

const Clock &system_clock() {
  static const SystemClock k_clock;
  return k_clock;
}

std::string iso8601(WallTime t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms.count() % 1000);
}

std::optional<WallTime> parse_iso8601(const std::string &text) {
  std::tm tm{};
  int millis = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  if (text.size() > static_cast<std::size_t>(consumed) &&
      text[static_cast<std::size_t>(consumed)] == '.') {
    std::sscanf(text.c_str() + consumed, ".%3d", &millis);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = timegm(&tm);
  return WallTime(std::chrono::seconds(secs) + std::chrono::milliseconds(millis));
}

} // namespace usher::clock
