// Unit tests for store/: migrations and the group-commit WriteBatcher on a temporary SQLite file.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "manual_clock.hpp"

#include <usher/alerts/policy.hpp>
#include <usher/health/folded_event.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::store {
namespace {

using namespace std::chrono_literals;

// Upper bound on every wait, so that a bug fails the test instead of hanging it.
constexpr auto k_max_wait = 30s;

// A SQLite database file of its own under the temporary directory, removed
// (with its WAL files) when the test ends.
class TempDatabase {
public:
  explicit TempDatabase(std::uint64_t wal_limit_bytes = Database::k_default_wal_limit_bytes)
      : m_path(unique_path()),
        m_db("sqlite:" + m_path.string(), std::chrono::milliseconds(5000), true, wal_limit_bytes) {}
  ~TempDatabase() {
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }
  TempDatabase(const TempDatabase &) = delete;
  TempDatabase &operator=(const TempDatabase &) = delete;

  const Database &db() const { return m_db; }

  long long count(const std::string &sql_text) const {
    auto sql = m_db.connect();
    long long n = -1;
    *sql << sql_text, soci::into(n);
    return n;
  }

private:
  static std::filesystem::path unique_path() {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher_unit_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
            std::to_string(std::random_device{}()) + ".db");
  }

  std::filesystem::path m_path;
  Database m_db;
};

// Collects the outcomes passed to Done callbacks, by index.
class Outcomes {
public:
  explicit Outcomes(std::size_t size) : m_results(size) {}

  WriteBatcher::Done done(std::size_t index) {
    return [this, index](const Result<void> &result) {
      std::lock_guard lock(m_mutex);
      m_results[index] = result;
      ++m_calls;
      m_changed.notify_all();
    };
  }

  // True once `count` Done calls have arrived (waits at most k_max_wait).
  bool wait_for(std::size_t count) {
    std::unique_lock lock(m_mutex);
    return m_changed.wait_for(lock, k_max_wait, [&] { return m_calls >= count; });
  }

  std::size_t calls() const {
    std::lock_guard lock(m_mutex);
    return m_calls;
  }

  std::optional<Result<void>> at(std::size_t index) const {
    std::lock_guard lock(m_mutex);
    return m_results[index];
  }

private:
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<std::optional<Result<void>>> m_results;
  std::size_t m_calls = 0;
};

// A write that holds the writer thread until opened, so that tests can line
// up the next batch. Opens itself when destroyed so no test can hang.
class Gate {
public:
  Gate() : m_state(std::make_shared<State>()) {}
  ~Gate() { open(); }
  Gate(const Gate &) = delete;
  Gate &operator=(const Gate &) = delete;

  WriteBatcher::Apply blocking_write() {
    return [state = m_state](soci::session &) {
      std::unique_lock lock(state->mutex);
      state->entered = true;
      state->changed.notify_all();
      state->changed.wait_for(lock, k_max_wait, [&] { return state->open; });
    };
  }

  // True once the writer thread is inside blocking_write().
  bool wait_entered() {
    std::unique_lock lock(m_state->mutex);
    return m_state->changed.wait_for(lock, k_max_wait, [&] { return m_state->entered; });
  }

  void open() {
    std::lock_guard lock(m_state->mutex);
    m_state->open = true;
    m_state->changed.notify_all();
  }

private:
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    bool entered = false;
    bool open = false;
  };
  std::shared_ptr<State> m_state;
};

void create_items_table(const Database &db) {
  auto sql = db.connect();
  *sql << "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)";
}

WriteBatcher::Apply insert_item(std::string name) {
  return [name = std::move(name)](soci::session &sql) {
    sql << "INSERT INTO items (name) VALUES (:name)", soci::use(name);
  };
}

// A prepared INSERT the writer builds through WriteContext::prepared(),
// counting how often it is built.
struct CountedInsert {
  explicit CountedInsert(soci::session &sql)
      : statement((sql.prepare << "INSERT INTO items (name) VALUES (:name)", soci::use(name))) {
    ++constructions;
  }
  static inline std::atomic<int> constructions{0};
  std::string name; // declared before `statement`, which binds it
  soci::statement statement;
};

TEST(Migrations, SecondRunAppliesNothing) {
  TempDatabase temp;
  auto sql = temp.db().connect();
  EXPECT_EQ(migrate(*sql, temp.db().dialect()), latest_migration());
  EXPECT_GE(latest_migration(), 1);
  EXPECT_EQ(migrate(*sql, temp.db().dialect()), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM schema_migrations"), latest_migration());
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM system_config WHERE key = 'system_mode'"), 1);
}

TEST(Migrations, CreateTheSpecTables) {
  TempDatabase temp;
  auto sql = temp.db().connect();
  migrate(*sql, temp.db().dialect());
  for (const char *table : {"accounts", "tripwire_users", "jobs", "idempotency_keys", "api_tokens",
                            "system_config", "system_health_logs", "alert_outbox"}) {
    EXPECT_EQ(temp.count(std::string("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                                     "AND name = '") +
                         table + "'"),
              1)
        << table;
  }
}

TEST(Database, RejectsAnUnknownUrlScheme) {
  EXPECT_THROW(Database("mysql://x", std::chrono::milliseconds(100)), std::runtime_error);
}

TEST(Database, ExecuteScriptRunsEveryStatement) {
  TempDatabase temp;
  auto sql = temp.db().connect();
  execute_script(*sql, "CREATE TABLE a (x INTEGER);\n INSERT INTO a VALUES (1);"
                       "INSERT INTO a VALUES (2);\n  ;  ");
  EXPECT_EQ(temp.count("SELECT SUM(x) FROM a"), 3);
}

// main.cpp configures SQLite as cli::run does, before any connection.
TEST(Database, ConnectionsTakeNoMutexOnceSqliteIsConfigured) {
  TempDatabase temp;
  auto reader = temp.db().connect();
  auto writer = temp.db().connect(/*for_writer=*/true);
  EXPECT_FALSE(sqlite_connection_serialized(*reader));
  EXPECT_FALSE(sqlite_connection_serialized(*writer));
  // Too late once SQLite is in use: refused, and nothing changes.
  EXPECT_FALSE(configure_sqlite_process());
}

TEST(WriteBatcher, BatchSizesAndCommitTimesAreRecorded) {
  constexpr std::size_t k_writes = 50;
  TempDatabase temp;
  create_items_table(temp.db());
  metrics::Registry registry;
  Outcomes outcomes(k_writes);
  WriteBatcher batcher(temp.db(), 10000, k_max_batch, &registry);
  for (std::size_t i = 0; i < k_writes; ++i) {
    ASSERT_TRUE(batcher.submit(insert_item("m-" + std::to_string(i)), outcomes.done(i)));
  }
  // Recorded after each COMMIT, before that batch's Done calls.
  ASSERT_TRUE(outcomes.wait_for(k_writes));
  const auto sizes =
      registry.histogram("usher_writer_batch_size", "", {1, 2, 5, 10, 20, 50, 100, 200, 512})
          .with()
          .snapshot();
  const auto commits =
      registry.histogram("usher_writer_commit_seconds", "", metrics::duration_buckets())
          .with()
          .snapshot();
  EXPECT_EQ(sizes.sum, static_cast<double>(k_writes)); // every write in exactly one batch
  EXPECT_GE(sizes.cumulative.back(), 1U);
  EXPECT_EQ(commits.cumulative.back(), sizes.cumulative.back()); // one commit per batch
  batcher.stop();
}

TEST(WriteBatcher, ConcurrentSubmitsAllCommit) {
  constexpr std::size_t k_threads = 8;
  constexpr std::size_t k_per_thread = 25;
  constexpr std::size_t k_writes = k_threads * k_per_thread;
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(k_writes); // outlives the batcher, whose thread calls into it
  WriteBatcher batcher(temp.db(), 10000);
  std::atomic<int> refused{0};

  std::vector<std::thread> submitters;
  for (std::size_t t = 0; t < k_threads; ++t) {
    submitters.emplace_back([&, t] {
      for (std::size_t i = 0; i < k_per_thread; ++i) {
        const std::size_t index = t * k_per_thread + i;
        if (!batcher.submit(insert_item("item-" + std::to_string(index)), outcomes.done(index))) {
          ++refused;
        }
      }
    });
  }
  for (auto &submitter : submitters) submitter.join();

  EXPECT_EQ(refused, 0);
  ASSERT_TRUE(outcomes.wait_for(k_writes)) << outcomes.calls() << " of " << k_writes << " done";
  for (std::size_t i = 0; i < k_writes; ++i) {
    const auto outcome = outcomes.at(i);
    ASSERT_TRUE(outcome.has_value()) << i;
    EXPECT_TRUE(outcome->has_value()) << i << ": " << outcome->error().detail;
  }
  // Visible to another connection once Done has been called.
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), static_cast<long long>(k_writes));
  EXPECT_EQ(temp.count("SELECT COUNT(DISTINCT name) FROM items"), static_cast<long long>(k_writes));
}

