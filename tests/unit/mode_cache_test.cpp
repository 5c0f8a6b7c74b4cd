// Unit tests for system/ModeCache (SPEC §5): one refresh at a time, stale values, versions.
// Time is a time line of the test's own (prime(k_start), get(k_expiry)); nothing
// here waits for the real clock.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <latch>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include <usher/system/mode_cache.hpp>

namespace usher::system {

// How GoogleTest prints a mode in failure messages.
void PrintTo(SystemMode mode, std::ostream *out) { *out << to_string(mode); }

namespace {

using namespace std::chrono_literals;

// Every expiry below is reached through an explicit time point: prime() at
// k_start, and what it loaded expires at exactly k_expiry.
constexpr std::chrono::milliseconds k_ttl = 2s;
constexpr ModeCache::Clock::time_point k_start{std::chrono::hours(1)};
constexpr ModeCache::Clock::time_point k_expiry = k_start + k_ttl;
// Upper bound on every wait, so that a bug fails the test instead of hanging it.
constexpr auto k_max_wait = 20s;

ModeState state_of(SystemMode mode, std::int64_t version) {
  ModeState state;
  state.mode = mode;
  state.version = version;
  return state;
}

tl::unexpected<Error> database_down() {
  return fail(ErrorKind::unavailable, "database_unavailable", "connection refused");
}

// prime() and get() without a time read the real (coarse) clock.
TEST(ModeCache, PrimeLoadsTheFirstValue) {
  int loads = 0;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        ++loads;
        return state_of(SystemMode::sync_direct, 7);
      },
      std::chrono::hours(1), {}); // the real clock: never expires during the test
  const auto primed = cache.prime();
  ASSERT_TRUE(primed);
  EXPECT_EQ(primed->mode, SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 7);
  EXPECT_EQ(cache.get(), SystemMode::sync_direct);
  EXPECT_EQ(cache.get(ModeCache::coarse_now()), SystemMode::sync_direct);
  EXPECT_EQ(loads, 1); // both reads were served from memory
}

TEST(ModeCache, PrimeReturnsTheLoaderError) {
  ModeCache cache([]() -> Result<ModeState> { return database_down(); }, k_ttl, {});
  const auto primed = cache.prime(k_start);
  ASSERT_FALSE(primed);
  EXPECT_EQ(primed.error().kind, ErrorKind::unavailable);
  EXPECT_EQ(primed.error().code, "database_unavailable");
  EXPECT_EQ(cache.version(), 0);
}

TEST(ModeCache, RefreshesOnceTheTtlHasPassed) {
  int loads = 0;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        ++loads;
        return loads == 1 ? state_of(SystemMode::async_queue, 1)
                          : state_of(SystemMode::sync_direct, 2);
      },
      k_ttl, {});
  ASSERT_TRUE(cache.prime(k_start));
  EXPECT_EQ(cache.get(k_start), SystemMode::async_queue);
  EXPECT_EQ(cache.get(k_expiry - 1ms), SystemMode::async_queue);
  EXPECT_EQ(loads, 1) << "refreshed before the TTL passed";

  const auto later = k_expiry;
  EXPECT_EQ(cache.get(later), SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 2);
  EXPECT_EQ(loads, 2);
  // The next expiry counts from the refresh.
  EXPECT_EQ(cache.get(later + k_ttl - 1ms), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2);
  cache.get(later + k_ttl);
  EXPECT_EQ(loads, 3);
}

