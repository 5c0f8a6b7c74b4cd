// Group commit: one writer thread takes every pending write and runs them in
// one transaction, then commits once. A write that throws is rolled back
// alone; a failed COMMIT fails the whole batch. This is where usher's write
// throughput comes from (docs/architecture.md).
//
// On PostgreSQL each write runs inside its own savepoint, which undoes it
// when it throws. On SQLite writes run without one while none fails having
// changed rows: a write that throws having changed none (a conflict that
// INSERT ... ON CONFLICT DO NOTHING decided, a refusal before any statement)
// has nothing to undo, which the connection's count of changed rows tells.
// One that throws after changing rows rolls the whole batch back; every
// write of it runs again, first in the next batch, and the next
// k_savepoint_batches batches give each write a savepoint of its own, so
// that writes which keep failing that way cost a batch's work at most
// every k_savepoint_batches + 1 batches.
//
// Two classes of writes, each with its own queue and limit: foreground (what
// a request waits for) and background (the worker's claims, completions and
// lease upkeep, maintenance). Foreground goes first into every batch.
// Background gets what foreground leaves, measured in the writer's wall time
// (WriterTimeShare): over windows of k_share_window, with U the share of the
// writer that foreground writes took, background may use
// A = max(k_background_floor, 1 - k_foreground_weight * U) of each window.
// Once that is spent, batches hold foreground only, and with foreground
// empty the writer waits for foreground or the next window instead of
// running background: under an intake burst the CPU stays with intake (its
// HTTP threads need about as much as its writes), the backlog drains after
// the burst at full speed (U = 0, A = 1), and the worker keeps its
// guaranteed share of every window meanwhile (docs/benchmarks.md, "Intake
// before draining"). While foreground has load, one batch holds at most
// k_background_slice of background. Within that, counts still cap
// background per batch: one write per k_background_ratio foreground ones
// (at least one) while foreground is in the batch, and right after a batch
// with foreground a batch of background alone holds at most max_batch /
// (k_background_ratio + 1), so that requests arriving then do not wait
// behind a full batch of the worker's writes.
//
// Completions (each write's Done) run on a thread of their own, in commit
// order, so that the writer starts the next batch as soon as one committed:
// what a request does after its commit (dispatch, building and sending the
// answer) does not take the one writer's time (docs/benchmarks.md, "Where the
// time goes"). Writes committed but not yet completed count against their
// class's queue limit, so that a slow completion cannot let requests pile up
// unbounded behind it.
//
// A batch is bounded in time as well as in size: once it has run for the
// database's batch_budget(), the writer stops adding writes, commits what it
// applied, and puts the rest back first in their queues for the next batch.
// On PostgreSQL each write costs several round trips (its savepoint, its
// statements, the release): on a slow link a full batch would take longer
// than any request may wait. The stall watchdog's limit applies to each
// write's progress (the guard is extended after each), not to the batch.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <typeindex>
#include <unordered_map>

#include <soci/soci.h>

#include <usher/metrics/registry.hpp>
#include <usher/store/database.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/error.hpp>

namespace usher::store {

// Thrown by a write to roll back its own changes and report `error` as its
// outcome (an expected failure such as a conflict, not a bug).
struct AbortWrite : std::exception {
  explicit AbortWrite(Error e) : error(std::move(e)) {}
  const char *what() const noexcept override { return error.detail.c_str(); }
  Error error;
};

// What a write gets: the writer's session, and objects built once per
// connection from it (prepared statements) that every later write reuses.
// Converts to soci::session&, so a write may simply take the session.
class WriteContext {
public:
  explicit WriteContext(soci::session &sql) : m_sql(sql) {}
  soci::session &sql() { return m_sql; }
  operator soci::session &() { return m_sql; }

  // The connection's `T`, constructed as T(session) on first use.
  template <typename T>
  T &prepared() {
    auto &slot = m_prepared[std::type_index(typeid(T))];
    if (!slot) slot = std::make_shared<T>(m_sql);
    return *static_cast<T *>(slot.get());
  }