TEST(WriteBatcher, AThrowingWriteIsRolledBackAloneAndTheRestOfItsBatchCommits) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(5);
  WriteBatcher batcher(temp.db(), 100);
  Gate gate; // destroyed (and so opened) before the batcher joins its thread

  // Hold the writer so that the four writes below are taken as one batch.
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), outcomes.done(0)));
  ASSERT_TRUE(gate.wait_entered());
  ASSERT_TRUE(batcher.submit(insert_item("before"), outcomes.done(1)));
  ASSERT_TRUE(batcher.submit(
      [](soci::session &sql) {
        sql << "INSERT INTO items (name) VALUES ('thrown away')";
        throw std::runtime_error("a bug in this write");
      },
      outcomes.done(2)));
  ASSERT_TRUE(batcher.submit(insert_item("after"), outcomes.done(3)));
  // A database error inside a write is rolled back alone too.
  ASSERT_TRUE(batcher.submit(insert_item("before"), outcomes.done(4)));
  EXPECT_EQ(batcher.pending(), 4u);
  gate.open();

  ASSERT_TRUE(outcomes.wait_for(5));
  EXPECT_TRUE(outcomes.at(0)->has_value());
  EXPECT_TRUE(outcomes.at(1)->has_value());
  EXPECT_TRUE(outcomes.at(3)->has_value());
  const auto thrown = *outcomes.at(2);
  ASSERT_FALSE(thrown.has_value());
  EXPECT_EQ(thrown.error().kind, ErrorKind::internal);
  EXPECT_EQ(thrown.error().code, "internal");
  const auto duplicate = *outcomes.at(4);
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().kind, ErrorKind::internal);

  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 2);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name IN ('before', 'after')"), 2);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'thrown away'"), 0);
}

TEST(WriteBatcher, AbortWriteReportsExactlyItsErrorAndRollsBackItsChanges) {
  TempDatabase temp;
  create_items_table(temp.db());
  const Error conflict{ErrorKind::conflict, "user_exists", "an account already exists", "email"};
  Outcomes outcomes(4);
  WriteBatcher batcher(temp.db(), 100);
  Gate gate;

  ASSERT_TRUE(batcher.submit(gate.blocking_write(), outcomes.done(0)));
  ASSERT_TRUE(gate.wait_entered());
  ASSERT_TRUE(batcher.submit(insert_item("kept-1"), outcomes.done(1)));
  ASSERT_TRUE(batcher.submit(
      [&conflict](soci::session &sql) {
        sql << "INSERT INTO items (name) VALUES ('aborted')";
        throw AbortWrite(conflict);
      },
      outcomes.done(2)));
  ASSERT_TRUE(batcher.submit(insert_item("kept-2"), outcomes.done(3)));
  gate.open();

  ASSERT_TRUE(outcomes.wait_for(4));
  const auto aborted = *outcomes.at(2);
  ASSERT_FALSE(aborted.has_value());
  EXPECT_EQ(aborted.error().kind, conflict.kind);
  EXPECT_EQ(aborted.error().code, conflict.code);
  EXPECT_EQ(aborted.error().detail, conflict.detail);
  EXPECT_EQ(aborted.error().field, conflict.field);
  EXPECT_TRUE(outcomes.at(1)->has_value());
  EXPECT_TRUE(outcomes.at(3)->has_value());
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'aborted'"), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name IN ('kept-1', 'kept-2')"), 2);
}

// A write that inserts `name` and counts how often it ran.
WriteBatcher::Apply counted_insert(std::string name, std::atomic<int> &runs) {
  return [name = std::move(name), &runs](soci::session &sql) {
    ++runs;
    sql << "INSERT INTO items (name) VALUES (:name)", soci::use(name);
  };
}

// A conflict decided by the statement itself: nothing was written.
WriteBatcher::Apply refused_insert(std::string name) {
  return [name = std::move(name)](soci::session &sql) {
    soci::statement insert =
        (sql.prepare << "INSERT INTO items (name) VALUES (:name) ON CONFLICT DO NOTHING",
         soci::use(name));
    insert.execute(true);
    if (insert.get_affected_rows() == 0) {
      throw AbortWrite(Error{ErrorKind::conflict, "exists", name, "name"});
    }
  };
}

// Holds the writer on `gate`, then queues `writes` (the i-th reports to
// outcomes' Done i + 1), so that they run as one batch once it opens.
void queue_one_batch(WriteBatcher &batcher, Gate &gate, Outcomes &outcomes,
                     std::vector<WriteBatcher::Apply> writes) {
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), outcomes.done(0)));
  ASSERT_TRUE(gate.wait_entered());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    ASSERT_TRUE(batcher.submit(std::move(writes[i]), outcomes.done(i + 1)));
  }
  gate.open();
}

TEST(WriteBatcher, AWriteThatFailsHavingChangedNothingLeavesItsBatchToCommitOnce) {
  TempDatabase temp;
  create_items_table(temp.db());
  {
    auto sql = temp.db().connect();
    *sql << "INSERT INTO items (name) VALUES ('taken')";
  }
  Outcomes outcomes(4);
  WriteBatcher batcher(temp.db(), 100);
  Gate gate;
  std::atomic<int> first{0};
  std::atomic<int> last{0};
  queue_one_batch(
      batcher, gate, outcomes,
      {counted_insert("first", first), refused_insert("taken"), counted_insert("last", last)});

  ASSERT_TRUE(outcomes.wait_for(4));
  ASSERT_FALSE(outcomes.at(2)->has_value());
  EXPECT_EQ(outcomes.at(2)->error().code, "exists");
  EXPECT_TRUE(outcomes.at(1)->has_value());
  EXPECT_TRUE(outcomes.at(3)->has_value());
  // SQLite: no savepoint was needed to undo it, so nothing ran twice.
  EXPECT_EQ(first.load(), 1);
  EXPECT_EQ(last.load(), 1);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 3);
}

