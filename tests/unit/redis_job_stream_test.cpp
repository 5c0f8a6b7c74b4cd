// redis/connection, redis/script and redis/job_stream against a real redis-server. What
// is due or idle is decided by Redis's clock (TIME, idle times), so the tests
// poll for it with a deadline (until()) instead of sleeping a guessed time.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <usher/redis/connection.hpp>
#include <usher/redis/job_stream.hpp>
#include <usher/redis/script.hpp>

#include "redis_server.hpp"

namespace usher::redis {
namespace {

using namespace std::chrono_literals;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Calls `attempt` until it returns true or `limit` passes (then false); a
// short pause between calls lets Redis's clock move.
template <typename Attempt>
bool until(std::chrono::milliseconds limit, Attempt attempt) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!attempt()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Far more than anything below takes on a loaded machine.
constexpr auto k_deadline = 20s;

class JobStreamTest : public ::testing::Test {
protected:
  long long integer(const Command &command) {
    auto reply = redis.run(command);
    EXPECT_TRUE(reply.has_value());
    return reply ? reply->integer : -1;
  }
  long long used_memory() {
    auto reply = redis.run({"INFO", "memory"});
    EXPECT_TRUE(reply.has_value());
    const std::string &text = reply->text;
    const auto at = text.find("used_memory:");
    return std::stoll(text.substr(at + 12));
  }

  testing::RedisServer server;
  Connection redis{server.endpoint(), Timeouts{100ms, 500ms}};
  JobStream stream{StreamKeys::with_prefix("t:")};
};

TEST_F(JobStreamTest, DispatchSendsAJobIdOnceUntilItIsAcknowledged) {
  auto first = stream.dispatch(redis, {{7, 0}, {8, 0}});
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, (std::vector<bool>{true, true}));
  auto again = stream.dispatch(redis, {{7, 0}});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, std::vector<bool>{false});
  EXPECT_EQ(integer({"XLEN", "t:jobs"}), 2);

  auto read = stream.read(redis, "w1", 10, 100ms);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 2U);
  EXPECT_EQ((*read)[0].job_id, 7);
  EXPECT_EQ((*read)[1].job_id, 8);
  ASSERT_TRUE(stream.acknowledge(redis, *read).has_value());
  EXPECT_EQ(integer({"XLEN", "t:jobs"}), 0);
  EXPECT_EQ(integer({"SCARD", "t:known"}), 0);
  EXPECT_EQ(integer({"XPENDING", "t:jobs", "workers"}), 0) << "acknowledged: nothing pending";

  // Finished, a job id may be sent again (an admin's retry of a dead job).
  auto later = stream.dispatch(redis, {{7, 0}});
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(*later, std::vector<bool>{true});
}

TEST_F(JobStreamTest, ReadWaitsAtMostItsBlockTimeWhenEmpty) {
  const auto start = std::chrono::steady_clock::now();
  auto read = stream.read(redis, "w1", 10, 200ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(read.has_value()) << read.error().detail;
  EXPECT_TRUE(read->empty());
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 5s);
}

TEST_F(JobStreamTest, ADelayedJobIsDeliveredOnlyAfterItsTime) {
  const std::int64_t run_at = now_ms() + 300;
  ASSERT_TRUE(stream.dispatch(redis, {{5, run_at}}).has_value());
  EXPECT_EQ(integer({"ZCARD", "t:delayed"}), 1);
  ASSERT_EQ(stream.promote_due(redis, 100).value_or(-1), 0) << "not due yet";
  auto early = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(early.has_value());
  EXPECT_TRUE(early->empty());
  // Promoted once its time has come, and never before (Redis and this test
  // read the same system clock).
  long long promoted = 0;
  std::int64_t promoted_by = 0;
  ASSERT_TRUE(until(k_deadline, [&] {
    promoted = stream.promote_due(redis, 100).value_or(-1);
    promoted_by = now_ms();
    return promoted != 0;
  })) << "never promoted";
  ASSERT_EQ(promoted, 1);
  EXPECT_GE(promoted_by, run_at) << "promoted before its time";
  auto due = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(due.has_value());
  ASSERT_EQ(due->size(), 1U);
  EXPECT_EQ(due->front().job_id, 5);
}

