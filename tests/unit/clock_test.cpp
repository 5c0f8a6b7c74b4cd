// Unit tests for util/clock: iso8601() against an independent formatting
// (gmtime_r and snprintf) over known instants and random ones, and read back
// by parse_iso8601().
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include <usher/util/clock.hpp>

namespace usher::clock {
namespace {

using std::chrono::milliseconds;

WallTime at_ms(long long ms) { return WallTime(milliseconds(ms)); }

std::string reference(long long ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return text;
}

TEST(Clock, Iso8601WritesKnownInstants) {
  EXPECT_EQ(iso8601(at_ms(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601(at_ms(951782399999)), "2000-02-28T23:59:59.999Z");
  EXPECT_EQ(iso8601(at_ms(951868800000)), "2000-03-01T00:00:00.000Z"); // 2000-02-29 in between
  EXPECT_EQ(iso8601(at_ms(1709251199123)), "2024-02-29T23:59:59.123Z");
  EXPECT_EQ(iso8601(at_ms(1795882965042)), "2026-11-28T16:22:45.042Z");
  EXPECT_EQ(iso8601(at_ms(7258118399999)), "2199-12-31T23:59:59.999Z");
}

TEST(Clock, Iso8601AgreesWithGmtimeOnRandomInstants) {
  std::mt19937_64 random(20261207);
  // 1970 to 2200: system_clock counts nanoseconds in 64 bits, to 2262.
  std::uniform_int_distribution<long long> any(0, 7258118400000);
  for (int i = 0; i < 100000; ++i) {
    const long long ms = any(random);
    ASSERT_EQ(iso8601(at_ms(ms)), reference(ms)) << ms;
  }
}

TEST(Clock, WhatIso8601WritesParsesBackToTheSameMillisecond) {
  std::mt19937_64 random(7);
  std::uniform_int_distribution<long long> any(0, 4102444800000); // 1970 to 2100
  for (int i = 0; i < 1000; ++i) {
    const auto t = at_ms(any(random));
    const auto parsed = parse_iso8601(iso8601(t));
    ASSERT_TRUE(parsed.has_value()) << iso8601(t);
    EXPECT_EQ(*parsed, t) << iso8601(t);
  }
}

} // namespace
} // namespace usher::clock