TEST(WriteBatcher, AWriteThatFailsHavingChangedRowsUndoesItsBatchWhichRunsAgainWithSavepoints) {
  TempDatabase temp;
  create_items_table(temp.db());
  const Error conflict{ErrorKind::conflict, "late", "refused after its insert", ""};
  Outcomes outcomes(6);
  WriteBatcher batcher(temp.db(), 100);
  Gate gate;
  std::atomic<int> first{0};
  std::atomic<int> failing{0};
  std::atomic<int> last{0};
  auto insert_then_abort = [&conflict](std::string name, std::atomic<int> &runs) {
    return [name = std::move(name), &runs, &conflict](soci::session &sql) {
      ++runs;
      sql << "INSERT INTO items (name) VALUES (:name)", soci::use(name);
      throw AbortWrite(conflict);
    };
  };
  queue_one_batch(batcher, gate, outcomes,
                  {counted_insert("first", first), insert_then_abort("failing", failing),
                   counted_insert("last", last)});

  ASSERT_TRUE(outcomes.wait_for(4));
  ASSERT_FALSE(outcomes.at(2)->has_value());
  EXPECT_EQ(outcomes.at(2)->error().code, "late");
  EXPECT_TRUE(outcomes.at(1)->has_value());
  EXPECT_TRUE(outcomes.at(3)->has_value());
  // The batch was rolled back and ran again, each write in a savepoint:
  // the writes before the failing one ran twice, the failing one failed
  // again alone, the one after it ran once; every Done came once.
  EXPECT_EQ(first.load(), 2);
  EXPECT_EQ(failing.load(), 2);
  EXPECT_EQ(last.load(), 1);
  EXPECT_EQ(outcomes.calls(), 4u);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'failing'"), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'first'"), 1);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'last'"), 1);

  // The batches right after give each write its savepoint: the next such
  // write fails alone, at once.
  std::atomic<int> again{0};
  ASSERT_TRUE(batcher.submit(insert_then_abort("again", again), outcomes.done(4)));
  ASSERT_TRUE(outcomes.wait_for(5));
  EXPECT_FALSE(outcomes.at(4)->has_value());
  EXPECT_EQ(again.load(), 1);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'again'"), 0);
}

// A prepared UPDATE ... RETURNING on the writer's connection, kept across
// writes: read one row of several, it is still running, and SQLite has not
// counted its changes yet.
struct RenameAll {
  explicit RenameAll(soci::session &sql)
      : statement((sql.prepare << "UPDATE items SET name = name || '-renamed' RETURNING id",
                   soci::into(id))) {}
  long long id = 0; // declared before `statement`, which binds it
  soci::statement statement;
};

TEST(WriteBatcher, NothingOfAFailedWriteWhoseStatementIsStillRunningIsKept) {
  TempDatabase temp;
  create_items_table(temp.db());
  {
    auto sql = temp.db().connect();
    *sql << "INSERT INTO items (name) VALUES ('one')";
    *sql << "INSERT INTO items (name) VALUES ('two')";
  }
  Outcomes outcomes(2);
  WriteBatcher batcher(temp.db(), 100);
  ASSERT_TRUE(batcher.submit(
      [](WriteContext &context) {
        context.prepared<RenameAll>().statement.execute(true); // one row of two read
        throw AbortWrite(Error{ErrorKind::conflict, "renamed", "refused", ""});
      },
      outcomes.done(0)));
  ASSERT_TRUE(outcomes.wait_for(1));
  EXPECT_FALSE(outcomes.at(0)->has_value());
  // The writer goes on.
  ASSERT_TRUE(batcher.submit(insert_item("three"), outcomes.done(1)));
  ASSERT_TRUE(outcomes.wait_for(2));
  EXPECT_TRUE(outcomes.at(1)->has_value()) << outcomes.at(1)->error().detail;
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name LIKE '%-renamed'"), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 3);
}

TEST(WriteBatcher, StopFinishesQueuedWritesAndLaterSubmitsAreRefused) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(20);
  WriteBatcher batcher(temp.db(), 100);
  for (std::size_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(batcher.submit(insert_item("queued-" + std::to_string(i)), outcomes.done(i)));
  }
  batcher.stop();
  EXPECT_EQ(outcomes.calls(), 20u) << "stop() returned before the queue was drained";
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 20);

  bool applied = false;
  bool done = false;
  EXPECT_FALSE(batcher.submit([&](soci::session &) { applied = true; },
                              [&](const Result<void> &) { done = true; }));
  batcher.stop(); // idempotent
  EXPECT_FALSE(applied);
  EXPECT_FALSE(done);
  EXPECT_EQ(batcher.pending(), 0u);
}

TEST(WriteBatcher, QueueLimitIsEnforced) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(5);
  std::atomic<bool> refused_called{false};
  WriteBatcher batcher(temp.db(), 3);
  Gate gate;

  ASSERT_TRUE(batcher.submit(gate.blocking_write(), outcomes.done(0)));
  ASSERT_TRUE(gate.wait_entered()); // the queue is empty again, the writer is busy
  for (std::size_t i = 1; i <= 3; ++i) {
    EXPECT_TRUE(batcher.submit(insert_item("q" + std::to_string(i)), outcomes.done(i))) << i;
  }
  EXPECT_EQ(batcher.pending(), 3u);
  EXPECT_FALSE(batcher.submit(insert_item("overflow"),
                              [&](const Result<void> &) { refused_called = true; }));
  EXPECT_EQ(batcher.pending(), 3u);

  gate.open();
  ASSERT_TRUE(outcomes.wait_for(4));
  EXPECT_FALSE(refused_called);
  // Room again once the batch is taken.
  EXPECT_TRUE(batcher.submit(insert_item("q4"), outcomes.done(4)));
  ASSERT_TRUE(outcomes.wait_for(5));
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'overflow'"), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 4);
}

TEST(WriteBatcher, AThrowingDoneDoesNotStopTheWriter) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(1);
  WriteBatcher batcher(temp.db(), 100);
  ASSERT_TRUE(batcher.submit(insert_item("first"), [](const Result<void> &) {
    throw std::runtime_error("callback bug");
  }));
  ASSERT_TRUE(batcher.submit(insert_item("second"), outcomes.done(0)));
  ASSERT_TRUE(outcomes.wait_for(1));
  EXPECT_TRUE(outcomes.at(0)->has_value());
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 2);
}

// Completions run on their own thread: the writer commits the next batch
// while a Done is still running (before, a Done that waited for a later
// write held the writer and this test timed out), and every Done is called
// in commit order.
TEST(WriteBatcher, TheWriterCommitsTheNextBatchWhileACompletionRuns) {
  TempDatabase temp;
  create_items_table(temp.db());
  WriteBatcher batcher(temp.db(), 100);
  std::mutex mutex;
  std::condition_variable changed;
  bool later_applied = false;
  bool waited = false;
  std::vector<int> order;
  auto record = [&](int index) {
    return [&, index](const Result<void> &written) {
      EXPECT_TRUE(written.has_value()) << index;
      std::lock_guard lock(mutex);
      order.push_back(index);
      changed.notify_all();
    };
  };
  // The first write's Done submits the next write and waits for it to be
  // applied: only a writer that does not run completions can apply it.
  ASSERT_TRUE(batcher.submit(insert_item("first"), [&](const Result<void> &written) {
    EXPECT_TRUE(written.has_value());
    const bool submitted = batcher.submit(
        [&](soci::session &sql) {
          sql << "INSERT INTO items (name) VALUES ('later')";
          std::lock_guard lock(mutex);
          later_applied = true;
          changed.notify_all();
        },
        record(1));
    std::unique_lock lock(mutex);
    order.push_back(0);
    waited = submitted && changed.wait_for(lock, k_max_wait, [&] { return later_applied; });
  }));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, k_max_wait, [&] { return later_applied; }));
  }
  for (int i = 2; i < 50; ++i) {
    ASSERT_TRUE(batcher.submit(insert_item("item-" + std::to_string(i)), record(i)));
  }
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, k_max_wait, [&] { return order.size() == 50; }));
    EXPECT_TRUE(waited) << "the writer waited for a completion before its next batch";
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  }
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 50);
}

