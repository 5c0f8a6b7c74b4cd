// Unit tests for health::OutageTracker, the threshold logic of the database
// outage watch: probe results fed in, time moved on a ManualClock, so that
// "the database failed for 10 s" takes no time at all. And the watch's
// thread itself (DatabaseWatchTest, also under TSan): a real PostgreSQL
// client failing against a closed port, a real Bot API client against a
// socket that never answers.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>

#include "manual_clock.hpp"
#include "temp_database.hpp"

#include <usher/health/database_watch.hpp>
#include <usher/store/write_batcher.hpp>

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

// A loopback TCP socket that listens and never accepts: a connection to it
// completes (the kernel's backlog) and the request sent on it is never
// answered.
class SilentListener {
public:
  SilentListener() {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    if (::bind(m_fd, reinterpret_cast<sockaddr *>(&address), size) != 0 || ::listen(m_fd, 8) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr *>(&address), &size) != 0) {
      ::close(m_fd);
      throw std::system_error(errno, std::generic_category(), "bind/listen");
    }
    m_port = ntohs(address.sin_port);
  }
  ~SilentListener() { ::close(m_fd); }
  SilentListener(const SilentListener &) = delete;
  SilentListener &operator=(const SilentListener &) = delete;

  int port() const { return m_port; }
  // True once a connection waits to be accepted (within `timeout`).
  bool connected_within(std::chrono::milliseconds timeout) const {
    pollfd pending{m_fd, POLLIN, 0};
    return ::poll(&pending, 1, static_cast<int>(timeout.count())) == 1;
  }

private:
  int m_fd = -1;
  int m_port = 0;
};

// A loopback port nothing listens on (bound, then released).
int closed_port() {
  SilentListener taken;
  return taken.port();
}

TEST(DatabaseWatchTest, StopsPromptlyWhileItsCriticalWaitsOnABotApiThatDoesNotAnswer) {
  testing::MigratedDatabase store("database_watch");
  store::WriteBatcher writer(store.db(), 100);
  // The watched database: PostgreSQL on a port that refuses, so every probe fails at once.
  const store::Database down("postgresql://usher:secret@127.0.0.1:" +
                                 std::to_string(closed_port()) + "/usher?connect_timeout=1",
                             1000ms);
  SilentListener bot_api;
  alerts::AlertPolicy policy;
  policy.chat_ids = {"1001"};
  policy.kinds = {alerts::AlertKind::critical, alerts::AlertKind::resolved};
  policy.instance = "unit";
  alerts::DirectSettings direct;
  direct.telegram.api_url = "http://127.0.0.1:" + std::to_string(bot_api.port());
  direct.telegram.bot_token = "123456:not-a-real-token";
  direct.telegram.connect_timeout = 1000ms;
  direct.telegram.timeout = 30000ms; // far longer than stop() may take
  DatabaseWatchSettings settings;
  settings.threshold = 200ms;
  settings.interval = 50ms;
  settings.probe_limit = 1000ms;
  settings.instance = "unit";
  settings.database = "PostgreSQL";
  DatabaseWatch watch(down, writer, policy, direct, {}, settings);
  watch.start();

  // The outage passed the threshold and the CRITICAL is on its way.
  ASSERT_TRUE(bot_api.connected_within(10000ms)) << "no request reached the Bot API";
  const auto stopping = std::chrono::steady_clock::now();
  watch.stop();
  const auto took = std::chrono::steady_clock::now() - stopping;
  EXPECT_LT(took, 3s) << "stop() waited for the Bot API's timeout";
  EXPECT_EQ(watch.recorded(), 0) << "the outage never ended: nothing to write";
  writer.stop();
}

} // namespace database_watch_test
} // namespace usher::health
