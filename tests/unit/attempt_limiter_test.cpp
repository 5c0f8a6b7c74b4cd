// auth::AttemptLimiter (fixed windows per key, bounded keys, injected clock)
// and auth::HashingPool (bounded queue).
#include <usher/auth/attempt_limiter.hpp>
#include <usher/auth/hashing_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace usher::auth {
namespace {

using namespace std::chrono_literals;

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  AttemptLimiter::Clock function() {
    return [this] { return now; };
  }
};

TEST(AttemptLimiter, AllowsTheLimitThenRefusesUntilTheWindowEnds) {
  FakeClock clock;
  AttemptLimiter limiter({3, 60s}, 100, clock.function());
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.attempt("a@example.com")) << i;
  clock.now += 10s;
  const auto wait = limiter.attempt("a@example.com");
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 50s);
  EXPECT_EQ(retry_after_seconds(*wait), 50);
  // A refused attempt does not extend the window.
  clock.now += 49s;
  EXPECT_TRUE(limiter.attempt("a@example.com"));
  clock.now += 1s;
  EXPECT_FALSE(limiter.attempt("a@example.com"));
}

TEST(AttemptLimiter, KeysAreCountedApart) {
  FakeClock clock;
  AttemptLimiter limiter({1, 60s}, 100, clock.function());
  EXPECT_FALSE(limiter.attempt("a"));
  EXPECT_TRUE(limiter.attempt("a"));
  EXPECT_FALSE(limiter.attempt("b"));
  EXPECT_TRUE(limiter.attempt("b"));
}

TEST(AttemptLimiter, MemoryIsBoundedByForgettingTheOldestWindow) {
  FakeClock clock;
  AttemptLimiter limiter({1, 60s}, 3, clock.function());
  for (const char *key : {"a", "b", "c"}) {
    EXPECT_FALSE(limiter.attempt(key));
    clock.now += 1s;
  }
  EXPECT_EQ(limiter.size(), 3U);
  EXPECT_FALSE(limiter.attempt("d")); // forgets "a", the oldest window
  EXPECT_EQ(limiter.size(), 3U);
  EXPECT_FALSE(limiter.attempt("a")); // a fresh window again, "b" forgotten
  EXPECT_TRUE(limiter.attempt("c"));  // still remembered and over its limit
  EXPECT_TRUE(limiter.attempt("d"));
  for (int i = 0; i < 10000; ++i) limiter.attempt(fmt::format("k{}", i));
  EXPECT_EQ(limiter.size(), 3U);
}

TEST(AttemptLimiter, ARestartedWindowMovesTheKeyToTheBackOfTheOrder) {
  FakeClock clock;
  AttemptLimiter limiter({1, 10s}, 2, clock.function());
  EXPECT_FALSE(limiter.attempt("a"));
  clock.now += 1s;
  EXPECT_FALSE(limiter.attempt("b"));
  clock.now += 10s; // a's window is over; its next attempt opens a new one
  EXPECT_FALSE(limiter.attempt("a"));
  EXPECT_FALSE(limiter.attempt("c")); // forgets b, whose window began first now
  EXPECT_TRUE(limiter.attempt("a"));
}

TEST(AttemptLimiter, RetryAfterRoundsUpToWholeSeconds) {
  EXPECT_EQ(retry_after_seconds(0ms), 1);
  EXPECT_EQ(retry_after_seconds(1ms), 1);
  EXPECT_EQ(retry_after_seconds(1000ms), 1);
  EXPECT_EQ(retry_after_seconds(1001ms), 2);
}

TEST(HashingPool, RefusesWhenItsQueueIsFullAndRunsWhatItTook) {
  std::mutex mutex;
  std::condition_variable changed;
  bool release = false;
  bool started = false;
  std::atomic<int> ran{0};
  HashingPool pool(1, 2);
  // The one thread is held by a first task; two more fill the queue.
  ASSERT_TRUE(pool.submit([&] {
    std::unique_lock lock(mutex);
    started = true;
    changed.notify_all();
    changed.wait_for(lock, 10s, [&] { return release; });
    ++ran;
  }));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, 10s, [&] { return started; }));
  }
  EXPECT_TRUE(pool.submit([&] { ++ran; }));
  EXPECT_TRUE(pool.submit([&] { ++ran; }));
  EXPECT_FALSE(pool.submit([&] { ++ran; }));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  pool.stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(pool.submit([&] { ++ran; }));
}

} // namespace
} // namespace usher::auth