// Writes committed but whose Done has not run yet still count against their
// class's queue limit: requests cannot pile up without bound behind a slow
// completion.
TEST(WriteBatcher, WritesWaitingForTheirCompletionCountAgainstTheQueueLimit) {
  TempDatabase temp;
  create_items_table(temp.db());
  WriteBatcher batcher(temp.db(), 2);
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false;
  bool open = false;
  bool marked = false;
  Outcomes outcomes(3);
  // Holds the completion thread until opened.
  ASSERT_TRUE(batcher.submit(insert_item("held"), [&](const Result<void> &) {
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait_for(lock, k_max_wait, [&] { return open; });
  }));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, k_max_wait, [&] { return entered; }));
  }
  ASSERT_TRUE(batcher.submit(insert_item("a"), outcomes.done(0)));
  ASSERT_TRUE(batcher.submit(insert_item("b"), outcomes.done(1)));
  // Once a and b are visible to another connection their batch committed;
  // a background write (its own limit) submitted then runs in a later batch:
  // once it runs, a and b wait for their completions.
  const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
  while (temp.count("SELECT COUNT(*) FROM items") < 3 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms); // polling the database for the commit
  }
  ASSERT_EQ(temp.count("SELECT COUNT(*) FROM items"), 3);
  ASSERT_TRUE(batcher.submit(
      [&](soci::session &) {
        std::lock_guard lock(mutex);
        marked = true;
        changed.notify_all();
      },
      outcomes.done(2), Priority::background));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, k_max_wait, [&] { return marked; }));
  }
  EXPECT_EQ(batcher.pending(Priority::foreground), 0u);
  EXPECT_FALSE(batcher.submit(insert_item("overflow"), [](const Result<void> &) {}));
  {
    std::lock_guard lock(mutex);
    open = true;
    changed.notify_all();
  }
  ASSERT_TRUE(outcomes.wait_for(3));
  EXPECT_TRUE(outcomes.at(0)->has_value());
  EXPECT_TRUE(outcomes.at(1)->has_value());
  // Room again once the completions were taken.
  EXPECT_TRUE(batcher.submit_and_wait(insert_item("c"), k_max_wait));
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name = 'overflow'"), 0);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 4);
}

TEST(WriteBatcher, PreparedObjectsAreBuiltOncePerConnectionAndReused) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(3);
  WriteBatcher batcher(temp.db(), 100);
  CountedInsert::constructions = 0;
  // Three writes in three separate batches: each waits for the one before.
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(batcher.submit(
        [i](WriteContext &context) {
          auto &insert = context.prepared<CountedInsert>();
          insert.name = "prepared-" + std::to_string(i);
          insert.statement.execute(true);
        },
        outcomes.done(i)));
    ASSERT_TRUE(outcomes.wait_for(i + 1));
    EXPECT_TRUE(outcomes.at(i)->has_value()) << i;
  }
  EXPECT_EQ(CountedInsert::constructions, 1);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items WHERE name LIKE 'prepared-%'"), 3);
}

TEST(WriteBatcher, PreparedObjectsStillWorkAfterAWriteWasRolledBack) {
  TempDatabase temp;
  create_items_table(temp.db());
  Outcomes outcomes(3);
  WriteBatcher batcher(temp.db(), 100);
  auto insert_prepared = [](std::string name) {
    return [name = std::move(name)](WriteContext &context) {
      auto &insert = context.prepared<CountedInsert>();
      insert.name = name;
      insert.statement.execute(true); // throws on the duplicate
    };
  };
  ASSERT_TRUE(batcher.submit(insert_prepared("same"), outcomes.done(0)));
  ASSERT_TRUE(batcher.submit(insert_prepared("same"), outcomes.done(1)));
  ASSERT_TRUE(outcomes.wait_for(2));
  ASSERT_TRUE(batcher.submit(insert_prepared("later"), outcomes.done(2)));
  ASSERT_TRUE(outcomes.wait_for(3));
  EXPECT_TRUE(outcomes.at(0)->has_value());
  EXPECT_FALSE(outcomes.at(1)->has_value());
  EXPECT_TRUE(outcomes.at(2)->has_value()) << outcomes.at(2)->error().detail;
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 2);
}

// The writer's two classes (foreground, background): what ran in which batch,
// in order. Applies and Dones all run on the writer thread, so the log is
// exact: a batch is a run of applies followed by its Dones.
class BatchLog {
public:
  // The metrics the batcher under test records into (pass to its
  // constructor): a write's batch is the number of batches committed before
  // it was applied. (Done runs on the completion thread, so the order of
  // applies and Dones no longer tells the batches apart.)
  metrics::Registry *registry() { return &m_registry; }

  WriteBatcher::Apply apply(std::string name) {
    return [this, name = std::move(name)](soci::session &) { add("a:" + name, committed()); };
  }
  WriteBatcher::Done done(std::string name) {
    return [this, name = std::move(name)](const Result<void> &) { add("d:" + name, 0); };
  }

  // Waits (at most k_max_wait) until `name`'s Done was called.
  bool wait_done(const std::string &name) { return wait_done_for(name, k_max_wait); }
  bool wait_done_for(const std::string &name, std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_mutex);
    return m_changed.wait_for(lock, timeout, [&] {
      return std::find_if(m_events.begin(), m_events.end(), [&](const auto &event) {
               return event.first == "d:" + name;
             }) != m_events.end();
    });
  }

  // The names applied in each batch, in order.
  std::vector<std::vector<std::string>> batches() const {
    std::lock_guard lock(m_mutex);
    std::vector<std::vector<std::string>> out;
    std::optional<std::uint64_t> batch;
    for (const auto &[event, committed] : m_events) {
      if (event.rfind("a:", 0) != 0) continue;
      if (batch != committed) out.emplace_back();
      batch = committed;
      out.back().push_back(event.substr(2));
    }
    return out;
  }

private:
  // Batches committed so far (recorded by the writer after each COMMIT,
  // before it takes the next batch).
  std::uint64_t committed() {
    return m_registry.histogram("usher_writer_batch_size", "", {1, 2, 5, 10, 20, 50, 100, 200, 512})
        .with()
        .snapshot()
        .cumulative.back();
  }
  void add(std::string event, std::uint64_t committed) {
    std::lock_guard lock(m_mutex);
    m_events.emplace_back(std::move(event), committed);
    m_changed.notify_all();
  }
  metrics::Registry m_registry;
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<std::pair<std::string, std::uint64_t>> m_events;
};

std::size_t count_prefix(const std::vector<std::string> &names, char prefix) {
  return static_cast<std::size_t>(std::count_if(
      names.begin(), names.end(), [&](const std::string &n) { return n.front() == prefix; }));
}

TEST(WriteBatcherPriority, ForegroundGoesFirstWhenBothAreQueued) {
  TempDatabase temp;
  BatchLog log;
  // Batches of 5: while foreground waits, background keeps room for one.
  // A clock that stands still: the writer's time share never binds, the
  // count rules alone decide.
  testing::ManualClock still;
  WriteBatcher batcher(temp.db(), 100, 5, log.registry(), still);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  for (const char *name : {"b1", "b2", "b3", "b4", "b5"}) {
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name), Priority::background));
  }
  for (const char *name : {"f1", "f2", "f3"}) {
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name))); // foreground by default
  }
  EXPECT_EQ(batcher.pending(Priority::background), 5u);
  EXPECT_EQ(batcher.pending(Priority::foreground), 3u);
  gate.open();
  ASSERT_TRUE(log.wait_done("b5"));
  // Foreground first, then background's share (one write for up to four
  // foreground ones); right after a batch with foreground, background alone
  // gets its share of a batch (one of 5), then the whole batch.
  const std::vector<std::vector<std::string>> expected{
      {"f1", "f2", "f3", "b1"}, {"b2"}, {"b3", "b4", "b5"}};
  EXPECT_EQ(log.batches(), expected);
}

TEST(WriteBatcherPriority, BackgroundAloneFillsTheBatch) {
  TempDatabase temp;
  BatchLog log;
  // A clock that stands still: the writer's time share never binds, the
  // count rules alone decide.
  testing::ManualClock still;
  WriteBatcher batcher(temp.db(), 100, 5, log.registry(), still);
  Gate gate;
  ASSERT_TRUE(batcher.submit(
      gate.blocking_write(), [](const Result<void> &) {}, Priority::background));
  ASSERT_TRUE(gate.wait_entered());
  for (const char *name : {"b1", "b2", "b3", "b4", "b5", "b6"}) {
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name), Priority::background));
  }
  gate.open();
  ASSERT_TRUE(log.wait_done("b6"));
  const std::vector<std::vector<std::string>> expected{{"b1", "b2", "b3", "b4", "b5"}, {"b6"}};
  EXPECT_EQ(log.batches(), expected);
}

