// Unit tests for the worker loop (worker/worker.hpp) against a real SQLite
// file, the WriteBatcher and the embedded queue: a success, a failure that
// is retried with backoff and then dead, a lost lease; and backoff_delay.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <usher/jobs/job_store.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/worker/worker.hpp>

#include "temp_database.hpp"

namespace usher::worker {
namespace {

using namespace std::chrono_literals;

constexpr auto k_max_wait = 30s;

// Polls `condition` until it holds or k_max_wait passed.
bool wait_until(const std::function<bool()> &condition) {
  const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

TEST(BackoffTest, DoublesPerAttemptWithJitterBetweenHalfAndAll) {
  EXPECT_EQ(backoff_delay(1000ms, 1, 1.0), 1000ms);
  EXPECT_EQ(backoff_delay(1000ms, 2, 1.0), 2000ms);
  EXPECT_EQ(backoff_delay(1000ms, 3, 1.0), 4000ms);
  EXPECT_EQ(backoff_delay(1000ms, 3, 0.0), 2000ms);
  EXPECT_EQ(backoff_delay(1000ms, 3, 0.5), 3000ms);
  EXPECT_EQ(backoff_delay(1000ms, 0, 1.0), 1000ms) << "no attempt yet: the base";
}

TEST(BackoffTest, IsCappedAtOneHour) {
  EXPECT_EQ(backoff_delay(1000ms, 13, 1.0), std::chrono::milliseconds(std::chrono::hours(1)));
  EXPECT_EQ(backoff_delay(1000ms, 1000, 1.0), std::chrono::milliseconds(std::chrono::hours(1)));
  EXPECT_EQ(backoff_delay(1000ms, 1000, 0.0), std::chrono::milliseconds(30min));
}

class WorkerTest : public ::testing::Test {
protected:
  WorkerTest() : m_database("worker"), m_writer(m_database.db(), 100), m_queue(m_writer, 5ms) {}
  ~WorkerTest() override { m_writer.stop(); }

  WorkerSettings settings() {
    WorkerSettings s;
    s.threads = 1;
    s.claim_batch = 16;
    s.lease = 30s;
    s.backoff = 1ms;
    s.max_attempts = 2;
    s.instance = "test";
    return s;
  }

  std::int64_t enqueue(const std::string &email) {
    provisioning::NewUser user;
    user.email = email;
    user.full_name = "Alan Turing";
    jobs::IntakeStatements intake(m_database.sql());
    auto queued = intake.enqueue(user, {5, "lee (token 5)", ""}, std::chrono::hours(24));
    EXPECT_TRUE(queued);
    m_queue.dispatch(queued ? queued->job_id : 0, {});
    return queued ? queued->job_id : 0;
  }

  std::string status(std::int64_t id) {
    return m_database.text("SELECT status FROM jobs WHERE id = :id", id);
  }

  long long attempts(const std::string &outcome) {
    return m_database.count("SELECT COUNT(*) FROM job_attempts WHERE outcome = :o", outcome);
  }

  testing::MigratedDatabase m_database;
  store::WriteBatcher m_writer;
  queue::EmbeddedQueue m_queue;
};

TEST_F(WorkerTest, ProvisionsAQueuedJob) {
  Worker worker(m_queue, m_writer, settings());
  worker.start();
  const auto id = enqueue("ok@example.com");
  ASSERT_TRUE(wait_until([&] { return worker.succeeded() == 1; }));
  worker.stop();
  EXPECT_EQ(status(id), "succeeded");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e",
                             "ok@example.com"),
            1);
  EXPECT_EQ(attempts("succeeded"), 1);
}

TEST_F(WorkerTest, AFailingJobIsRetriedWithBackoffThenDead) {
  auto s = settings();
  std::atomic<int> failures{0};
  s.checkpoint = [&failures](const char *step) {
    if (std::string(step) == "account") {
      ++failures;
      throw std::runtime_error("mail server down");
    }
  };
  Worker worker(m_queue, m_writer, s);
  worker.start();
  const auto id = enqueue("fails@example.com");
  ASSERT_TRUE(wait_until([&] { return attempts("dead") == 1; }));
  worker.stop();
  // At least once per attempt: a write that fails having changed rows runs
  // again once its batch was rolled back (store/write_batcher.hpp), so the
  // attempts are counted in their rows.
  EXPECT_GE(failures.load(), 2);
  EXPECT_EQ(status(id), "dead");
  EXPECT_EQ(attempts("failed"), 1);
  EXPECT_EQ(m_database.text("SELECT last_error FROM jobs WHERE id = :id", id), "mail server down");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM accounts"), 0) << "each attempt rolled back";
  EXPECT_EQ(
      m_database.count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = :t", "ERROR"),
      1);
  EXPECT_EQ(worker.succeeded(), 0u);
}

TEST_F(WorkerTest, FailedAttemptsAndDeadJobsAreCounted) {
  metrics::Registry registry;
  auto s = settings();
  s.metrics = &registry;
  s.checkpoint = [](const char *step) {
    if (std::string(step) == "account") throw std::runtime_error("mail server down");
  };
  auto &outcomes = registry.counter("usher_jobs_total", "", {"outcome"});
  Worker worker(m_queue, m_writer, s);
  worker.start();
  enqueue("dies@example.com");
  ASSERT_TRUE(wait_until([&] { return outcomes.with({"dead"}).value() == 1; }));
  worker.stop();
  EXPECT_EQ(outcomes.with({"failed_attempt"}).value(), 1);
  EXPECT_EQ(outcomes.with({"succeeded"}).value(), 0);
  EXPECT_EQ(registry.counter("usher_job_attempts_total", "").with().value(), 2);
  EXPECT_EQ(registry.render().find("@example.com"), std::string::npos);
}

TEST_F(WorkerTest, SuccessesAndTheirIntakeToSuccessTimeAreRecorded) {
  metrics::Registry registry;
  auto s = settings();
  s.metrics = &registry;
  auto &outcomes = registry.counter("usher_jobs_total", "", {"outcome"});
  Worker worker(m_queue, m_writer, s);
  worker.start();
  enqueue("lives@example.com");
  ASSERT_TRUE(wait_until([&] { return outcomes.with({"succeeded"}).value() == 1; }));
  worker.stop();
  EXPECT_EQ(outcomes.with({"dead"}).value(), 0);
  EXPECT_EQ(registry.counter("usher_job_attempts_total", "").with().value(), 1);
  const auto text = registry.render();
  EXPECT_NE(text.find("usher_job_intake_to_success_seconds_count 1\n"), std::string::npos) << text;
}

TEST_F(WorkerTest, AJobWhoseLeaseWasTakenIsLeftToItsNewOwner) {
  auto s = settings();
  auto thief = m_database.db().connect();
  std::atomic<bool> stolen{false};
  std::atomic<bool> committed{false};
  s.checkpoint = [&](const char *step) {
    const std::string name = step;
    if (name == "claim" && !stolen.exchange(true)) {
      // Another worker takes the job between the claim and the commit.
      *thief << "UPDATE jobs SET lease_owner = 'thief'";
    }
    if (name == "after_commit") committed = true;
  };
  Worker worker(m_queue, m_writer, s);
  worker.start();
  const auto id = enqueue("lost@example.com");
  ASSERT_TRUE(wait_until([&] { return committed.load(); }));
  worker.stop();
  EXPECT_EQ(status(id), "running");
  EXPECT_EQ(m_database.text("SELECT lease_owner FROM jobs WHERE id = :id", id), "thief");
  EXPECT_EQ(m_database.text("SELECT last_error FROM jobs WHERE id = :id", id), "<null>");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM accounts"), 0) << "its work was rolled back";
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM job_attempts"), 0);
  EXPECT_EQ(worker.succeeded(), 0u);
}

TEST_F(WorkerTest, StopGivesBackLeasesWithoutCountingTheAttempt) {
  auto s = settings();
  std::atomic<bool> claimed{false};
  std::atomic<bool> stopping{false};
  // The attempt waits at the claim until the test stops the worker: its
  // lease is still held when stop() gives leases back.
  s.checkpoint = [&](const char *step) {
    if (std::string(step) != "claim") return;
    claimed = true;
    const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
    while (!stopping.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    throw std::runtime_error("stopped");
  };
  Worker worker(m_queue, m_writer, s);
  worker.start();
  const auto id = enqueue("stop@example.com");
  ASSERT_TRUE(wait_until([&] { return claimed.load(); }));
  stopping = true;
  worker.stop();
  EXPECT_EQ(status(id), "queued");
  EXPECT_EQ(m_database.count("SELECT attempts FROM jobs"), 0);
}

} // namespace
} // namespace usher::worker