TEST_F(JobStreamTest, RescheduleMovesADeliveryToTheDelayedSetAndKeepsItKnown) {
  ASSERT_TRUE(stream.dispatch(redis, {{9, 0}}).has_value());
  auto read = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 1U);
  ASSERT_TRUE(stream.reschedule(redis, read->front(), now_ms() + 60000).has_value());
  EXPECT_EQ(integer({"XLEN", "t:jobs"}), 0);
  EXPECT_EQ(integer({"ZCARD", "t:delayed"}), 1);
  EXPECT_EQ(integer({"SISMEMBER", "t:known", "9"}), 1) << "a sweep must not send it twice";
}

TEST_F(JobStreamTest, AnUnacknowledgedEntryIsTakenOverAfterItsIdleTime) {
  ASSERT_TRUE(stream.dispatch(redis, {{11, 0}}).has_value());
  const auto read_at = std::chrono::steady_clock::now();
  auto taken = stream.read(redis, "dead-worker", 10, 10ms);
  ASSERT_TRUE(taken.has_value());
  ASSERT_EQ(taken->size(), 1U);
  auto too_early = stream.reclaim_idle(redis, "w2", 5000ms, 10);
  ASSERT_TRUE(too_early.has_value());
  EXPECT_TRUE(too_early->empty());
  Result<std::vector<Delivery>> reclaimed;
  ASSERT_TRUE(until(k_deadline, [&] {
    reclaimed = stream.reclaim_idle(redis, "w2", 100ms, 10);
    return !reclaimed.has_value() || !reclaimed->empty();
  })) << "never taken over";
  // Redis counts idle time in whole milliseconds: up to 1 ms early.
  EXPECT_GE(std::chrono::steady_clock::now() - read_at, 99ms) << "taken over before 100 ms idle";
  ASSERT_TRUE(reclaimed.has_value()) << reclaimed.error().detail;
  ASSERT_EQ(reclaimed->size(), 1U);
  EXPECT_EQ(reclaimed->front().job_id, 11);
  EXPECT_EQ(reclaimed->front().entry_id, taken->front().entry_id);
}

TEST_F(JobStreamTest, AFlushedRedisGetsItsGroupBackAndTakesJobsAgain) {
  ASSERT_TRUE(stream.dispatch(redis, {{1, 0}}).has_value());
  ASSERT_TRUE(stream.read(redis, "w1", 10, 10ms).has_value());
  ASSERT_TRUE(redis.run({"FLUSHALL"}).has_value());
  auto sent = stream.dispatch(redis, {{1, 0}});
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(*sent, std::vector<bool>{true}) << "Redis forgot the job: it is new again";
  auto read = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(read.has_value()) << read.error().detail;
  ASSERT_EQ(read->size(), 1U);
  EXPECT_EQ(read->front().job_id, 1);
}

TEST_F(JobStreamTest, IdleConsumersWithNothingPendingAreForgotten) {
  ASSERT_TRUE(stream.dispatch(redis, {{1, 0}, {2, 0}}).has_value());
  auto busy = stream.read(redis, "busy", 1, 10ms);
  ASSERT_TRUE(busy.has_value());
  ASSERT_EQ(busy->size(), 1U);
  auto done = stream.read(redis, "done", 1, 10ms);
  ASSERT_TRUE(done.has_value());
  ASSERT_TRUE(stream.acknowledge(redis, *done).has_value());
  // Once "done" has been idle for 20 ms it goes; "busy" never does (it has
  // an entry pending, however long idle).
  Result<long long> forgotten;
  ASSERT_TRUE(until(k_deadline, [&] {
    forgotten = stream.forget_idle_consumers(redis, 20ms);
    return !forgotten.has_value() || *forgotten != 0;
  })) << "no consumer forgotten";
  ASSERT_TRUE(forgotten.has_value()) << forgotten.error().detail;
  EXPECT_EQ(*forgotten, 1) << "only the consumer with nothing pending";
  auto consumers = redis.run({"XINFO", "CONSUMERS", "t:jobs", "workers"});
  ASSERT_TRUE(consumers.has_value());
  EXPECT_EQ(consumers->elements.size(), 1U);
}