TEST(WriteBatcherPriority, BackgroundKeepsItsShareWhileForegroundNeverStops) {
  TempDatabase temp;
  BatchLog log;
  constexpr std::size_t k_batch = 10; // foreground at most 8, background 2 while both wait
  constexpr std::size_t k_background = 30;
  // A clock that stands still: the writer's time share never binds, the
  // count rules alone decide.
  testing::ManualClock still;
  WriteBatcher batcher(temp.db(), 1000, k_batch, log.registry(), still);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  std::size_t next_foreground = 0;
  auto submit_foreground = [&] {
    const std::string name = "f" + std::to_string(next_foreground);
    if (batcher.submit(log.apply(name), log.done(name))) ++next_foreground;
  };
  // Enough foreground queued for every batch until background is done
  // (15 batches of 8), whatever the pace of the feeder below.
  while (batcher.pending(Priority::foreground) < 400) submit_foreground();
  for (std::size_t i = 0; i < k_background; ++i) {
    const std::string name = "b" + std::to_string(i);
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name), Priority::background));
  }
  // Foreground never runs dry: one thread keeps its queue topped up until
  // the last background write committed.
  std::atomic<bool> stop_feeding{false};
  std::thread feeder([&] {
    while (!stop_feeding.load()) {
      if (batcher.pending(Priority::foreground) < 400) {
        submit_foreground();
      } else {
        std::this_thread::yield();
      }
    }
  });
  gate.open();
  const bool finished = log.wait_done("b" + std::to_string(k_background - 1));
  stop_feeding = true;
  feeder.join();
  ASSERT_TRUE(finished) << "background starved";

  const auto batches = log.batches();
  ASSERT_FALSE(batches.empty());
  // The first batch after the gate: a full foreground share and background's two.
  EXPECT_EQ(count_prefix(batches.front(), 'f'), 8u);
  EXPECT_EQ(count_prefix(batches.front(), 'b'), 2u);
  std::size_t background_seen = 0;
  for (const auto &batch : batches) {
    if (background_seen == k_background) break;
    const auto foreground = count_prefix(batch, 'f');
    const auto background = count_prefix(batch, 'b');
    // Every batch until background is done has some of it (never starved),
    // and no more than its share while foreground waits.
    EXPECT_GE(background, 1u);
    EXPECT_LE(background, foreground > 0 ? std::max<std::size_t>(1, foreground / k_background_ratio)
                                         : k_batch / (k_background_ratio + 1))
        << ::testing::PrintToString(batch);
    EXPECT_LE(batch.size(), k_batch);
    background_seen += background;
  }
  EXPECT_EQ(background_seen, k_background);
}

TEST(WriteBatcherPriority, EachClassHasItsOwnQueueLimit) {
  TempDatabase temp;
  BatchLog log;
  WriteBatcher batcher(temp.db(), 2, k_max_batch, log.registry());
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  std::atomic<bool> refused_called{false};
  auto refused = [&](const Result<void> &) { refused_called = true; };
  EXPECT_TRUE(batcher.submit(log.apply("f1"), log.done("f1")));
  EXPECT_TRUE(batcher.submit(log.apply("f2"), log.done("f2")));
  EXPECT_FALSE(batcher.submit(log.apply("f3"), refused)); // foreground full
  // Background has its own room: a full foreground does not refuse it.
  EXPECT_TRUE(batcher.submit(log.apply("b1"), log.done("b1"), Priority::background));
  EXPECT_TRUE(batcher.submit(log.apply("b2"), log.done("b2"), Priority::background));
  EXPECT_FALSE(batcher.submit(log.apply("b3"), refused, Priority::background));
  EXPECT_EQ(batcher.pending(Priority::foreground), 2u);
  EXPECT_EQ(batcher.pending(Priority::background), 2u);
  EXPECT_EQ(batcher.pending(), 4u);
  gate.open();
  ASSERT_TRUE(log.wait_done("b2"));
  ASSERT_TRUE(log.wait_done("f2"));
  EXPECT_FALSE(refused_called);
  std::size_t applied = 0;
  for (const auto &batch : log.batches()) applied += batch.size();
  EXPECT_EQ(applied, 4u); // f3 and b3 never ran
}

TEST(WriteBatcherPriority, BatchesOfOneAlternateWhileBothWait) {
  TempDatabase temp;
  BatchLog log;
  // A clock that stands still: the writer's time share never binds, the
  // count rules alone decide.
  testing::ManualClock still;
  WriteBatcher batcher(temp.db(), 100, 1, log.registry(), still);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  for (const char *name : {"b1", "b2"}) {
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name), Priority::background));
  }
  for (const char *name : {"f1", "f2", "f3"}) {
    ASSERT_TRUE(batcher.submit(log.apply(name), log.done(name)));
  }
  gate.open();
  ASSERT_TRUE(log.wait_done("f3"));
  ASSERT_TRUE(log.wait_done("b2"));
  // The gate's batch was foreground's turn, so background's comes next.
  const std::vector<std::vector<std::string>> expected{{"b1"}, {"f1"}, {"b2"}, {"f2"}, {"f3"}};
  EXPECT_EQ(log.batches(), expected);
}

// The share of the writer's time (WriterTimeShare): writes whose apply moves
// the writer's ManualClock by a fixed time, as a write that takes that long
// would. Only they move the clock (and the test, when the writer waits for
// the next window), so the writer is busy all the time they measure.
class TimedWrites {
public:
  TimedWrites(BatchLog &log, testing::ManualClock &clock) : m_log(log), m_clock(clock) {}

  // A write named `name` ('f...' foreground, 'b...' background) that takes `takes`.
  WriteBatcher::Apply apply(std::string name, std::chrono::milliseconds takes) {
    return [this, name = std::move(name), takes](WriteContext &context) {
      {
        std::lock_guard lock(m_mutex);
        m_writes.push_back(Write{name.front(), m_clock.now().time_since_epoch(), takes});
      }
      m_log.apply(name)(context);
      m_clock.advance(takes);
    };
  }
  WriteBatcher::Done done(std::string name) { return m_log.done(std::move(name)); }

  // The writer time of the writes of class `prefix` that started in [from, to).
  std::chrono::milliseconds time_in(char prefix, std::chrono::milliseconds from,
                                    std::chrono::milliseconds to) const {
    std::lock_guard lock(m_mutex);
    std::chrono::milliseconds sum{0};
    for (const auto &write : m_writes) {
      if (write.prefix == prefix && write.started >= from && write.started < to) sum += write.takes;
    }
    return sum;
  }
  // When the last write of class `prefix` ended (0 if none ran).
  std::chrono::nanoseconds last_end(char prefix) const {
    std::lock_guard lock(m_mutex);
    std::chrono::nanoseconds end{0};
    for (const auto &write : m_writes) {
      if (write.prefix == prefix)
        end = std::max<std::chrono::nanoseconds>(end, write.started + write.takes);
    }
    return end;
  }

private:
  struct Write {
    char prefix;
    std::chrono::nanoseconds started;
    std::chrono::milliseconds takes;
  };
  BatchLog &m_log;
  testing::ManualClock &m_clock;
  mutable std::mutex m_mutex;
  std::vector<Write> m_writes;
};

double counter_value(BatchLog &log, const std::string &name,
                     const metrics::LabelValues &labels = {}) {
  return log.registry()
      ->counter(name, "", labels.empty() ? metrics::LabelNames{} : metrics::LabelNames{"class"})
      .with(labels)
      .value();
}
double background_holds(BatchLog &log) {
  return counter_value(log, "usher_writer_background_holds_total");
}

