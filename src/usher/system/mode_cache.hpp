// The system mode, served from memory (SPEC §5). After the TTL one caller
// refreshes while the others keep the old value; a failed refresh keeps the
// last known mode and reports it through `on_stale` (a WARNING event).
// set() applies a change at once: the local API/CLI path today, and the seam
// for cross-instance invalidation (Redis pub/sub, LISTEN/NOTIFY) later.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include <usher/system/system_mode.hpp>
#include <usher/util/error.hpp>

namespace usher::system {

class ModeCache {
public:
  using Clock = std::chrono::steady_clock;
  using Loader = std::function<Result<ModeState>()>;
  using OnStale = std::function<void(const Error &)>;

  ModeCache(Loader loader, std::chrono::milliseconds ttl, OnStale on_stale);

  // Loads the first value, fresh until `now` + TTL; returns the loader's
  // error when it fails. Tests pass their own time line to both calls.
  Result<ModeState> prime() { return prime(coarse_now()); }
  Result<ModeState> prime(Clock::time_point now);

  // The mode; refreshes when the TTL has passed (one caller at a time).
  SystemMode get() { return get(coarse_now()); }
  SystemMode get(Clock::time_point now);

  // The cached mode, never refreshed here (the metrics read it).
  SystemMode cached() const;

  // The cached version (for status pages and tests).
  std::int64_t version() const;

  // Takes `state` now unless the cache already holds a newer version.
  void set(const ModeState &state);

  // The next get() refreshes.
  void invalidate();

  // A cheap monotonic clock (CLOCK_MONOTONIC_COARSE, ~4 ms resolution).
  static Clock::time_point coarse_now();

private:
  void refresh(Clock::time_point now);
  static std::uint64_t pack(SystemMode mode, std::int64_t version);

  Loader m_loader;
  std::chrono::nanoseconds m_ttl;
  OnStale m_on_stale;
  // Mode in the low byte, version above it: one atomic word, so a reader
  // never sees a mode from one version with the number of another.
  std::atomic<std::uint64_t> m_packed{0};
  std::atomic<std::int64_t> m_expires_ns{0};
  std::atomic<bool> m_refreshing{false};
  // Bumped by invalidate(): a refresh that started before it must not mark
  // the cache fresh, or the invalidation would be lost for a whole TTL.
  std::atomic<std::uint64_t> m_generation{0};
};

} // namespace usher::system