// Issue 4: after 100,000 finished jobs Redis holds under 5 MB.
TEST_F(JobStreamTest, FinishedJobsLeaveRedisMemoryBounded) {
  ASSERT_TRUE(stream.ensure_group(redis).has_value());
  const long long before = used_memory();
  constexpr int k_jobs = 100000;
  constexpr int k_batch = 1000;
  for (int start = 1; start <= k_jobs; start += k_batch) {
    std::vector<Dispatch> jobs;
    for (int id = start; id < start + k_batch; ++id) jobs.push_back({id, 0});
    ASSERT_TRUE(stream.dispatch(redis, jobs).has_value());
    auto read = stream.read(redis, "w1", k_batch, 10ms);
    ASSERT_TRUE(read.has_value());
    ASSERT_EQ(read->size(), static_cast<std::size_t>(k_batch));
    ASSERT_TRUE(stream.acknowledge(redis, *read).has_value());
  }
  const long long grown = used_memory() - before;
  EXPECT_LT(grown, 5LL * 1024 * 1024) << "bytes held after 100,000 finished jobs";
  EXPECT_EQ(integer({"XLEN", "t:jobs"}), 0);
  EXPECT_EQ(integer({"SCARD", "t:known"}), 0);
  RecordProperty("redis_bytes_after_100k_jobs", std::to_string(grown));
}

// How many calls of `command` Redis counted since the last CONFIG RESETSTAT.
long long calls_of(Connection &redis, const std::string &command) {
  auto reply = redis.run({"INFO", "commandstats"});
  EXPECT_TRUE(reply.has_value());
  if (!reply) return -1;
  const std::string field = "cmdstat_" + command + ":calls=";
  const auto at = reply->text.find(field);
  return at == std::string::npos ? 0 : std::stoll(reply->text.substr(at + field.size()));
}

TEST(RedisScript, IsLoadedOnceThenRunBySha1) {
  testing::RedisServer server;
  Connection redis(server.endpoint(), Timeouts{100ms, 500ms});
  ASSERT_TRUE(redis.run({"CONFIG", "RESETSTAT"}).has_value());
  const Script script("return ARGV[1]");
  for (const char *value : {"a", "b", "c"}) {
    auto reply = script.run(redis, {"0", value});
    ASSERT_TRUE(reply.has_value()) << reply.error().detail;
    EXPECT_EQ(reply->text, value);
  }
  EXPECT_EQ(calls_of(redis, "script|load"), 1);
  EXPECT_EQ(calls_of(redis, "evalsha"), 3);
  EXPECT_EQ(calls_of(redis, "eval"), 0) << "no script text sent";
}

TEST(RedisScript, ALoadRefusedIsAnError) {
  testing::RedisServer server;
  Connection redis(server.endpoint(), Timeouts{100ms, 500ms});
  const Script script("this is not Lua");
  auto reply = script.run(redis, {"0"});
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, "redis_error");
}

TEST_F(JobStreamTest, OnceRedisKnowsAScriptItIsSentBySha1Only) {
  // The first call of each script finds Redis without it and loads it.
  ASSERT_TRUE(stream.dispatch(redis, {{1, 0}}).has_value());
  auto first = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(stream.acknowledge(redis, *first).has_value());
  ASSERT_TRUE(redis.run({"CONFIG", "RESETSTAT"}).has_value());
  ASSERT_TRUE(stream.dispatch(redis, {{2, 0}, {3, 0}}).has_value());
  auto read = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 2U);
  ASSERT_TRUE(stream.acknowledge(redis, *read).has_value());
  EXPECT_EQ(calls_of(redis, "evalsha"), 4) << "two dispatches, two acknowledgements";
  EXPECT_EQ(calls_of(redis, "eval"), 0) << "no script text sent";
}