// Keeps at least `depth` foreground writes of `takes` queued until the
// writer's clock reaches `until` (or k_max_wait passed): a foreground that
// never lets the writer rest.
class ForegroundLoad {
public:
  ForegroundLoad(WriteBatcher &batcher, TimedWrites &timed, const testing::ManualClock &clock,
                 std::chrono::milliseconds takes, std::size_t depth,
                 std::chrono::milliseconds until)
      : m_thread([this, &batcher, &timed, &clock, takes, depth, until] {
          const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
          std::size_t next = 0;
          while (clock.now().time_since_epoch() < until &&
                 std::chrono::steady_clock::now() < deadline) {
            if (batcher.pending(Priority::foreground) >= depth) {
              std::this_thread::yield();
              continue;
            }
            const std::string name = "f" + std::to_string(next);
            if (batcher.submit(timed.apply(name, takes), timed.done(name))) ++next;
          }
          m_submitted = next;
        }) {}
  ~ForegroundLoad() { join(); }
  // Waits (at most k_max_wait) until `depth` foreground writes are queued:
  // the writer, held by a gate, has not taken any yet.
  static bool wait_queued(const WriteBatcher &batcher, std::size_t depth) {
    const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
    while (batcher.pending(Priority::foreground) < depth) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }
  ForegroundLoad(const ForegroundLoad &) = delete;
  ForegroundLoad &operator=(const ForegroundLoad &) = delete;
  void join() {
    if (m_thread.joinable()) m_thread.join();
  }
  // The foreground writes it submitted ("f0", "f1", ...); read after join().
  std::size_t submitted() const { return m_submitted; }

private:
  std::size_t m_submitted = 0;
  std::thread m_thread;
};

constexpr auto k_window = std::chrono::duration_cast<std::chrono::milliseconds>(k_share_window);

// WriterTimeShare on its own: time points in, allowances out.
WriterTimeShare::Time at(std::chrono::milliseconds since_start) {
  return WriterTimeShare::Time(since_start);
}
WriterTimeShare::BatchTime writes(std::chrono::milliseconds foreground, std::size_t foreground_n,
                                  std::chrono::milliseconds background, std::size_t background_n) {
  return {foreground, background, foreground_n, background_n};
}

// Background's time left, in milliseconds (A * window is a double).
double left_ms(WriterTimeShare &share, WriterTimeShare::Time now) {
  return std::chrono::duration<double, std::milli>(share.background_left(now)).count();
}

TEST(WriterTimeShare, BackgroundMayUseWhatTwiceForegroundsShareLeaves) {
  WriterTimeShare share(at(0ms));
  EXPECT_NEAR(left_ms(share, at(0ms)), 50, 1e-3); // no foreground: the whole window
  // 10 ms of foreground in window 0: its share so far is 0.2 of a window.
  share.charge(writes(10ms, 10, 0ms, 0), at(0ms), at(10ms));
  EXPECT_DOUBLE_EQ(share.foreground_share(at(10ms)), 0.2);
  EXPECT_NEAR(left_ms(share, at(10ms)), 30, 1e-3); // (1 - 2 * 0.2) * 50 ms
  // Window 1 starts with window 0's U (0.2), and 20 ms of foreground in it
  // make its own 0.4: A = 1 - 0.8, minus the 4 ms background already used.
  share.charge(writes(20ms, 20, 4ms, 2), at(50ms), at(74ms));
  EXPECT_DOUBLE_EQ(share.foreground_share(at(74ms)), 0.4);
  EXPECT_NEAR(left_ms(share, at(74ms)), 6, 1e-3);
  // Past half a window of foreground, background keeps its floor: 5 ms.
  share.charge(writes(30ms, 30, 0ms, 0), at(74ms), at(99ms));
  EXPECT_NEAR(left_ms(share, at(99ms)), 50 * k_background_floor - 4, 1e-3);
  // Window 2 is idle; window 3 reads window 2's U, 0: the whole window again.
  EXPECT_NEAR(left_ms(share, at(160ms)), 50, 1e-3);
  EXPECT_EQ(share.window_end(at(160ms)), at(200ms));
}

TEST(WriterTimeShare, ABatchsCommitIsSplitByItsWritesAndItsTimeByWindow) {
  WriterTimeShare share(at(0ms));
  // 6 ms of foreground writes, 2 ms of background, 2 ms of COMMIT: 7.5 and
  // 2.5 ms; the batch ran 40-50 ms, all in window 0.
  const auto charged = share.charge(writes(6ms, 3, 2ms, 1), at(40ms), at(50ms) - 1ns);
  using Ms = std::chrono::duration<double, std::milli>;
  EXPECT_NEAR(Ms(charged.foreground).count(), 7.5, 1e-3);
  EXPECT_NEAR(Ms(charged.background).count(), 2.5, 1e-3);
  // A batch of foreground alone from 90 to 110 ms: half of it in window 1,
  // half in window 2.
  share.charge(writes(20ms, 20, 0ms, 0), at(90ms), at(110ms));
  EXPECT_NEAR(share.foreground_share(at(110ms)), 0.2, 1e-3); // window 1's 10 ms of 50
  EXPECT_NEAR(left_ms(share, at(110ms)), 30, 1e-3);
}

TEST(WriterTimeShare, BackgroundWritesFitTheTimeLeftAndOneSliceUnderLoad) {
  WriterTimeShare share(at(0ms));
  // Unknown average: no count limit.
  EXPECT_EQ(share.background_writes(at(0ms)), std::numeric_limits<std::size_t>::max());
  share.charge(writes(0ms, 0, 4ms, 4), at(0ms), at(4ms)); // 1 ms per background write
  // No foreground load: still no limit (a drain is not cut into windows).
  EXPECT_EQ(share.background_writes(at(4ms)), std::numeric_limits<std::size_t>::max());
  // Foreground load (U = 0.2): 26 ms left, but one slice (5 ms) per batch.
  share.charge(writes(10ms, 10, 0ms, 0), at(4ms), at(14ms));
  EXPECT_EQ(share.background_writes(at(14ms)), static_cast<std::size_t>(k_background_slice / 1ms));
  // U = 0.5: the floor, 5 ms, of which 4 are used: one write fits.
  share.charge(writes(15ms, 15, 0ms, 0), at(14ms), at(29ms));
  EXPECT_EQ(share.background_writes(at(29ms)), 1u);
  // Spent: none until the next window.
  share.charge(writes(0ms, 0, 1ms, 1), at(29ms), at(30ms));
  EXPECT_EQ(share.background_writes(at(30ms)), 0u);
  EXPECT_GT(share.background_writes(at(50ms)), 0u);
}

TEST(WriterTimeShare, BackgroundAloneRunsUnthrottled) {
  // No foreground: background gets every window whole (A = 1), in full
  // batches, and the writer never holds it back.
  TempDatabase temp;
  testing::ManualClock clock;
  BatchLog log;
  TimedWrites timed(log, clock);
  WriteBatcher batcher(temp.db(), 1000, 10, log.registry(), clock);
  Gate gate;
  ASSERT_TRUE(batcher.submit(
      gate.blocking_write(), [](const Result<void> &) {}, Priority::background));
  ASSERT_TRUE(gate.wait_entered());
  constexpr int k_writes = 100; // 3 ms each: 300 ms, six windows
  for (int i = 0; i < k_writes; ++i) {
    const std::string name = "b" + std::to_string(i);
    ASSERT_TRUE(batcher.submit(timed.apply(name, 3ms), timed.done(name), Priority::background));
  }
  gate.open();
  ASSERT_TRUE(log.wait_done("b" + std::to_string(k_writes - 1)));
  EXPECT_EQ(background_holds(log), 0.0);
  EXPECT_NEAR(counter_value(log, "usher_writer_seconds_total", metrics::LabelValues{"background"}),
              0.3, 1e-6);
  const auto batches = log.batches();
  ASSERT_EQ(batches.size(), 10u);
  for (const auto &batch : batches) EXPECT_EQ(batch.size(), 10u);
}

