#include <usher/util/clock.hpp>

#include <cstdio>
#include <ctime>

namespace usher::clock {
namespace {

class SystemClock final : public Clock {
public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  WallTime wall() const override { return std::chrono::system_clock::now(); }
};

// `width` decimal digits of `value` at `out`, zero-padded.
void put_digits(char *out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

} // namespace

const Clock &system_clock() {
  static const SystemClock k_clock;
  return k_clock;
}

// Every write stamps rows with it (several per drained job): the civil date
// by arithmetic (no gmtime_r, which takes glibc's time zone lock) and the
// digits written in place (no format string parsed per call). floor() keeps
// times before 1970 right; system_clock's 64-bit nanoseconds span the years
// 1677 to 2262, four digits each.
std::string iso8601(WallTime t) {
  using namespace std::chrono;
  const auto at = floor<milliseconds>(t);
  const auto day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss time{at - day};
  std::string text = "0000-00-00T00:00:00.000Z";
  put_digits(text.data(), static_cast<unsigned>(static_cast<int>(date.year())), 4);
  put_digits(text.data() + 5, static_cast<unsigned>(date.month()), 2);
  put_digits(text.data() + 8, static_cast<unsigned>(date.day()), 2);
  put_digits(text.data() + 11, static_cast<unsigned>(time.hours().count()), 2);
  put_digits(text.data() + 14, static_cast<unsigned>(time.minutes().count()), 2);
  put_digits(text.data() + 17, static_cast<unsigned>(time.seconds().count()), 2);
  put_digits(text.data() + 20, static_cast<unsigned>(time.subseconds().count()), 3);
  return text;
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
