// queue/redis_queue against a real redis-server and a migrated temporary
// SQLite database: delivery, de-duplication by the job row, the circuit
// breaker's events, database claims while the circuit is open, the sweeper.
// The suite name starts with JobQueue so that the TSan step runs it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include <unistd.h>

#include <usher/jobs/job_store.hpp>
#include <usher/queue/redis_queue.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>

#include "redis_server.hpp"

namespace usher::queue {
namespace {

using namespace std::chrono_literals;

std::filesystem::path unique_path() {
  static std::atomic<int> counter{0};
  return std::filesystem::temp_directory_path() /
         ("usher_unit_redis_queue_" + std::to_string(getpid()) + "_" + std::to_string(counter++) +
          "_" + std::to_string(std::random_device{}()) + ".db");
}

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

class JobQueueRedisTest : public ::testing::Test {
protected:
  JobQueueRedisTest() : m_path(unique_path()), m_db("sqlite:" + m_path.string(), 5000ms) {
    crypto::initialise();
    m_sql = m_db.connect();
    store::migrate(*m_sql, m_db.dialect());
    m_writer = std::make_unique<store::WriteBatcher>(m_db, 1000);
    RedisQueueSettings settings;
    settings.endpoint = m_redis_server.endpoint();
    settings.timeouts = redis::Timeouts{100ms, 100ms};
    settings.prefix = "q:";
    settings.breaker_failures = 2;
    settings.breaker_open = 200ms;
    settings.sweep_interval = 3600s; // sweeps run when a test asks
    settings.sweep_grace = 0ms;
    settings.lease = 1000ms;
    settings.poll_interval = 50ms;
    QueueEvents events;
    events.unavailable = [this](const std::string &) { ++m_unavailable; };
    events.recovered = [this](const std::string &) { ++m_recovered; };
    m_queue = std::make_unique<RedisQueue>(settings, *m_writer, m_db, events);
    m_queue->start();
  }

  ~JobQueueRedisTest() override {
    m_queue->stop();
    m_queue.reset();
    m_writer->stop();
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }

  std::int64_t enqueue(const std::string &email) {
    provisioning::NewUser user;
    user.email = email;
    user.full_name = "Buyer";
    soci::transaction transaction(*m_sql);
    jobs::IntakeStatements intake(*m_sql);
    auto queued = intake.enqueue(user, {1, "test", ""}, std::chrono::hours(1));
    EXPECT_TRUE(queued.has_value());
    transaction.commit();
    return queued ? queued->job_id : 0;
  }

  Result<void> dispatch(std::int64_t job_id) {
    std::promise<Result<void>> sent;
    auto outcome = sent.get_future();
    m_queue->dispatch(job_id, [&sent](const Result<void> &result) { sent.set_value(result); });
    if (outcome.wait_for(5s) != std::future_status::ready) {
      return fail(ErrorKind::timeout, "test", "dispatch never called back");
    }
    return outcome.get();
  }

  long long redis_integer(const redis::Command &command) {
    redis::Connection connection(m_redis_server.endpoint(), {100ms, 500ms});
    auto reply = connection.run(command);
    return reply ? reply->integer : -1;
  }

  std::string status_of(std::int64_t id) {
    std::string status;
    const long long job = id;
    *m_sql << "SELECT status FROM jobs WHERE id = :id", soci::use(job), soci::into(status);
    return status;
  }

  testing::RedisServer m_redis_server;
  std::filesystem::path m_path;
  store::Database m_db;
  std::unique_ptr<soci::session> m_sql;
  std::unique_ptr<store::WriteBatcher> m_writer;
  std::atomic<int> m_unavailable{0};
  std::atomic<int> m_recovered{0};
  std::unique_ptr<RedisQueue> m_queue;
};

TEST_F(JobQueueRedisTest, ADispatchedJobIsClaimedByOneWorkerAndAcknowledged) {
  const auto id = enqueue("a@example.com");
  ASSERT_TRUE(dispatch(id).has_value());
  auto claimed = m_queue->claim("w1", 10, 5000ms, 500ms);
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].id, id);
  EXPECT_EQ(claimed[0].attempts, 1);
  EXPECT_EQ(claimed[0].user.email, "a@example.com");
  EXPECT_EQ(status_of(id), "running");
  EXPECT_TRUE(m_queue->claim("w2", 10, 5000ms, 100ms).empty()) << "delivered once";
  m_queue->acknowledge({id});
  EXPECT_EQ(redis_integer({"XLEN", "q:jobs"}), 0);
  EXPECT_EQ(redis_integer({"SCARD", "q:known"}), 0);
  const auto health = m_queue->health();
  EXPECT_EQ(health.backend, "redis");
  EXPECT_TRUE(health.healthy);
  EXPECT_EQ(health.circuit, "closed");
}

TEST_F(JobQueueRedisTest, ADeliveryOfAFinishedJobIsDroppedNotRun) {
  const auto id = enqueue("b@example.com");
  *m_sql << "UPDATE jobs SET status = 'succeeded' WHERE id = " << id;
  ASSERT_TRUE(dispatch(id).has_value());
  EXPECT_TRUE(m_queue->claim("w1", 10, 5000ms, 200ms).empty());
  EXPECT_EQ(redis_integer({"XLEN", "q:jobs"}), 0) << "the duplicate entry is gone";
  EXPECT_EQ(redis_integer({"SCARD", "q:known"}), 0);
}

