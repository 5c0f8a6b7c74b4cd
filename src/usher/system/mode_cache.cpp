#include <usher/system/mode_cache.hpp>

#include <ctime>

namespace usher::system {

ModeCache::ModeCache(Loader loader, std::chrono::milliseconds ttl, OnStale on_stale)
    : m_loader(std::move(loader)), m_ttl(ttl), m_on_stale(std::move(on_stale)) {}

ModeCache::Clock::time_point ModeCache::coarse_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Clock::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

std::uint64_t ModeCache::pack(SystemMode mode, std::int64_t version) {
  return (static_cast<std::uint64_t>(version) << 8) | static_cast<std::uint8_t>(mode);
}

Result<ModeState> ModeCache::prime(Clock::time_point now) {
  auto state = m_loader();
  if (state) set(*state);
  m_expires_ns.store((now + m_ttl).time_since_epoch().count(), std::memory_order_release);
  return state;
}

SystemMode ModeCache::get(Clock::time_point now) {
  if (now.time_since_epoch().count() >= m_expires_ns.load(std::memory_order_acquire)) {
    refresh(now);
  }
  return static_cast<SystemMode>(m_packed.load(std::memory_order_acquire) & 0xFF);
}

SystemMode ModeCache::cached() const {
  return static_cast<SystemMode>(m_packed.load(std::memory_order_acquire) & 0xFF);
}

std::int64_t ModeCache::version() const {
  return static_cast<std::int64_t>(m_packed.load(std::memory_order_acquire) >> 8);
}

void ModeCache::set(const ModeState &state) {
  const std::uint64_t wanted = pack(state.mode, state.version);
  std::uint64_t current = m_packed.load(std::memory_order_acquire);
  while ((current >> 8) <= static_cast<std::uint64_t>(state.version) &&
         !m_packed.compare_exchange_weak(current, wanted, std::memory_order_acq_rel)) {
  }
}

void ModeCache::invalidate() {
  m_generation.fetch_add(1, std::memory_order_acq_rel);
  m_expires_ns.store(0, std::memory_order_release);
}

void ModeCache::refresh(Clock::time_point now) {
  // Only the caller that flips the flag refreshes; the rest keep the old value.
  if (m_refreshing.exchange(true, std::memory_order_acq_rel)) return;
  const auto generation = m_generation.load(std::memory_order_acquire);
  auto state = m_loader();
  if (state) {
    set(*state);
  } else if (m_on_stale) {
    m_on_stale(state.error());
  }
  // Also after a failure: the stale value is kept for another TTL rather
  // than hammering a database that is down.
  if (m_generation.load(std::memory_order_acquire) == generation) {
    m_expires_ns.store((now + m_ttl).time_since_epoch().count(), std::memory_order_release);
  }
  m_refreshing.store(false, std::memory_order_release);
}

} // namespace usher::system