  // Drops every prepared object but `Keep`'s; they are built again when next
  // asked for. After a statement threw: SOCI 4.0's PostgreSQL backend frees
  // a statement's parameter buffers only when an execution completes or the
  // statement is destroyed, so executing a statement again after it threw
  // leaks them (LeakSanitizer found it in a deadlock's retry).
  template <typename Keep>
  void forget_prepared_except() {
    const auto key = std::type_index(typeid(Keep));
    std::shared_ptr<void> kept;
    if (const auto it = m_prepared.find(key); it != m_prepared.end()) kept = it->second;
    m_prepared.clear();
    if (kept) m_prepared.emplace(key, std::move(kept));
  }

private:
  soci::session &m_sql;
  std::unordered_map<std::type_index, std::shared_ptr<void>> m_prepared;
};

// What the writer saw of SQLite's write-ahead log, readable from any thread
// (for /metrics and tests). Sizes in bytes, pauses in microseconds.
struct WalStats {
  // Size of the -wal file after the last batch (before any checkpoint).
  std::atomic<std::uint64_t> wal_bytes{0};
  // Truncating checkpoints run because the WAL passed its limit, and how
  // many of them could not finish (a reader or another process's writer held
  // on past the busy timeout; the next batch tries again).
  std::atomic<std::uint64_t> checkpoints{0};
  std::atomic<std::uint64_t> incomplete_checkpoints{0};
  // How long those checkpoints paused the writer.
  std::atomic<std::uint64_t> last_pause_us{0};
  std::atomic<std::uint64_t> max_pause_us{0};
  std::atomic<std::uint64_t> total_pause_us{0};
};

// Writes committed in one transaction at most (the default).
inline constexpr std::size_t k_max_batch = 512;
// While foreground writes wait, a batch takes at most one background write
// per this many foreground writes, and at least one while background's
// share of the window's time (WriterTimeShare) is not spent.
inline constexpr std::size_t k_background_ratio = 4;
// SQLite: batches that give each write its own savepoint after a batch was
// rolled back because a write failed having changed rows.
inline constexpr int k_savepoint_batches = 8;
// Times one write runs again after PostgreSQL picked it as a deadlock's
// victim; then it fails alone with 503 (database_unavailable).
inline constexpr int k_deadlock_retries = 3;

// The writer's time is shared out over windows of this length: long enough
// to hold many batches (a full batch of intake writes takes 15-25 ms), short
// enough that background gets the writer back within two windows of a
// burst's end.
inline constexpr std::chrono::milliseconds k_share_window{50};
// Background's guaranteed share of the writer's wall time in every window
// while it has work: the worker is never starved, whatever the foreground.
inline constexpr double k_background_floor = 0.1;
// Background may use 1 - k_foreground_weight * U of a window, U being the
// share foreground took: serve's HTTP threads spend about as much CPU per
// intake request as the writer spends on its write, so a foreground using
// half of the writer already fills two cores.
inline constexpr double k_foreground_weight = 2.0;

// While foreground has load, one batch holds at most this much background
// (by a background write's average time): a request arriving meanwhile
// waits behind that much of the worker's writes at most, not behind a
// window's whole share in one batch (up to 45 ms at A = 0.9).
inline constexpr std::chrono::milliseconds k_background_slice{5};

// Which of the writer's two queues a write waits in.
enum class Priority {
  foreground, // a request waits for it (intake, sync, admin)
  background, // the worker's and maintenance's writes: what foreground leaves
};

// The writer's wall time by class over fixed windows (k_share_window long,
// counted from `start`), and what it leaves to background. Fed by the writer
// thread alone; plain time points, so tests drive it directly.
class WriterTimeShare {
public:
  using Time = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::nanoseconds;

  // The writer's time in one batch: each class's writes on their own (their
  // savepoint, statements and release) and how many there were.
  struct BatchTime {
    Duration foreground{0};
    Duration background{0};
    std::size_t foreground_writes = 0;
    std::size_t background_writes = 0;
  };

