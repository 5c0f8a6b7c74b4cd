// Unit tests for store::StallWatchdog: guards on one end of a socketpair
// (what a PostgreSQL session's socket would be), deadlines on a ManualClock,
// so that "the server did not answer for 2 s" takes no time at all.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>

#include "manual_clock.hpp"

#include <usher/store/database.hpp>
#include <usher/store/stall_watchdog.hpp>

namespace usher::store {
namespace stall_watchdog_test {

using namespace std::chrono_literals;

// A connected pair of sockets, closed at the end of the test.
class SocketPair {
public:
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, m_fds.data()) != 0) {
      throw std::system_error(errno, std::generic_category(), "socketpair");
    }
  }
  ~SocketPair() {
    ::close(m_fds[0]);
    ::close(m_fds[1]);
  }
  SocketPair(const SocketPair &) = delete;
  SocketPair &operator=(const SocketPair &) = delete;

  int ours() const { return m_fds[0]; }
  int peer() const { return m_fds[1]; }

  // True once our socket was shut down: a read returns end-of-file at once
  // instead of "nothing yet" (the peer sent nothing).
  bool shut_down() const {
    char byte = 0;
    return ::recv(ours(), &byte, 1, MSG_DONTWAIT) == 0;
  }

  // Waits (in real time, at most `limit`) until our socket is shut down.
  bool shut_down_within(std::chrono::milliseconds limit) const {
    pollfd watched{ours(), POLLIN, 0};
    return ::poll(&watched, 1, static_cast<int>(limit.count())) == 1 && shut_down();
  }

private:
  std::array<int, 2> m_fds{-1, -1};
};

TEST(StallWatchdogTest, CutsTheSocketOnlyOnceTheLimitHasPassed) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  auto guard = watchdog.arm_socket(pair.ours(), 2000ms);

  clock.advance(1999ms);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(pair.shut_down());

  clock.advance(1ms);
  EXPECT_EQ(watchdog.fire_expired(), 1U);
  EXPECT_TRUE(pair.shut_down());
  // Once: a later pass does not count it again.
  clock.advance(1h);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_TRUE(guard.disarm()) << "the guard reports that the watchdog cut the connection";
  EXPECT_TRUE(guard.disarm()) << "and keeps saying so";
}

TEST(StallWatchdogTest, ADisarmedGuardIsNeverFired) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  auto guard = watchdog.arm_socket(pair.ours(), 100ms);
  clock.advance(99ms);
  EXPECT_FALSE(guard.disarm()) << "answered in time";
  clock.advance(1h);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(pair.shut_down());
}

TEST(StallWatchdogTest, AGuardDisarmsWhenItGoesOutOfScope) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  { auto guard = watchdog.arm_socket(pair.ours(), 100ms); }
  clock.advance(1s);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(pair.shut_down());
}

TEST(StallWatchdogTest, EachGuardHasItsOwnDeadline) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair quick, slow;
  auto short_guard = watchdog.arm_socket(quick.ours(), 100ms);
  auto long_guard = watchdog.arm_socket(slow.ours(), 5000ms);

  clock.advance(200ms);
  EXPECT_EQ(watchdog.fire_expired(), 1U);
  EXPECT_TRUE(quick.shut_down());
  EXPECT_FALSE(slow.shut_down());
  EXPECT_TRUE(short_guard.disarm());
  EXPECT_FALSE(long_guard.disarm()) << "the slow call answered before its limit";
  clock.advance(1h);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(slow.shut_down());
}

TEST(StallWatchdogTest, TheLimitCountsFromWhenTheGuardWasArmed) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  clock.advance(10s); // time that passed before the call began does not count
  auto guard = watchdog.arm_socket(pair.ours(), 1000ms);
  clock.advance(999ms);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  clock.advance(1ms);
  EXPECT_EQ(watchdog.fire_expired(), 1U);
  EXPECT_TRUE(guard.disarm());
}

TEST(StallWatchdogTest, ExtendingBoundsProgressNotTheWhole) {
  // The writer's batch: many round trips, each answered slowly but well
  // within the limit. Extended after each, the guard never fires however
  // long the whole takes; once the server stops answering, it fires the
  // limit after the last extension. (Outcomes, not fire_expired()'s count:
  // the watchdog's own thread may look first.)
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  auto guard = watchdog.arm_socket(pair.ours(), 4000ms);
  for (int step = 0; step < 20; ++step) { // 20 x 3 s: 60 s in all
    clock.advance(3000ms);
    EXPECT_EQ(watchdog.fire_expired(), 0U) << "step " << step;
    EXPECT_TRUE(guard.extend(4000ms)) << "step " << step;
  }
  EXPECT_FALSE(pair.shut_down()) << "a slow server that answers is not cut";
  clock.advance(3999ms); // then it stops answering
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(pair.shut_down());
  clock.advance(1ms);
  watchdog.fire_expired();
  EXPECT_TRUE(pair.shut_down()) << "cut the limit after its last answer";
  EXPECT_TRUE(guard.disarm());
}

