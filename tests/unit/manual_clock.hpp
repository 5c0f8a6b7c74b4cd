// A clock.hpp Clock that moves only when the test says so: unit tests of code
// that expires things advance it instead of sleeping. Both of its times move
// together; safe to read from several threads.
#pragma once

#include <atomic>
#include <chrono>

#include <usher/util/clock.hpp>

namespace usher::testing {

class ManualClock final : public clock::Clock {
public:
  // Starts at a fixed, recent wall time (2026-11-28T12:00:00Z), so that
  // timestamps in test failures read like real ones.
  ManualClock() : ManualClock(clock::WallTime(std::chrono::seconds(1'795'867'200))) {}
  explicit ManualClock(clock::WallTime start) : m_wall_start(start) {}

  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(elapsed());
  }
  clock::WallTime wall() const override {
    return m_wall_start + std::chrono::duration_cast<clock::WallTime::duration>(elapsed());
  }

  void advance(std::chrono::nanoseconds by) { m_elapsed_ns.fetch_add(by.count()); }

private:
  std::chrono::nanoseconds elapsed() const { return std::chrono::nanoseconds(m_elapsed_ns.load()); }

  clock::WallTime m_wall_start;
  std::atomic<std::chrono::nanoseconds::rep> m_elapsed_ns{0};
};

} // namespace usher::testing