  explicit WriterTimeShare(Time start, Duration window = k_share_window)
      : m_start(start), m_window(window) {}

  // Charges a batch that ran from `began` to `ended` (BEGIN, the writes,
  // COMMIT, the checkpoint after it): the time outside the writes is split
  // by the classes' own times (by their counts when those are zero), and a
  // batch that ran past a window's end is split between the windows by
  // time. Returns what each class was charged. `began` is never before a
  // time already given.
  BatchTime charge(const BatchTime &batch, Time began, Time ended);

  // Foreground's share U of the writer: the larger of the last complete
  // window's and the current window's so far (its foreground time over a
  // whole window, so a lower bound of what it will be).
  double foreground_share(Time now);
  // Background's time left in the window holding `now`: A * window minus
  // what it used, A = max(k_background_floor, 1 - k_foreground_weight * U).
  Duration background_left(Time now);
  // How many background writes fit in what is left (and, while foreground
  // has load, in k_background_slice), from a background write's average
  // time: 0 once spent, otherwise at least 1 (no limit while the average is
  // not known yet or foreground has no load).
  std::size_t background_writes(Time now);
  // When the window holding `now` ends.
  Time window_end(Time now) const;

private:
  std::int64_t window_of(Time t) const { return (t - m_start) / m_window; }
  // Moves to the window holding `now` (time does not go back).
  void roll(Time now);

  Time m_start;
  Duration m_window;
  std::int64_t m_current = 0;
  Duration m_foreground{0}; // the current window's
  Duration m_background{0};
  double m_last_foreground_share = 0; // U of the last complete window
  Duration m_background_write{0};     // average, with its share of COMMIT; 0: not known
};

class WriteBatcher {
public:
  // Runs inside the batch transaction; throw to roll back this write only.
  // A write may run more than once, its changes undone in between, and must
  // give the same result each time (assign captured results, do not
  // accumulate into them): on SQLite when a write of its batch failed after
  // changing rows without a savepoint (the batch runs again); on PostgreSQL
  // when the server picked it as a deadlock's victim (two processes'
  // batches waiting on each other's rows, e.g. the same new email on two
  // instances at once; again in the next batch, up to k_deadlock_retries
  // times).
  using Apply = std::function<void(WriteContext &)>;
  // Called once the batch committed (an empty result) or failed (the
  // error), on the batcher's completion thread, in the order the writes
  // were committed; never called twice. It may submit more writes.
  using Done = std::function<void(const Result<void> &)>;

  // `queue_limit` holds for each class. `metrics` (optional): batch sizes
  // and commit times are recorded into it. `clock` (must outlive the
  // batcher) measures the batch's budget; tests move it.
  WriteBatcher(const Database &db, std::size_t queue_limit, std::size_t max_batch = k_max_batch,
               metrics::Registry *metrics = nullptr,
               const clock::Clock &clock = clock::system_clock());
  ~WriteBatcher();
  WriteBatcher(const WriteBatcher &) = delete;
  WriteBatcher &operator=(const WriteBatcher &) = delete;

  // Queues a write; false when its class's queue is full or the batcher is
  // stopping (the caller answers 503), in which case neither function is
  // called.
  bool submit(Apply apply, Done done, Priority priority = Priority::foreground);

  // Submits `apply` and waits up to `timeout` for its commit (never call it
  // from inside a write); false when it was refused, failed or timed out.
  bool submit_and_wait(Apply apply, std::chrono::milliseconds timeout,
                       Priority priority = Priority::foreground);

  // Finishes every queued write and calls every completion, then stops both
  // threads. Idempotent; never call it from a write or a completion.
  void stop();

  // Writes queued (both classes, or one), not counting the running batch.
  std::size_t pending() const;
  std::size_t pending(Priority priority) const;

