// Unit tests for the embedded queue (queue/embedded_queue.hpp): claims
// through the WriteBatcher, wake-ups by dispatch and interrupt.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include <usher/jobs/job_store.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/store/write_batcher.hpp>

#include "temp_database.hpp"

namespace usher::queue {
namespace {

using namespace std::chrono_literals;

constexpr auto k_max_wait = 30s;

class EmbeddedQueueTest : public ::testing::Test {
protected:
  EmbeddedQueueTest() : m_database("embedded_queue"), m_writer(m_database.db(), 100) {}
  ~EmbeddedQueueTest() override { m_writer.stop(); }

  std::int64_t enqueue(const std::string &email) {
    provisioning::NewUser user;
    user.email = email;
    user.full_name = "Edsger Dijkstra";
    jobs::IntakeStatements intake(m_database.sql());
    auto queued = intake.enqueue(user, {6, "max (token 6)", ""}, std::chrono::hours(24));
    EXPECT_TRUE(queued);
    return queued ? queued->job_id : 0;
  }

  testing::MigratedDatabase m_database;
  store::WriteBatcher m_writer;
};

TEST_F(EmbeddedQueueTest, ClaimLeasesQueuedJobsAndCountsAttempts) {
  EmbeddedQueue queue(m_writer, 1h);
  const auto id = enqueue("a@example.com");
  const auto claimed = queue.claim("w1", 10, 30s, 0ms);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, id);
  EXPECT_EQ(claimed[0].attempts, 1);
  EXPECT_EQ(m_database.text("SELECT lease_owner FROM jobs WHERE id = :id", id), "w1");
  EXPECT_TRUE(queue.claim("w2", 10, 30s, 0ms).empty());
}

TEST_F(EmbeddedQueueTest, AnEmptyQueueReturnsNothingAfterTheWait) {
  EmbeddedQueue queue(m_writer, 1h);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(queue.claim("w1", 10, 30s, 20ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 20ms);
}

TEST_F(EmbeddedQueueTest, DispatchWakesAWaitingClaimer) {
  // A poll interval longer than the test: only the dispatch can wake it.
  EmbeddedQueue queue(m_writer, 1h);
  std::promise<void> waiting;
  auto claimer = std::async(std::launch::async, [&] {
    waiting.set_value();
    return queue.claim("w1", 10, 30s, k_max_wait);
  });
  waiting.get_future().wait();
  const auto id = enqueue("woken@example.com");
  bool answered = false;
  queue.dispatch(id, [&](const Result<void> &sent) { answered = static_cast<bool>(sent); });
  EXPECT_TRUE(answered) << "dispatch answers at once";
  ASSERT_EQ(claimer.wait_for(k_max_wait), std::future_status::ready);
  const auto claimed = claimer.get();
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, id);
}

TEST_F(EmbeddedQueueTest, TheClaimerPollsForJobsOfOtherProcesses) {
  EmbeddedQueue queue(m_writer, 5ms);
  auto claimer =
      std::async(std::launch::async, [&] { return queue.claim("w1", 10, 30s, k_max_wait); });
  const auto id = enqueue("polled@example.com"); // no dispatch: another process wrote it
  ASSERT_EQ(claimer.wait_for(k_max_wait), std::future_status::ready);
  const auto claimed = claimer.get();
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, id);
}

TEST_F(EmbeddedQueueTest, InterruptWakesClaimersAndStopsLaterClaims) {
  EmbeddedQueue queue(m_writer, 1h);
  auto claimer =
      std::async(std::launch::async, [&] { return queue.claim("w1", 10, 30s, k_max_wait); });
  queue.interrupt();
  ASSERT_EQ(claimer.wait_for(k_max_wait), std::future_status::ready);
  EXPECT_TRUE(claimer.get().empty());
  enqueue("late@example.com");
  EXPECT_TRUE(queue.claim("w1", 10, 30s, 0ms).empty());
  EXPECT_EQ(queue.health().backend, "embedded");
  EXPECT_TRUE(queue.health().healthy);
}

} // namespace
} // namespace usher::queue