TEST(WriterTimeShare, BackgroundKeepsItsGuaranteedShareUnderASteadyForeground) {
  // Foreground writes (1 ms) always queued: background (3 ms each, about
  // twice an intake write, as provisioning is) gets its guaranteed share of
  // every window, k_background_floor, and little more; the count rules
  // alone would give it 2 writes of every 10, 6 ms in 14 (43 %).
  TempDatabase temp;
  testing::ManualClock clock;
  BatchLog log;
  TimedWrites timed(log, clock);
  WriteBatcher batcher(temp.db(), 1000, 10, log.registry(), clock);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  for (int i = 0; i < 400; ++i) { // more than a second of background
    const std::string name = "b" + std::to_string(i);
    ASSERT_TRUE(batcher.submit(timed.apply(name, 3ms), timed.done(name), Priority::background));
  }
  constexpr int k_windows = 20;
  ForegroundLoad load(batcher, timed, clock, 1ms, 40, k_windows * k_window);
  ASSERT_TRUE(ForegroundLoad::wait_queued(batcher, 40));
  gate.open();
  load.join();
  ASSERT_GE(clock.now().time_since_epoch(), k_windows * k_window) << "the writer stalled";

  // Every window after the first (U of the last window is not known in it)
  // and before the load stopped.
  for (int w = 1; w + 1 < k_windows; ++w) {
    const auto from = w * k_window;
    const auto background = timed.time_in('b', from, from + k_window);
    const auto foreground = timed.time_in('f', from, from + k_window);
    const double share = std::chrono::duration<double>(background) / (background + foreground);
    EXPECT_GT(background, 0ms) << "window " << w << ": background starved";
    EXPECT_GE(share, k_background_floor - 0.01) << "window " << w;
    EXPECT_LE(share, 0.2) << "window " << w;
  }
}

TEST(WriterTimeShare, BackgroundGetsTheWholeWriterBackOnceForegroundStops) {
  // Foreground fills the writer for six windows, then stops. Background is
  // held to its share while the windows' U says foreground had load (the
  // window where it stopped, and the next), then runs without a hold.
  TempDatabase temp;
  testing::ManualClock clock;
  BatchLog log;
  TimedWrites timed(log, clock);
  WriteBatcher batcher(temp.db(), 1000, 10, log.registry(), clock);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  constexpr int k_background = 200; // 600 ms
  for (int i = 0; i < k_background; ++i) {
    const std::string name = "b" + std::to_string(i);
    ASSERT_TRUE(batcher.submit(timed.apply(name, 3ms), timed.done(name), Priority::background));
  }
  std::size_t foreground = 0;
  {
    ForegroundLoad load(batcher, timed, clock, 1ms, 40, 6 * k_window);
    ASSERT_TRUE(ForegroundLoad::wait_queued(batcher, 40));
    gate.open();
    load.join();
    foreground = load.submitted();
  }
  // The last foreground write committed (the load stopped at 300 ms with
  // some still queued; foreground commits in submission order).
  ASSERT_GT(foreground, 0u);
  ASSERT_TRUE(log.wait_done("f" + std::to_string(foreground - 1)));
  ASSERT_EQ(batcher.pending(Priority::foreground), 0u);
  // While background waits for the next window, the test moves the clock
  // there (the writer reads it again within a window of real time).
  std::vector<std::chrono::nanoseconds> holds_at;
  double holds_seen = background_holds(log);
  const std::string last = "b" + std::to_string(k_background - 1);
  const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
  while (!log.wait_done_for(last, 1ms) && std::chrono::steady_clock::now() < deadline) {
    const double holds = background_holds(log);
    if (holds == holds_seen) continue;
    holds_seen = holds;
    const auto now = clock.now().time_since_epoch();
    holds_at.push_back(now);
    clock.advance(k_window - now % k_window);
  }
  ASSERT_TRUE(log.wait_done_for(last, 0ms)) << "background did not finish";
  const auto foreground_end = timed.last_end('f');
  ASSERT_GE(foreground_end, 6 * k_window);
  // Held while foreground's windows counted (so the share did apply)...
  EXPECT_FALSE(holds_at.empty());
  // ... and never from the second window after foreground's last write on.
  const auto free_from = (foreground_end / k_window + 2) * k_window;
  for (const auto at : holds_at) {
    EXPECT_LT(at, free_from) << "background held " << (at - foreground_end) / 1ms
                             << " ms after foreground stopped";
  }
  // From then on the writer ran background alone, back to back: every window
  // but the last is background's whole.
  const auto background_end = timed.last_end('b');
  for (auto from = free_from; from + k_window <= background_end; from += k_window) {
    const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(from);
    EXPECT_GE(timed.time_in('b', window, window + k_window), k_window - 3ms)
        << "window at " << window.count() << " ms";
  }
}

// The batch's time budget (Database::batch_budget(), half the request's
// stall limit: 3.5 s with TempDatabase's 5 s busy timeout). Each write here
// moves the writer's ManualClock by one second, as a write of several slow
// round trips to PostgreSQL would: the batch stops adding writes once the
// budget has passed, commits those, and the rest go first in the next batch.
class SlowWrites {
public:
  SlowWrites(BatchLog &log, testing::ManualClock &clock) : m_log(log), m_clock(clock) {}

  WriteBatcher::Apply apply(std::string name, std::function<void()> also = {}) {
    return [this, name = std::move(name), also = std::move(also)](WriteContext &context) {
      m_log.apply(name)(context);
      insert_item(name)(context);
      m_clock.advance(1s);
      if (also) also();
    };
  }
  WriteBatcher::Done done(std::string name) {
    return [this, name](const Result<void> &written) {
      if (!written) {
        std::lock_guard lock(m_mutex);
        m_failed.push_back(name);
      }
      m_log.done(name)(written);
    };
  }
  std::vector<std::string> failed() const {
    std::lock_guard lock(m_mutex);
    return m_failed;
  }

private:
  BatchLog &m_log;
  testing::ManualClock &m_clock;
  mutable std::mutex m_mutex;
  std::vector<std::string> m_failed;
};

TEST(WriteBatcherBudget, ABatchPastItsBudgetCommitsWhatItAppliedAndTheRestGoFirstNext) {
  TempDatabase temp;
  create_items_table(temp.db());
  ASSERT_EQ(temp.db().batch_budget(), 3500ms);
  testing::ManualClock clock;
  BatchLog log;
  SlowWrites slow(log, clock);
  WriteBatcher batcher(temp.db(), 100, k_max_batch, log.registry(), clock);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  // f1 submits n1 while the batch runs: a newer write, queued behind the
  // ones the batch had taken but did not reach.
  ASSERT_TRUE(batcher.submit(
      slow.apply("f1", [&] { EXPECT_TRUE(batcher.submit(slow.apply("n1"), slow.done("n1"))); }),
      slow.done("f1")));
  for (const char *name : {"f2", "f3", "f4"}) {
    ASSERT_TRUE(batcher.submit(slow.apply(name), slow.done(name)));
  }
  // f5 counts, from a connection of its own, what was committed before it.
  std::atomic<long long> committed_before_f5{-1};
  ASSERT_TRUE(batcher.submit(
      slow.apply("f5", [&] { committed_before_f5 = temp.count("SELECT COUNT(*) FROM items"); }),
      slow.done("f5")));
  ASSERT_TRUE(batcher.submit(slow.apply("f6"), slow.done("f6")));
  ASSERT_TRUE(batcher.submit(slow.apply("b1"), slow.done("b1"), Priority::background));
  gate.open();
  ASSERT_TRUE(log.wait_done("n1"));
  ASSERT_TRUE(log.wait_done("b1"));
  // The first batch took f1..f6 and b1 (background's share); after four
  // writes (4 s) it was past its budget. The five it did not reach go first,
  // each in its class: f5 and f6 before n1, b1 still in the batch.
  const std::vector<std::vector<std::string>> expected{{"f1", "f2", "f3", "f4"},
                                                       {"f5", "f6", "n1", "b1"}};
  EXPECT_EQ(log.batches(), expected);
  EXPECT_EQ(slow.failed(), std::vector<std::string>{}) << "every write committed";
  EXPECT_EQ(committed_before_f5.load(), 4) << "f1..f4 were committed before f5 ran";
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 8);
}