  const WalStats &wal_stats() const { return m_wal_stats; }

private:
  struct Item {
    Apply apply;
    Done done;
    int deadlocks = 0; // times this write was a deadlock's victim
    Priority priority = Priority::foreground;
  };
  // A committed (or failed) write waiting for its Done on the completion
  // thread.
  struct Finished {
    Done done;
    Result<void> outcome;
    Priority priority = Priority::foreground;
  };
  std::deque<Item> &queue_of(Priority priority) {
    return priority == Priority::foreground ? m_foreground : m_background;
  }
  std::size_t &completing_of(Priority priority) {
    return priority == Priority::foreground ? m_completing_foreground : m_completing_background;
  }
  // Moves the next batch out of the queues (m_mutex held) at `now`:
  // foreground first, then what background's share allows.
  void take_batch(std::deque<Item> &batch, WriterTimeShare::Time now);
  void run();
  // Runs one batch; returns the writer time its writes took, by class.
  WriterTimeShare::BatchTime run_batch(std::deque<Item> &batch);
  // The completion thread: calls the Done of every finished write, in order,
  // until the writer stopped and nothing is left.
  void complete();
  // SQLite: a PASSIVE checkpoint between batches (the only moment the
  // writer holds no transaction) each time the log grew by
  // k_checkpoint_log_bytes while requests wrote since the last one, by half
  // the WAL limit while only background did; a TRUNCATE one when the WAL
  // file is past the database's limit; measured into m_wal_stats.
  void bound_wal();
  // SQLite: counts the log's frames after each commit on `sql` (the WAL
  // hook) into m_wal_frames.
  void watch_wal(soci::session &sql);

  const Database &m_db;
  const clock::Clock &m_clock;
  const std::size_t m_queue_limit;
  const std::size_t m_max_batch;
  metrics::Histogram *m_batch_size = nullptr;     // null: not recorded
  metrics::Histogram *m_commit_seconds = nullptr; // null: not recorded
  // SQLite's write-ahead log (null: not recorded, or not SQLite).
  metrics::Gauge *m_wal_bytes = nullptr;
  metrics::Counter *m_checkpoints_passive = nullptr;
  metrics::Counter *m_checkpoints_complete = nullptr;
  metrics::Counter *m_checkpoints_incomplete = nullptr;
  metrics::Histogram *m_checkpoint_pause = nullptr;
  // Writer seconds by class, and the times the writer held background back
  // for foreground (null: not recorded).
  metrics::Counter *m_foreground_seconds = nullptr;
  metrics::Counter *m_background_seconds = nullptr;
  metrics::Counter *m_background_holds = nullptr;
  // The writer thread's alone (take_batch runs on it).
  WriterTimeShare m_share;
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<Item> m_foreground;
  std::deque<Item> m_background;
  bool m_background_turn = false;   // max_batch 1: the classes alternate
  bool m_foreground_recent = false; // the last batch had foreground writes
  bool m_stopping = false;
  // Finished writes whose Done has not been called yet, and how many of each
  // class (counted against its queue limit) until the completion thread takes
  // them; m_writer_stopped once the writer thread returned.
  std::deque<Finished> m_finished;
  std::size_t m_completing_foreground = 0;
  std::size_t m_completing_background = 0;
  bool m_writer_stopped = false;
  std::condition_variable m_finished_wake;
  // The writer's connection and what was prepared on it; reset together
  // after a failure so the next batch reconnects.
  std::unique_ptr<soci::session> m_sql;
  std::unique_ptr<WriteContext> m_context;
  WalStats m_wal_stats;
  // Frames in the log after the last commit (set by SQLite's WAL hook on the
  // writer thread), and the size of one.
  int m_wal_frames = 0;
  std::uint64_t m_wal_page_bytes = 4096;
  // Whether a foreground write committed since the last checkpoint: then
  // checkpoints come often and short (bound_wal).
  bool m_foreground_since_checkpoint = false;
  // SQLite: batches left that give each write a savepoint (the writer
  // thread's alone; k_savepoint_batches after a batch was rolled back).
  int m_savepoint_batches = 0;
  std::thread m_thread;
  std::thread m_completion_thread;
};

} // namespace usher::store
