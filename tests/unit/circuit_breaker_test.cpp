// queue/circuit_breaker: closed -> open after N consecutive failures ->
// half-open probe after the open time -> closed or open again.
#include <gtest/gtest.h>

#include <usher/queue/circuit_breaker.hpp>

namespace usher::queue {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;

TEST(CircuitBreaker, OpensOnlyAfterConsecutiveFailures) {
  CircuitBreaker breaker(3, 1000ms);
  const auto t0 = CircuitBreaker::Clock::now();
  EXPECT_FALSE(breaker.record_failure(t0));
  EXPECT_FALSE(breaker.record_failure(t0));
  breaker.record_success(); // the count starts again
  EXPECT_FALSE(breaker.record_failure(t0));
  EXPECT_FALSE(breaker.record_failure(t0));
  EXPECT_TRUE(breaker.closed());
  EXPECT_TRUE(breaker.record_failure(t0)) << "the third in a row opens it";
  EXPECT_EQ(breaker.state(), State::open);
  EXPECT_FALSE(breaker.record_failure(t0)) << "opening is reported once";
}

TEST(CircuitBreaker, ProbesOnlyAfterTheOpenTimeAndOneAtATime) {
  CircuitBreaker breaker(1, 1000ms);
  const auto t0 = CircuitBreaker::Clock::now();
  ASSERT_TRUE(breaker.record_failure(t0));
  EXPECT_FALSE(breaker.begin_probe(t0 + 999ms));
  EXPECT_TRUE(breaker.begin_probe(t0 + 1000ms));
  EXPECT_EQ(breaker.state(), State::half_open);
  EXPECT_FALSE(breaker.begin_probe(t0 + 2000ms)) << "one probe at a time";
  EXPECT_FALSE(breaker.closed()) << "requests still go inline while the probe runs";
}

TEST(CircuitBreaker, AFailedProbeOpensItForAnotherPeriod) {
  CircuitBreaker breaker(1, 1000ms);
  const auto t0 = CircuitBreaker::Clock::now();
  ASSERT_TRUE(breaker.record_failure(t0));
  ASSERT_TRUE(breaker.begin_probe(t0 + 1000ms));
  breaker.probe_failed(t0 + 1500ms);
  EXPECT_EQ(breaker.state(), State::open);
  EXPECT_FALSE(breaker.begin_probe(t0 + 2000ms));
  EXPECT_TRUE(breaker.begin_probe(t0 + 2500ms));
}

TEST(CircuitBreaker, ASuccessfulProbeClosesItAndFailuresCountFromZero) {
  CircuitBreaker breaker(2, 10ms);
  const auto t0 = CircuitBreaker::Clock::now();
  breaker.record_failure(t0);
  ASSERT_TRUE(breaker.record_failure(t0));
  ASSERT_TRUE(breaker.begin_probe(t0 + 10ms));
  breaker.probe_succeeded();
  EXPECT_TRUE(breaker.closed());
  EXPECT_FALSE(breaker.record_failure(t0 + 20ms));
  EXPECT_TRUE(breaker.record_failure(t0 + 20ms));
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(to_string(State::closed), "closed");
  EXPECT_EQ(to_string(State::open), "open");
  EXPECT_EQ(to_string(State::half_open), "half_open");
}

} // namespace
} // namespace usher::queue