TEST_F(JobQueueRedisTest, ARetryWaitsInTheDelayedSetUntilItsTime) {
  const auto id = enqueue("c@example.com");
  ASSERT_TRUE(dispatch(id).has_value());
  auto claimed = m_queue->claim("w1", 10, 5000ms, 500ms);
  ASSERT_EQ(claimed.size(), 1U);
  const auto retry = std::chrono::system_clock::now() + 300ms;
  *m_sql << "UPDATE jobs SET status = 'queued', run_after = '" << usher::clock::iso8601(retry)
         << "' WHERE id = " << id;
  m_queue->retry_at(id, retry);
  EXPECT_EQ(redis_integer({"ZCARD", "q:delayed"}), 1);
  EXPECT_TRUE(m_queue->claim("w1", 10, 5000ms, 100ms).empty()) << "not due yet";
  std::vector<jobs::ClaimedJob> again;
  ASSERT_TRUE(eventually(
      [&] {
        again = m_queue->claim("w1", 10, 5000ms, 100ms);
        return !again.empty();
      },
      5s));
  EXPECT_EQ(again[0].id, id);
  EXPECT_EQ(again[0].attempts, 2);
}

TEST_F(JobQueueRedisTest, AnOutageOpensTheCircuitOnceAndTheDatabaseKeepsJobsMoving) {
  m_redis_server.kill();
  const auto first = enqueue("d@example.com");
  EXPECT_FALSE(dispatch(first).has_value());
  EXPECT_FALSE(dispatch(first).has_value());
  EXPECT_FALSE(m_queue->accepting()) << "two failures in a row open the circuit";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(dispatch(first).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s) << "open: refused at once";
  EXPECT_EQ(m_unavailable.load(), 1);
  EXPECT_EQ(m_queue->health().circuit, "open");
  EXPECT_FALSE(m_queue->health().healthy);

  // Workers take the job from the database while Redis is away.
  auto claimed = m_queue->claim("w1", 10, 5000ms, 500ms);
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].id, first);

  m_redis_server.start();
  ASSERT_TRUE(eventually([&] { return m_recovered.load() == 1; }, 5s));
  EXPECT_TRUE(m_queue->accepting());
  EXPECT_EQ(m_unavailable.load(), 1);
  const auto second = enqueue("e@example.com");
  EXPECT_TRUE(dispatch(second).has_value()) << "no stale connection after the restart";
}

TEST_F(JobQueueRedisTest, TheSweeperResendsQueuedJobsRedisDoesNotHold) {
  for (int i = 0; i < 5; ++i) enqueue("f" + std::to_string(i) + "@example.com");
  auto swept = m_queue->sweep_once();
  ASSERT_TRUE(swept.has_value()) << swept.error().detail;
  EXPECT_EQ(*swept, 5);
  EXPECT_EQ(m_queue->sweep_once().value_or(-1), 0) << "Redis holds them: nothing sent twice";
  EXPECT_EQ(redis_integer({"XLEN", "q:jobs"}), 5);

  EXPECT_EQ(redis_integer({"FLUSHALL"}), 0);
  EXPECT_EQ(m_queue->sweep_once().value_or(-1), 5) << "after FLUSHALL they are sent again";
  std::size_t claimed = 0;
  ASSERT_TRUE(eventually(
      [&] {
        claimed += m_queue->claim("w1", 10, 5000ms, 100ms).size();
        return claimed == 5;
      },
      5s));
}

TEST_F(JobQueueRedisTest, AnEntryWhoseJobNeverComesBackIsForgottenAfterTwoLeases) {
  // Issue 15: a job whose lease was lost (or whose completion's write timed
  // out) is never acknowledged nor retried here; its entry must not stay in
  // the per-entry map for ever.
  const auto lost = enqueue("lost@example.com");
  const auto done = enqueue("done@example.com");
  ASSERT_TRUE(dispatch(lost).has_value());
  ASSERT_TRUE(dispatch(done).has_value());
  std::size_t claimed = 0;
  ASSERT_TRUE(eventually(
      [&] {
        claimed += m_queue->claim("w1", 10, 100ms, 100ms).size();
        return claimed == 2;
      },
      5s));
  EXPECT_EQ(m_queue->tracked_entries(), 2U);
  m_queue->acknowledge({done});
  EXPECT_EQ(m_queue->tracked_entries(), 1U) << "an acknowledged entry goes at once";
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(m_queue->forget_stale_entries(now), 0U) << "kept while its lease may still hold";
  EXPECT_EQ(m_queue->forget_stale_entries(now + 2001ms), 1U)
      << "two of the queue's leases (1 s, longer than the claim's) after the claim";
  EXPECT_EQ(m_queue->tracked_entries(), 0U);
  // The monitor thread does the same on its own.
  const auto again = enqueue("again@example.com");
  ASSERT_TRUE(dispatch(again).has_value());
  ASSERT_TRUE(eventually([&] { return m_queue->claim("w1", 10, 100ms, 100ms).size() == 1; }, 5s));
  EXPECT_EQ(m_queue->tracked_entries(), 1U);
  EXPECT_TRUE(eventually([&] { return m_queue->tracked_entries() == 0; }, 5s));
}

} // namespace
} // namespace usher::queue