TEST(ModeCache, OneCallerRefreshesWhileTheOthersReturnTheOldValueAtOnce) {
  constexpr int k_callers = 16;
  std::atomic<int> loads{0};
  std::atomic<bool> loader_released{false};
  std::promise<void> entered;
  auto entered_future = entered.get_future();
  std::promise<void> release;
  const std::shared_future<void> released = release.get_future().share();

  ModeCache cache(
      [&]() -> Result<ModeState> {
        const int call = loads.fetch_add(1);
        if (call == 0) return state_of(SystemMode::sync_direct, 1); // prime()
        if (call == 1) {
          entered.set_value();
          released.wait_for(k_max_wait);
        }
        return state_of(SystemMode::async_queue, 2);
      },
      k_ttl, {});
  ASSERT_TRUE(cache.prime(k_start));

  const auto now = k_expiry;
  std::latch start(k_callers);
  std::mutex returned_mutex;
  std::condition_variable returned_changed;
  int returned = 0; // guarded by returned_mutex
  std::atomic<int> returned_before_release{0};
  std::vector<SystemMode> seen(k_callers);
  std::vector<std::thread> callers;
  for (int i = 0; i < k_callers; ++i) {
    callers.emplace_back([&, i] {
      start.arrive_and_wait();
      seen[static_cast<std::size_t>(i)] = cache.get(now);
      if (!loader_released) ++returned_before_release;
      {
        std::lock_guard lock(returned_mutex);
        ++returned;
      }
      returned_changed.notify_all();
    });
  }

  // The loader stays blocked until every caller but the refreshing one has
  // returned: callers that waited for the refresh would never get there.
  const bool loader_entered = entered_future.wait_for(k_max_wait) == std::future_status::ready;
  int returned_while_waiting = 0;
  {
    std::unique_lock lock(returned_mutex);
    returned_changed.wait_for(lock, k_max_wait, [&] { return returned >= k_callers - 1; });
    returned_while_waiting = returned;
  }
  loader_released = true;
  release.set_value();
  for (auto &caller : callers) caller.join();

  ASSERT_TRUE(loader_entered) << "no caller refreshed";
  EXPECT_EQ(returned_while_waiting, k_callers - 1);
  EXPECT_EQ(returned_before_release, k_callers - 1);
  EXPECT_EQ(loads, 2) << "prime() plus exactly one refresh";
  int old_values = 0;
  int new_values = 0;
  for (const SystemMode mode : seen) {
    (mode == SystemMode::sync_direct ? old_values : new_values)++;
  }
  EXPECT_EQ(old_values, k_callers - 1);
  EXPECT_EQ(new_values, 1); // the refreshing caller returns what it loaded
  EXPECT_EQ(cache.version(), 2);
  EXPECT_EQ(cache.get(now), SystemMode::async_queue);
}

TEST(ModeCache, FailedRefreshKeepsTheLastModeAndReportsItOnce) {
  int loads = 0;
  std::vector<Error> stale;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        if (loads++ == 0) return state_of(SystemMode::sync_direct, 3);
        return database_down();
      },
      k_ttl, [&](const Error &error) { stale.push_back(error); });
  ASSERT_TRUE(cache.prime(k_start));
  EXPECT_TRUE(stale.empty());

  EXPECT_EQ(cache.get(k_expiry), SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 3);
  EXPECT_EQ(loads, 2);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].kind, ErrorKind::unavailable);
  EXPECT_EQ(stale[0].code, "database_unavailable");
  EXPECT_EQ(stale[0].detail, "connection refused");
}

TEST(ModeCache, AfterAFailureRetriesOnlyOnceTheTtlPassesAgain) {
  int loads = 0;
  int stale = 0;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        ++loads;
        if (loads == 1) return state_of(SystemMode::sync_direct, 3);
        if (loads == 2 || loads == 3) return database_down();
        return state_of(SystemMode::async_queue, 4); // the database is back
      },
      k_ttl, [&](const Error &) { ++stale; });
  ASSERT_TRUE(cache.prime(k_start));

  const auto failed_at = k_expiry;
  EXPECT_EQ(cache.get(failed_at), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(cache.get(failed_at), SystemMode::sync_direct);
  EXPECT_EQ(cache.get(failed_at + 1ms), SystemMode::sync_direct);
  EXPECT_EQ(cache.get(failed_at + k_ttl - 1ms), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2) << "retried before the TTL passed";
  EXPECT_EQ(stale, 1);

  const auto failed_again_at = failed_at + k_ttl;
  EXPECT_EQ(cache.get(failed_again_at), SystemMode::sync_direct);
  EXPECT_EQ(loads, 3);
  EXPECT_EQ(stale, 2);

  EXPECT_EQ(cache.get(failed_again_at + k_ttl), SystemMode::async_queue);
  EXPECT_EQ(loads, 4);
  EXPECT_EQ(stale, 2);
  EXPECT_EQ(cache.version(), 4);
}

TEST(ModeCache, FailedRefreshWithoutAnOnStaleHandlerKeepsTheValue) {
  int loads = 0;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        if (loads++ == 0) return state_of(SystemMode::sync_direct, 1);
        return database_down();
      },
      k_ttl, {});
  ASSERT_TRUE(cache.prime(k_start));
  EXPECT_EQ(cache.get(k_expiry), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2);
}

TEST(ModeCache, SetWithANewerVersionWins) {
  ModeCache cache([] { return Result<ModeState>(state_of(SystemMode::async_queue, 5)); }, k_ttl,
                  {});
  ASSERT_TRUE(cache.prime(k_start));
  cache.set(state_of(SystemMode::sync_direct, 6));
  EXPECT_EQ(cache.get(k_start), SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 6);
}