TEST(WriteBatcherBudget, EveryBatchAppliesAtLeastOneWrite) {
  // Writes that each take longer than the whole budget: one per batch, and
  // every one of them commits (the writer never stalls on an empty batch).
  TempDatabase temp;
  create_items_table(temp.db());
  testing::ManualClock clock;
  BatchLog log;
  SlowWrites slow(log, clock);
  WriteBatcher batcher(temp.db(), 100, k_max_batch, log.registry(), clock);
  Gate gate;
  ASSERT_TRUE(batcher.submit(gate.blocking_write(), [](const Result<void> &) {}));
  ASSERT_TRUE(gate.wait_entered());
  for (const char *name : {"s1", "s2", "s3"}) {
    ASSERT_TRUE(batcher.submit(slow.apply(name, [&] { clock.advance(10s); }), slow.done(name)));
  }
  gate.open();
  ASSERT_TRUE(log.wait_done("s3"));
  const std::vector<std::vector<std::string>> expected{{"s1"}, {"s2"}, {"s3"}};
  EXPECT_EQ(log.batches(), expected);
  EXPECT_EQ(slow.failed(), std::vector<std::string>{});
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM items"), 3);
}

// health::FoldedEvent: occurrences from many threads, counted in memory and
// written by one write in flight at a time, add up exactly.
TEST(WriteBatcherFoldedEvent, EveryOccurrenceIsCountedInOneRow) {
  TempDatabase temp;
  {
    auto sql = temp.db().connect();
    migrate(*sql, temp.db().dialect());
  }
  alerts::AlertPolicy policy; // alerts off: the CRITICAL still folds the log
  WriteBatcher writer(temp.db(), 100000);
  {
    health::FoldedEvent event(writer, health::EventType::critical, "queue down", "unit",
                              health::Alerting{&policy, "queue_unavailable"});
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&event, t] {
        for (int i = 0; i < 250; ++i) event.add({{"thread", t}, {"i", i}});
      });
    }
    for (auto &thread : threads) thread.join();
    const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
    while (event.pending() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    writer.stop(); // finishes the write in flight
  }
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM system_health_logs"), 1);
  EXPECT_EQ(temp.count("SELECT repeat_count FROM system_health_logs"), 2000);
}

// A sustained WARNING with a fold window (a login flood) is one row too,
// although WARNING events do not fold through the alert policy.
TEST(WriteBatcherFoldedEvent, AWarningWithAFoldWindowIsOneRow) {
  TempDatabase temp;
  {
    auto sql = temp.db().connect();
    migrate(*sql, temp.db().dialect());
  }
  WriteBatcher writer(temp.db(), 100000);
  {
    health::FoldedEvent event(writer, health::EventType::warning, "attempts refused", "unit", {},
                              std::chrono::minutes(1));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&event] {
        for (int i = 0; i < 500; ++i) {
          event.add({{"limit", "address"}});
          if (i % 50 == 0) std::this_thread::yield();
        }
      });
    }
    for (auto &thread : threads) thread.join();
    const auto deadline = std::chrono::steady_clock::now() + k_max_wait;
    while (event.pending() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    event.add({{"limit", "account"}}); // after everything was written: still the same row
    while (event.pending() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    writer.stop();
  }
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM system_health_logs"), 1);
  EXPECT_EQ(temp.count("SELECT repeat_count FROM system_health_logs"), 2001);
}

// Past half its limit the writer copies the WAL back (PASSIVE), past the
// limit it truncates it, both between batches, so the file never keeps
// growing under constant writes (issue 15).
TEST(WriteBatcherWal, TheWalStaysWithinItsLimitPlusOneBatch) {
  constexpr std::uint64_t k_limit = 64 * 1024;
  TempDatabase temp(k_limit);
  {
    auto sql = temp.db().connect();
    *sql << "CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB)";
  }
  WriteBatcher writer(temp.db(), 100000);
  const std::string data(1024, 'x');
  std::uintmax_t largest = 0;
  for (int batch = 0; batch < 100; ++batch) {
    ASSERT_TRUE(writer.submit_and_wait(
        [&data](soci::session &sql) {
          for (int i = 0; i < 20; ++i) {
            sql << "INSERT INTO filler (data) VALUES (:d)", soci::use(data);
          }
        },
        k_max_wait));
    std::error_code ignored;
    largest = std::max(largest, std::filesystem::file_size(*temp.db().wal_path(), ignored));
  }
  writer.stop(); // the check after the last batch has run
  const auto &stats = writer.wal_stats();
  // One batch writes about 24 KiB of pages.
  EXPECT_LE(largest, 2 * k_limit);
  EXPECT_EQ(stats.incomplete_checkpoints.load(), 0U);
  EXPECT_GE(stats.max_pause_us.load(), stats.last_pause_us.load());
  EXPECT_GE(stats.total_pause_us.load(), stats.max_pause_us.load());
  EXPECT_LE(stats.wal_bytes.load(), k_limit);
  EXPECT_LE(std::filesystem::file_size(*temp.db().wal_path()), k_limit);
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM filler"), 2000);
}

// While requests write, a passive checkpoint runs each time the log grew by
// 4 MiB, not after every batch (each one syncs the database file): the log
// restarts from the file's start, so the file stays near 4 MiB instead of
// growing to the limit. While only background writes (a drain), it runs
// at half the limit: fewer, longer pauses that no request waits for. Both
// write 12 MiB of log under a 16 MiB limit.
std::pair<double, std::uintmax_t> passive_checkpoints_and_largest_wal(Priority priority) {
  constexpr std::uint64_t k_limit = 16 * 1024 * 1024;
  TempDatabase temp(k_limit);
  {
    auto sql = temp.db().connect();
    *sql << "CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB)";
  }
  metrics::Registry registry;
  WriteBatcher writer(temp.db(), 100000, k_max_batch, &registry);
  const std::string data(1024, 'x');
  constexpr int k_batches = 300; // about 40 KiB of log each: 12 MiB in all
  std::uintmax_t largest = 0;
  for (int batch = 0; batch < k_batches; ++batch) {
    EXPECT_TRUE(writer.submit_and_wait(
        [&data](soci::session &sql) {
          for (int i = 0; i < 32; ++i) {
            sql << "INSERT INTO filler (data) VALUES (:d)", soci::use(data);
          }
        },
        k_max_wait, priority));
    std::error_code ignored;
    largest = std::max(largest, std::filesystem::file_size(*temp.db().wal_path(), ignored));
  }
  writer.stop();
  EXPECT_EQ(writer.wal_stats().checkpoints.load(), 0U); // never near the limit
  EXPECT_EQ(temp.count("SELECT COUNT(*) FROM filler"), 32 * k_batches);
  return {
      registry.counter("usher_sqlite_checkpoints_total", "", {"kind"}).with({"passive"}).value(),
      largest};
}

TEST(WriteBatcherWal, WhileRequestsWritePassiveCheckpointsRunEveryFewMegabytesOfLog) {
  const auto [passive, largest] = passive_checkpoints_and_largest_wal(Priority::foreground);
  EXPECT_GE(passive, 2.0);
  EXPECT_LE(passive, 4.0) << "a checkpoint per 4 MiB of log, not per batch";
  EXPECT_LE(largest, 5U * 1024 * 1024);
}

TEST(WriteBatcherWal, WhileOnlyBackgroundWritesPassiveCheckpointsWaitForHalfTheLimit) {
  const auto [passive, largest] = passive_checkpoints_and_largest_wal(Priority::background);
  EXPECT_EQ(passive, 1.0) << "one checkpoint, at 8 MiB of log";
  EXPECT_GT(largest, 7U * 1024 * 1024);
  EXPECT_LE(largest, 9U * 1024 * 1024);
}

} // namespace
} // namespace usher::store