TEST(StallWatchdogTest, ExtendingAFiredGuardChangesNothing) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  auto guard = watchdog.arm_socket(pair.ours(), 1000ms);
  clock.advance(1000ms);
  watchdog.fire_expired();
  ASSERT_TRUE(pair.shut_down());
  EXPECT_FALSE(guard.extend(1h)) << "too late: the connection was cut";
  EXPECT_TRUE(guard.disarm()) << "and the guard still says so";
  EXPECT_FALSE(guard.extend(1h)) << "disarmed, it keeps its outcome";
}

TEST(StallWatchdogTest, ExtendingCanShortenAndEmptyGuardsIgnoreIt) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  auto guard = watchdog.arm_socket(pair.ours(), 1h);
  clock.advance(10s);
  EXPECT_TRUE(guard.extend(500ms)); // from now, whatever the limit was
  clock.advance(499ms);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(pair.shut_down());
  clock.advance(1ms);
  watchdog.fire_expired();
  EXPECT_TRUE(pair.shut_down());

  StallWatchdog::Guard none;
  EXPECT_TRUE(none.extend(1ms));
  EXPECT_FALSE(none.disarm());
  SocketPair other;
  auto answered = watchdog.arm_socket(other.ours(), 1h);
  EXPECT_FALSE(answered.disarm());
  EXPECT_TRUE(answered.extend(1ms)) << "a disarmed guard that was not fired";
  clock.advance(1h);
  EXPECT_EQ(watchdog.fire_expired(), 0U);
  EXPECT_FALSE(other.shut_down()) << "extending a disarmed guard arms nothing";
}

TEST(StallWatchdogTest, AMovedGuardKeepsItsDeadlineAndItsOutcome) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair;
  StallWatchdog::Guard moved;
  {
    auto guard = watchdog.arm_socket(pair.ours(), 100ms);
    moved = std::move(guard);
  } // the moved-from guard going away releases nothing
  clock.advance(100ms);
  EXPECT_EQ(watchdog.fire_expired(), 1U);
  StallWatchdog::Guard again(std::move(moved));
  EXPECT_TRUE(again.disarm());
  EXPECT_FALSE(moved.disarm()); // NOLINT(bugprone-use-after-move): a moved-from guard is empty
}

TEST(StallWatchdogTest, NothingToWatchGivesAnEmptyGuard) {
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  auto no_socket = watchdog.arm_socket(-1, 1ms);
  EXPECT_FALSE(no_socket.disarm());
  StallWatchdog::Guard none;
  EXPECT_FALSE(none.disarm());

  // A session that is not PostgreSQL's: SQLite has no server to stall.
  const auto path = std::filesystem::temp_directory_path() /
                    ("usher-watchdog-" + std::to_string(::getpid()) + ".db");
  {
    Database db("sqlite:" + path.string(), 5000ms);
    auto sql = db.connect();
    auto guard = watchdog.arm(*sql, 1ms);
    clock.advance(1s);
    EXPECT_EQ(watchdog.fire_expired(), 0U);
    EXPECT_FALSE(guard.disarm());
    EXPECT_FALSE(db.guard(*sql, 1ms).disarm()) << "SQLite databases have no watchdog";
  }
  for (const char *suffix : {"", "-wal", "-shm"}) {
    std::error_code ignored;
    std::filesystem::remove(path.string() + suffix, ignored);
  }
}

TEST(StallWatchdogTest, ItsThreadCutsAStalledCallByItself) {
  // The system clock and the watchdog's own thread, as in production: a
  // call that does not answer within its limit is cut without anyone
  // asking (the test waits for it, bounded).
  StallWatchdog watchdog;
  SocketPair stalled, answered;
  auto guard = watchdog.arm_socket(stalled.ours(), 50ms);
  auto other = watchdog.arm_socket(answered.ours(), 60s);
  EXPECT_TRUE(stalled.shut_down_within(30s));
  EXPECT_TRUE(guard.disarm());
  EXPECT_FALSE(answered.shut_down());
  EXPECT_FALSE(other.disarm());
}

TEST(StallWatchdogTest, ItsThreadFollowsTheInjectedClock) {
  // The thread reads the injected clock: an hour of real-time limit passes
  // as soon as the test moves the clock (the thread looks again at least
  // once per remaining limit, here at once after being woken by a new arm).
  testing::ManualClock clock;
  StallWatchdog watchdog(clock);
  SocketPair pair, wake;
  auto guard = watchdog.arm_socket(pair.ours(), 1h);
  EXPECT_FALSE(pair.shut_down_within(50ms));
  clock.advance(1h);
  // Arming wakes the thread, which then sees the moved clock.
  auto nudge = watchdog.arm_socket(wake.ours(), 2h);
  EXPECT_TRUE(pair.shut_down_within(30s));
  EXPECT_TRUE(guard.disarm());
  EXPECT_FALSE(nudge.disarm());
}

} // namespace stall_watchdog_test
} // namespace usher::store