TEST(ModeCache, SetWithAnOlderVersionIsIgnored) {
  ModeCache cache([] { return Result<ModeState>(state_of(SystemMode::async_queue, 5)); }, k_ttl,
                  {});
  ASSERT_TRUE(cache.prime(k_start));
  cache.set(state_of(SystemMode::sync_direct, 4));
  EXPECT_EQ(cache.get(k_start), SystemMode::async_queue);
  EXPECT_EQ(cache.version(), 5);

  cache.set(state_of(SystemMode::sync_direct, 9));
  cache.set(state_of(SystemMode::async_queue, 8));
  EXPECT_EQ(cache.get(k_start), SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 9);
}

TEST(ModeCache, RefreshDoesNotOverwriteANewerSetValue) {
  // The database answers with version 5 while set() already applied 6 (a
  // change made on this instance that a lagging read has not seen yet).
  ModeCache cache([] { return Result<ModeState>(state_of(SystemMode::async_queue, 5)); }, k_ttl,
                  {});
  ASSERT_TRUE(cache.prime(k_start));
  cache.set(state_of(SystemMode::sync_direct, 6));
  EXPECT_EQ(cache.get(k_expiry), SystemMode::sync_direct);
  EXPECT_EQ(cache.version(), 6);
}

TEST(ModeCache, SetWorksBeforePrime) {
  ModeCache cache([] { return Result<ModeState>(state_of(SystemMode::async_queue, 1)); }, k_ttl,
                  {});
  cache.set(state_of(SystemMode::sync_direct, 3));
  EXPECT_EQ(cache.version(), 3);
}

TEST(ModeCache, InvalidateForcesTheNextGetToRefresh) {
  int loads = 0;
  ModeCache cache(
      [&]() -> Result<ModeState> {
        ++loads;
        return loads == 1 ? state_of(SystemMode::async_queue, 1)
                          : state_of(SystemMode::sync_direct, 2);
      },
      k_ttl, {});
  ASSERT_TRUE(cache.prime(k_start));
  const auto now = k_start;
  EXPECT_EQ(cache.get(now), SystemMode::async_queue);
  EXPECT_EQ(loads, 1);

  cache.invalidate();
  EXPECT_EQ(cache.get(now), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(cache.get(now), SystemMode::sync_direct);
  EXPECT_EQ(loads, 2) << "only the first get() after invalidate() refreshes";
}

TEST(ModeCache, InvalidateDuringARefreshIsNotLost) {
  // The refresh below reads the database just before another instance
  // changes the mode; the change's notification (invalidate()) arrives while
  // that refresh is still running. The next get() after it must load again,
  // or the change stays invisible for a whole TTL (SPEC §5: within 2 s).
  std::atomic<int> loads{0};
  std::promise<void> entered;
  auto entered_future = entered.get_future();
  std::promise<void> release;
  const std::shared_future<void> released = release.get_future().share();
  ModeCache cache(
      [&]() -> Result<ModeState> {
        const int call = loads.fetch_add(1);
        if (call == 1) {
          entered.set_value();
          released.wait_for(k_max_wait);
        }
        // Calls 0 and 1 read the old row; the change is committed after that.
        return call <= 1 ? state_of(SystemMode::async_queue, 1)
                         : state_of(SystemMode::sync_direct, 2);
      },
      k_ttl, {});
  ASSERT_TRUE(cache.prime(k_start));

  const auto now = k_expiry;
  std::thread refresher([&] { cache.get(now); });
  const bool loader_entered = entered_future.wait_for(k_max_wait) == std::future_status::ready;
  cache.invalidate(); // the notification of version 2
  release.set_value();
  refresher.join();
  ASSERT_TRUE(loader_entered);
  ASSERT_EQ(loads, 2);

  EXPECT_EQ(cache.get(now), SystemMode::sync_direct) << "the invalidation was lost";
  EXPECT_EQ(loads, 3);
  EXPECT_EQ(cache.version(), 2);
}

TEST(ModeCache, CoarseNowIsMonotonic) {
  // Watches it tick (every few ms) instead of sleeping a guessed time.
  const auto first = ModeCache::coarse_now();
  const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
  auto second = ModeCache::coarse_now();
  while (second == first && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
    const auto next = ModeCache::coarse_now();
    ASSERT_GE(next, second) << "went backwards";
    second = next;
  }
  EXPECT_GT(second, first) << "did not advance within " << k_max_wait.count() << " s";
  EXPECT_LE(second - first, 10s);
}

} // namespace
} // namespace usher::system
