// Google Benchmark of ModeCache's hit path, the mode read of every POST /api/v1/users (SPEC §5).
#include <chrono>
#include <stdexcept>

#include <benchmark/benchmark.h>

#include <usher/system/mode_cache.hpp>

namespace {

using usher::system::ModeCache;
using usher::system::ModeState;
using usher::system::SystemMode;

// Long enough that no benchmark run reaches a refresh: only hits are measured.
constexpr std::chrono::milliseconds k_ttl = std::chrono::hours(24);

ModeState sync_direct_v1() {
  ModeState state;
  state.mode = SystemMode::sync_direct;
  state.version = 1;
  return state;
}

// A cache primed on construction (ModeCache holds atomics: it does not move).
struct PrimedCache {
  PrimedCache() : cache([] { return usher::Result<ModeState>(sync_direct_v1()); }, k_ttl, {}) {
    if (!cache.prime()) throw std::runtime_error("the benchmark loader failed");
  }
  ModeCache cache;
};

// One primed cache shared by every benchmark and thread, as in the server.
ModeCache &primed_cache() {
  static PrimedCache primed;
  return primed.cache;
}

// get(): reads the coarse monotonic clock, then the cached word.
void bm_get(benchmark::State &state) {
  ModeCache &cache = primed_cache();
  for (auto _ : state) benchmark::DoNotOptimize(cache.get());
}
BENCHMARK(bm_get);
BENCHMARK(bm_get)->Threads(2);

// get(now) with a precomputed time point: the cache alone, without the clock.
void bm_get_at_time_point(benchmark::State &state) {
  ModeCache &cache = primed_cache();
  const auto now = ModeCache::coarse_now();
  for (auto _ : state) benchmark::DoNotOptimize(cache.get(now));
}
BENCHMARK(bm_get_at_time_point);
BENCHMARK(bm_get_at_time_point)->Threads(2);

// The clock get() reads, for reference.
void bm_coarse_now(benchmark::State &state) {
  for (auto _ : state) benchmark::DoNotOptimize(ModeCache::coarse_now());
}
BENCHMARK(bm_coarse_now);

} // namespace