TEST_F(JobStreamTest, ScriptsRunAgainAfterScriptFlush) {
  ASSERT_TRUE(stream.dispatch(redis, {{1, 0}}).has_value());
  ASSERT_TRUE(redis.run({"SCRIPT", "FLUSH"}).has_value());
  // A pipelined script (dispatch), answered NOSCRIPT, is sent again by text.
  auto sent = stream.dispatch(redis, {{2, 0}, {3, now_ms() + 60'000}});
  ASSERT_TRUE(sent.has_value()) << sent.error().detail;
  EXPECT_EQ(*sent, (std::vector<bool>{true, true}));
  ASSERT_TRUE(redis.run({"SCRIPT", "FLUSH"}).has_value());
  // A single call (promotion), likewise.
  auto promoted = stream.promote_due(redis, 10);
  ASSERT_TRUE(promoted.has_value()) << promoted.error().detail;
  EXPECT_EQ(*promoted, 0) << "job 3 is due in a minute";
  ASSERT_TRUE(redis.run({"SCRIPT", "FLUSH"}).has_value());
  auto read = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 2U);
  ASSERT_TRUE(stream.acknowledge(redis, *read).has_value());
  EXPECT_EQ(integer({"SCARD", "t:known"}), 1) << "only the delayed job 3 is left";
  EXPECT_EQ(integer({"XLEN", "t:jobs"}), 0);
  // Sent by text once, a script is known again: the next call is by SHA-1.
  ASSERT_TRUE(stream.dispatch(redis, {{4, 0}}).has_value()); // flushed above: by text
  ASSERT_TRUE(redis.run({"CONFIG", "RESETSTAT"}).has_value());
  ASSERT_TRUE(stream.dispatch(redis, {{5, 0}}).has_value());
  EXPECT_EQ(calls_of(redis, "eval"), 0);
  EXPECT_EQ(calls_of(redis, "evalsha"), 1);
}

TEST_F(JobStreamTest, ScriptsRunAfterARedisRestart) {
  ASSERT_TRUE(stream.dispatch(redis, {{1, 0}}).has_value());
  server.kill();
  server.start(); // empty: no keys, no scripts
  Result<std::vector<bool>> sent;
  // The first call after the restart fails on the closed socket; the next reconnects.
  ASSERT_TRUE(until(k_deadline, [&] {
    sent = stream.dispatch(redis, {{2, 0}});
    return sent.has_value();
  })) << sent.error().detail;
  EXPECT_EQ(*sent, std::vector<bool>{true});
  auto read = stream.read(redis, "w1", 10, 10ms);
  ASSERT_TRUE(read.has_value()) << read.error().detail;
  ASSERT_EQ(read->size(), 1U);
  EXPECT_EQ(read->front().job_id, 2);
  ASSERT_TRUE(stream.acknowledge(redis, *read).has_value());
  EXPECT_EQ(integer({"SCARD", "t:known"}), 0);
}

TEST(RedisConnection, ACommandAgainstAHungRedisTimesOutAndTheConnectionRecovers) {
  testing::RedisServer server;
  Connection redis(server.endpoint(), Timeouts{100ms, 100ms});
  ASSERT_TRUE(redis.run({"PING"}).has_value());
  server.pause();
  const auto start = std::chrono::steady_clock::now();
  auto hung = redis.run({"PING"});
  const auto took = std::chrono::steady_clock::now() - start;
  server.resume();
  EXPECT_FALSE(hung.has_value());
  EXPECT_LT(took, 2s) << "bounded by the 100 ms command timeout";
  EXPECT_FALSE(redis.connected()) << "a timed-out connection is closed";
  auto again = redis.run({"PING"});
  ASSERT_TRUE(again.has_value()) << again.error().detail;
  EXPECT_EQ(again->text, "PONG");
}

TEST(RedisConnection, ADeadRedisFailsFastAndARestartedOneIsReconnected) {
  testing::RedisServer server;
  Connection redis(server.endpoint(), Timeouts{100ms, 100ms});
  ASSERT_TRUE(redis.run({"SET", "k", "v"}).has_value());
  server.kill();
  auto down = redis.run({"GET", "k"});
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().code, "redis_unavailable");
  server.start();
  auto back = redis.run({"PING"});
  ASSERT_TRUE(back.has_value()) << back.error().detail;
}

TEST(RedisConnection, ThePasswordOfARefusedAuthIsNotInTheError) {
  testing::RedisServer server;
  Connection redis({"127.0.0.1", server.port(), "s3cret-password", 0}, Timeouts{100ms, 100ms});
  auto reply = redis.run({"PING"});
  ASSERT_FALSE(reply.has_value()) << "this server has no password: AUTH is refused";
  EXPECT_EQ(reply.error().detail.find("s3cret-password"), std::string::npos);
}

} // namespace
} // namespace usher::redis
