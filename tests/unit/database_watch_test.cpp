// Unit tests for health::OutageTracker, the threshold logic of the database
// outage watch: probe results fed in, time moved on a ManualClock, so that
// "the database failed for 10 s" takes no time at all.
#include <gtest/gtest.h>

#include <chrono>

#include "manual_clock.hpp"

#include <usher/health/database_watch.hpp>

namespace usher::health {
namespace database_watch_test {

using namespace std::chrono_literals;
using Kind = OutageTracker::Step::Kind;

class DatabaseOutageTest : public ::testing::Test {
protected:
  // A probe that fails after `took`; the next starts a second after this
  // one started, or when it failed if it took longer.
  OutageTracker::Step fail(std::chrono::milliseconds took = 0ms) {
    const auto started = clock.now();
    clock.advance(took);
    const auto step = tracker.failed(started, "connection refused");
    if (took < 1s) clock.advance(1s - took);
    return step;
  }

  testing::ManualClock clock;
  OutageTracker tracker{10s, clock};
};

TEST_F(DatabaseOutageTest, AlertIsDueOnceTheDatabaseFailedForTheThreshold) {
  const auto began_at = clock.wall();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(fail().kind, Kind::none) << "probe " << i << " at " << i << " s";
  }
  const auto due = fail(); // 10 s after the first failure
  EXPECT_EQ(due.kind, Kind::alert_due);
  EXPECT_EQ(due.outage.began_at, began_at);
  EXPECT_EQ(due.outage.failed_probes, 11);
  EXPECT_EQ(due.outage.error, "connection refused");
  EXPECT_TRUE(due.outage.reached);
}

TEST_F(DatabaseOutageTest, AlertStaysDueUntilThisInstanceTakesCharge) {
  for (int i = 0; i < 10; ++i) fail();
  EXPECT_EQ(fail().kind, Kind::alert_due);
  // Another instance held the claim: still due on the next probe.
  EXPECT_EQ(fail().kind, Kind::alert_due);
  tracker.mark_alerted();
  for (int i = 0; i < 30; ++i) {
    const auto step = fail();
    EXPECT_EQ(step.kind, Kind::none);
    EXPECT_TRUE(step.outage.alerted);
  }
}

TEST_F(DatabaseOutageTest, ASuccessAfterTheThresholdResolvesTheOutageOnce) {
  const auto began_at = clock.wall();
  for (int i = 0; i < 11; ++i) fail();
  tracker.mark_alerted();
  for (int i = 0; i < 36; ++i) fail();
  const auto ended_at = clock.wall();
  const auto resolved = tracker.succeeded();
  ASSERT_EQ(resolved.kind, Kind::resolved);
  EXPECT_EQ(resolved.outage.began_at, began_at);
  EXPECT_EQ(resolved.outage.ended_at, ended_at);
  EXPECT_EQ(resolved.outage.ended_at - resolved.outage.began_at, 47s);
  EXPECT_EQ(resolved.outage.failed_probes, 47);
  EXPECT_TRUE(resolved.outage.alerted);
  EXPECT_FALSE(tracker.current().has_value());
  EXPECT_EQ(tracker.succeeded().kind, Kind::none);
}

TEST_F(DatabaseOutageTest, AnOutageNobodyAlertedStillResolves) {
  // Alerts off, or another instance alerted: the events are still written.
  for (int i = 0; i < 12; ++i) fail();
  const auto resolved = tracker.succeeded();
  EXPECT_EQ(resolved.kind, Kind::resolved);
  EXPECT_FALSE(resolved.outage.alerted);
}

TEST_F(DatabaseOutageTest, FailuresShorterThanTheThresholdEndSilently) {
  for (int i = 0; i < 9; ++i) EXPECT_EQ(fail().kind, Kind::none);
  EXPECT_EQ(tracker.succeeded().kind, Kind::none);
  EXPECT_FALSE(tracker.current().has_value());
}

TEST_F(DatabaseOutageTest, OneSuccessRestartsTheCount) {
  // Failing continuously is what counts: 9 s, one answer, 9 s is no outage.
  for (int i = 0; i < 9; ++i) fail();
  tracker.succeeded();
  clock.advance(1s);
  const auto second_began = clock.wall();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fail().kind, Kind::none);
  const auto due = fail();
  EXPECT_EQ(due.kind, Kind::alert_due);
  EXPECT_EQ(due.outage.began_at, second_began);
  EXPECT_EQ(due.outage.failed_probes, 11);
}

TEST_F(DatabaseOutageTest, AnOutageBeginsWhenItsFirstFailedProbeStarted) {
  // A partition: the probe hangs until its connect timeout (5 s) before it
  // fails; the outage began when that probe started.
  const auto began_at = clock.wall();
  EXPECT_EQ(fail(5s).kind, Kind::none);
  EXPECT_EQ(fail(5s).kind, Kind::alert_due) << "10 s after the first probe began";
  EXPECT_EQ(tracker.current()->began_at, began_at);
}

TEST_F(DatabaseOutageTest, ALaterOutageIsANewOne) {
  for (int i = 0; i < 11; ++i) fail();
  tracker.mark_alerted();
  ASSERT_EQ(tracker.succeeded().kind, Kind::resolved);
  clock.advance(60s);
  const auto step = fail();
  EXPECT_EQ(step.kind, Kind::none);
  EXPECT_FALSE(step.outage.alerted);
  EXPECT_EQ(step.outage.failed_probes, 1);
  for (int i = 0; i < 9; ++i) fail();
  EXPECT_EQ(fail().kind, Kind::alert_due);
}

} // namespace database_watch_test
} // namespace usher::health
