// Unit tests for store/async.hpp: domain work on the BlockingPool and the
// WriteBatcher completes exactly once, with the value, the work's error (its
// writes rolled back) or busy() when the pool or the writer cannot take it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>

#include <usher/health/health_log.hpp>
#include <usher/store/async.hpp>

#include "temp_database.hpp"

namespace usher::store {
namespace {

using namespace std::chrono_literals;

constexpr auto k_async_wait = 30s;

class StoreAsyncTest : public ::testing::Test {
protected:
  StoreAsyncTest()
      : m_database("store_async"), m_writer(m_database.db(), 100), m_pool(m_database.db(), 1, 100) {
  }
  ~StoreAsyncTest() override {
    m_pool.stop();
    m_writer.stop();
  }

  // The one result a completion gets, and how many times it was called.
  template <typename T>
  struct Outcome {
    std::promise<Result<T>> result;
    std::atomic<int> calls{0};
    Completion<T> completion() {
      return [this](Result<T> value) {
        if (++calls == 1) result.set_value(std::move(value));
      };
    }
    Result<T> get() {
      auto future = result.get_future();
      if (future.wait_for(k_async_wait) != std::future_status::ready) {
        ADD_FAILURE() << "no completion";
        return tl::unexpected(Error{});
      }
      return future.get();
    }
  };

  long long events(const std::string &message) {
    return m_database.count("SELECT COUNT(*) FROM system_health_logs WHERE message = :m", message);
  }

  testing::MigratedDatabase m_database;
  WriteBatcher m_writer;
  BlockingPool m_pool;
};

TEST_F(StoreAsyncTest, ReadCompletesWithItsValue) {
  Outcome<long long> outcome;
  read_async<long long>(
      m_pool,
      [](soci::session &sql) {
        long long n = 0;
        sql << "SELECT 41 + 1", soci::into(n);
        return Result<long long>(n);
      },
      outcome.completion());
  const auto result = outcome.get();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, 42);
}

TEST_F(StoreAsyncTest, ReadThatThrowsCompletesOnceAsUnavailable) {
  Outcome<int> outcome;
  read_async<int>(
      m_pool, [](soci::session &) -> Result<int> { throw std::runtime_error("a bug"); },
      outcome.completion());
  const auto result = outcome.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, ErrorKind::unavailable);
  m_pool.stop(); // every task has run
  EXPECT_EQ(outcome.calls.load(), 1);
}

TEST_F(StoreAsyncTest, ReadOnAStoppedPoolIsBusyAtOnce) {
  m_pool.stop();
  Outcome<int> outcome;
  read_async<int>(
      m_pool, [](soci::session &) { return Result<int>(1); }, outcome.completion());
  EXPECT_EQ(outcome.calls.load(), 1);
  const auto result = outcome.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, "unavailable");
}

TEST_F(StoreAsyncTest, WriteCompletesWithItsValueAfterTheCommit) {
  Outcome<std::int64_t> outcome;
  write_async<std::int64_t>(
      m_writer,
      [](WriteContext &context) {
        return Result<std::int64_t>(
            health::record(context.sql(), health::EventType::info, "async write kept", {}, "test"));
      },
      outcome.completion());
  const auto result = outcome.get();
  ASSERT_TRUE(result);
  EXPECT_GT(*result, 0);
  EXPECT_EQ(events("async write kept"), 1);
}

TEST_F(StoreAsyncTest, WriteThatReturnsAnErrorRollsItsChangesBack) {
  Outcome<int> outcome;
  write_async<int>(
      m_writer,
      [](WriteContext &context) -> Result<int> {
        health::record(context.sql(), health::EventType::info, "async write undone", {}, "test");
        return tl::unexpected(Error{ErrorKind::conflict, "taken", "already there", ""});
      },
      outcome.completion());
  const auto result = outcome.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, "taken");
  EXPECT_EQ(events("async write undone"), 0);
}

TEST_F(StoreAsyncTest, WriteOnAStoppedWriterIsBusyAtOnce) {
  m_writer.stop();
  Outcome<int> outcome;
  write_async<int>(
      m_writer, [](WriteContext &) { return Result<int>(1); }, outcome.completion());
  EXPECT_EQ(outcome.calls.load(), 1);
  const auto result = outcome.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, ErrorKind::unavailable);
}

TEST_F(StoreAsyncTest, ProbeReportsAWorkingDatabase) {
  std::promise<bool> ready;
  ASSERT_TRUE(probe_database(m_pool, [&ready](bool ok) { ready.set_value(ok); }));
  auto future = ready.get_future();
  ASSERT_EQ(future.wait_for(k_async_wait), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

} // namespace
} // namespace usher::store
