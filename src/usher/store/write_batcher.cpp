#include <usher/store/write_batcher.hpp>

#include <algorithm>
#include <filesystem>
#include <future>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

#include <soci/sqlite3/soci-sqlite3.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <usher/store/postgres_library.hpp>

namespace usher::store {
namespace {

// A checkpoint pause longer than this is logged as a warning: requests
// waited for it (docs/operations.md).
constexpr auto k_slow_checkpoint = std::chrono::milliseconds(100);

// While requests write, a passive checkpoint runs once the log holds this
// much (or half of SQLITE_WAL_LIMIT_MIB, if less): SQLite's own cadence
// (wal_autocheckpoint, 1000 pages of 4 KiB). The writer pauses for each
// checkpoint, and requests with it, so they are kept short; while only
// background writes (a drain), a checkpoint waits for half the limit:
// longer pauses that nobody waits for, and a page that several batches
// dirtied is copied once for all of them (a drain on a million customers
// +15 %: docs/benchmarks.md, "Checkpoints at half the WAL limit").
constexpr std::uint64_t k_checkpoint_log_bytes = 4 * 1024 * 1024;

// SQLite's WAL hook: after every commit on the writer's connection, the
// frames (pages) now in the log. Returns SQLITE_OK (the commit stands).
int record_wal_frames(void *frames, sqlite_api::sqlite3 *, const char *, int count) {
  *static_cast<int *>(frames) = count;
  return SQLITE_OK;
}

// The statements around every write, prepared once per connection.
struct Savepoint {
  explicit Savepoint(soci::session &sql)
      : begin(sql.prepare << "SAVEPOINT usher_write"),
        release(sql.prepare << "RELEASE SAVEPOINT usher_write"),
        rollback(sql.prepare << "ROLLBACK TO SAVEPOINT usher_write") {}
  soci::statement begin;
  soci::statement release;
  soci::statement rollback;
};

// True when `e` says the database cannot work at all right now, as opposed
// to one statement being wrong.
bool is_database_failure(const soci::soci_error &e) {
  if (const auto *lite = dynamic_cast<const soci::sqlite3_soci_error *>(&e)) {
    switch (lite->result() & 0xFF) { // primary result code
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOTADB: return true;
    default: return false;
    }
  }
  if (const std::string state = postgres_sqlstate(e); !state.empty()) {
    // SQLSTATE classes: 08 connection, 40 serialization/deadlock, 53
    // resources (disk full, too many connections), 55P03 lock_timeout, 57
    // statement_timeout and shutdown, 58 I/O, XX internal. A constraint
    // (23) or a bug's syntax error (42) is the write's own.
    const std::string cls = state.substr(0, 2);
    if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58" || cls == "XX" ||
        state == "55P03" || state == "55006")
      return true;
  }
  // Otherwise only a broken connection is the database's failure.
  return e.get_error_category() == soci::soci_error::connection_error ||
         e.get_error_category() == soci::soci_error::system_error;
}

// PostgreSQL aborted this statement to break a deadlock (40P01): the
// transaction holds on once rolled back to the write's savepoint, which
// also releases what the write had locked, so the other side goes on.
bool is_deadlock_victim(const soci::soci_error &e) { return postgres_sqlstate(e) == "40P01"; }

sqlite_api::sqlite3 *sqlite_connection(soci::session &sql) {
  return static_cast<soci::sqlite3_session_backend *>(sql.get_backend())->conn_;
}

// SQLite: the rows the connection's statements have inserted, updated or
// deleted since it was opened (triggers and foreign key actions included).
// A statement adds its rows once it finished, and one that failed undid its
// own: a write after which the count has not moved changed nothing. (A
// writing statement left running, an UPDATE ... RETURNING whose rows were
// not all read, has not added its rows yet; but SQLite then refuses the
// COMMIT, and the whole batch fails: nothing of it is kept either.)
long long rows_changed(sqlite_api::sqlite3 *db) { return sqlite_api::sqlite3_total_changes64(db); }

} // namespace

WriterTimeShare::BatchTime WriterTimeShare::charge(const BatchTime &batch, Time began, Time ended) {
  const Duration writes = batch.foreground + batch.background;
  const std::size_t count = batch.foreground_writes + batch.background_writes;
  roll(began);
  if (count == 0) return {}; // a batch that failed before its first write
  // BEGIN, COMMIT (the fsync) and the checkpoint are the batch's: each class
  // pays for them in proportion to what its writes took.
  const Duration total = ended - began;
  const Duration rest = std::max(total - writes, Duration::zero());
  const double foreground_part =
      writes > Duration::zero()
          ? static_cast<double>(batch.foreground.count()) / static_cast<double>(writes.count())
          : static_cast<double>(batch.foreground_writes) / static_cast<double>(count);
  BatchTime charged = batch;
  charged.foreground += std::chrono::duration_cast<Duration>(rest * foreground_part);
  charged.background = writes + rest - charged.foreground;
  if (batch.background_writes > 0) {
    const Duration each = charged.background / static_cast<Duration::rep>(batch.background_writes);
    m_background_write =
        m_background_write == Duration::zero() ? each : (7 * m_background_write + each) / 8;
  }
  auto add = [&](double part) {
    m_foreground += std::chrono::duration_cast<Duration>(charged.foreground * part);
    m_background += std::chrono::duration_cast<Duration>(charged.background * part);
  };
  const auto last = window_of(ended);
  if (last == m_current || total <= Duration::zero()) {
    add(1.0);
    return charged;
  }
  // The batch ran past the window's end: each window gets the part of it
  // that ran in it, evenly spread over the batch's time.
  const auto span = std::chrono::duration<double>(total);
  add(std::chrono::duration<double>(window_end(began) - began) / span);
  const bool whole_windows = last > m_current + 1;
  roll(ended);
  // The last complete window was this batch's alone.
  const double total_charged =
      static_cast<double>((charged.foreground + charged.background).count());
  if (whole_windows && total_charged > 0) {
    m_last_foreground_share = static_cast<double>(charged.foreground.count()) / total_charged;
  }
  add(std::chrono::duration<double>(ended - (m_start + last * m_window)) / span);
  return charged;
}

void WriterTimeShare::roll(Time now) {
  const auto window = window_of(now);
  if (window <= m_current) return;
  // A window passed with nothing charged to it: the writer was idle (charge()
  // sets the share of windows that one long batch covered whole).
  m_last_foreground_share =
      window == m_current + 1
          ? std::min(1.0, std::chrono::duration<double>(m_foreground) / m_window)
          : 0.0;
  m_current = window;
  m_foreground = Duration::zero();
  m_background = Duration::zero();
}

double WriterTimeShare::foreground_share(Time now) {
  roll(now);
  return std::max(m_last_foreground_share,
                  std::min(1.0, std::chrono::duration<double>(m_foreground) / m_window));
}

WriterTimeShare::Duration WriterTimeShare::background_left(Time now) {
  const double allowed =
      std::max(k_background_floor, 1.0 - k_foreground_weight * foreground_share(now));
  return std::chrono::duration_cast<Duration>(m_window * allowed) - m_background;
}

std::size_t WriterTimeShare::background_writes(Time now) {
  Duration left = background_left(now);
  if (left <= Duration::zero()) return 0;
  // With no foreground load the writer is background's whole: batches are
  // not cut at the window's end (that would only add commits to a drain).
  if (m_background_write == Duration::zero() || foreground_share(now) == 0.0) {
    return std::numeric_limits<std::size_t>::max();
  }
  // Requests are arriving: the next one waits behind one slice at most.
  left = std::min<Duration>(left, k_background_slice);
  return static_cast<std::size_t>((left + m_background_write - Duration(1)) / m_background_write);
}

WriterTimeShare::Time WriterTimeShare::window_end(Time now) const {
  return m_start + (window_of(now) + 1) * m_window;
}

WriteBatcher::WriteBatcher(const Database &db, std::size_t queue_limit, std::size_t max_batch,
                           metrics::Registry *metrics, const clock::Clock &clock)
    : m_db(db), m_clock(clock), m_queue_limit(queue_limit), m_max_batch(max_batch),
      m_share(clock.now()) {
  if (metrics != nullptr) {
    auto &writer_seconds = metrics->counter(
        "usher_writer_seconds_total",
        "Wall time the writer spent on each class of writes (its batches' BEGIN and COMMIT "
        "split by what each class's writes took).",
        {"class"});
    m_foreground_seconds = &writer_seconds.with({"foreground"});
    m_background_seconds = &writer_seconds.with({"background"});
    m_background_holds =
        &metrics
             ->counter("usher_writer_background_holds_total",
                       "Times the writer left background writes waiting with nothing else to do: "
                       "their share of the current window was spent (foreground had load).")
             .with();
    m_batch_size = &metrics
                        ->histogram("usher_writer_batch_size",
                                    "Writes committed together in one transaction (group commit).",
                                    {1, 2, 5, 10, 20, 50, 100, 200, 512})
                        .with();
    m_commit_seconds =
        &metrics
             ->histogram("usher_writer_commit_seconds",
                         "Time the writer's COMMIT of one batch took.", metrics::duration_buckets())
             .with();
    if (m_db.wal_path()) {
      m_wal_bytes = &metrics
                         ->gauge("usher_sqlite_wal_bytes",
                                 "Size of SQLite's write-ahead log file after the last batch.")
                         .with();
      auto &checkpoints = metrics->counter(
          "usher_sqlite_checkpoints_total",
          "WAL checkpoints the writer ran: passive each time the log grew by 4 MiB while "
          "requests wrote (by half of SQLITE_WAL_LIMIT_MIB while only background did), "
          "truncate past the limit (truncate_incomplete: a reader held "
          "on past the busy timeout).",
          {"kind"});
      m_checkpoints_passive = &checkpoints.with({"passive"});
      m_checkpoints_complete = &checkpoints.with({"truncate"});
      m_checkpoints_incomplete = &checkpoints.with({"truncate_incomplete"});
      m_checkpoint_pause =
          &metrics
               ->histogram("usher_sqlite_checkpoint_pause_seconds",
                           "How long one truncating WAL checkpoint paused the writer.",
                           metrics::duration_buckets())
               .with();
    }
  }
  m_completion_thread = std::thread([this] { complete(); });
  m_thread = std::thread([this] { run(); });
}

WriteBatcher::~WriteBatcher() { stop(); }

bool WriteBatcher::submit(Apply apply, Done done, Priority priority) {
  {
    std::lock_guard lock(m_mutex);
    auto &queue = queue_of(priority);
    if (m_stopping || queue.size() + completing_of(priority) >= m_queue_limit) return false;
    queue.push_back(Item{std::move(apply), std::move(done), 0, priority});
  }
  m_wake.notify_one();
  return true;
}

bool WriteBatcher::submit_and_wait(Apply apply, std::chrono::milliseconds timeout,
                                   Priority priority) {
  auto done = std::make_shared<std::promise<bool>>();
  auto finished = done->get_future();
  if (!submit(
          std::move(apply),
          [done](const Result<void> &written) { done->set_value(written.has_value()); },
          priority)) {
    return false;
  }
  return finished.wait_for(timeout) == std::future_status::ready && finished.get();
}

void WriteBatcher::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_one();
  if (m_thread.joinable()) m_thread.join();
  // The writer returned (run() set m_writer_stopped): the completion thread
  // calls what is left, then returns.
  if (m_completion_thread.joinable()) m_completion_thread.join();
}

std::size_t WriteBatcher::pending() const {
  std::lock_guard lock(m_mutex);
  return m_foreground.size() + m_background.size();
}

std::size_t WriteBatcher::pending(Priority priority) const {
  std::lock_guard lock(m_mutex);
  return priority == Priority::foreground ? m_foreground.size() : m_background.size();
}

void WriteBatcher::take_batch(std::deque<Item> &batch, WriterTimeShare::Time now) {
  // Background first gets what its share of the window's time allows (in
  // writes, from their average time; everything while stopping: stop()
  // finishes every queued write at once). Then counts: while both classes
  // wait, foreground may fill the batch but for the room of background's
  // share; background then gets one write per k_background_ratio foreground
  // ones, and at least one. With nothing in the foreground, background fills
  // the batch, but only up to its share right after a batch that had
  // foreground writes: requests are arriving, and the next one should not
  // wait behind a whole batch of the worker's.
  std::size_t foreground = m_foreground.size();
  std::size_t background = m_background.size();
  if (!m_stopping) background = std::min(background, m_share.background_writes(now));
  if (m_max_batch == 1) {
    // A batch of one cannot hold both: the classes take turns while both wait.
    const bool background_turn = background > 0 && (foreground == 0 || m_background_turn);
    m_background_turn = !background_turn;
    foreground = background_turn ? 0 : std::min<std::size_t>(foreground, 1);
    background = background_turn ? 1 : 0;
  } else {
    const std::size_t share = std::max<std::size_t>(1, m_max_batch / (k_background_ratio + 1));
    foreground = std::min(foreground, background > 0 ? m_max_batch - share : m_max_batch);
    if (foreground > 0) {
      background = std::min(background, std::max<std::size_t>(1, foreground / k_background_ratio));
    } else if (m_foreground_recent) {
      background = std::min(background, share);
    }
    background = std::min(background, m_max_batch - foreground);
  }
  m_foreground_recent = foreground > 0;
  for (std::size_t i = 0; i < foreground; ++i) {
    batch.push_back(std::move(m_foreground.front()));
    m_foreground.pop_front();
  }
  for (std::size_t i = 0; i < background; ++i) {
    batch.push_back(std::move(m_background.front()));
    m_background.pop_front();
  }
}

void WriteBatcher::run() {
  std::deque<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(m_mutex);
      for (;;) {
        m_wake.wait(lock,
                    [&] { return m_stopping || !m_foreground.empty() || !m_background.empty(); });
        if (m_foreground.empty() && m_background.empty()) { // stopping and drained
          m_writer_stopped = true;
          m_finished_wake.notify_one();
          return;
        }
        const auto now = m_clock.now();
        if (!m_foreground.empty() || m_stopping ||
            m_share.background_left(now) > WriterTimeShare::Duration::zero()) {
          take_batch(batch, now);
          break;
        }
        // Only background waits, and its share of this window is spent: the
        // writer idles (the cores go to foreground's other threads) until
        // foreground arrives or the next window starts. At most one window of
        // real time, so that a clock moved by a test is read again.
        if (m_background_holds != nullptr) m_background_holds->inc();
        const auto left =
            std::min<WriterTimeShare::Duration>(m_share.window_end(now) - now, k_share_window);
        m_wake.wait_for(lock, left, [&] { return m_stopping || !m_foreground.empty(); });
      }
    }
    const auto began = m_clock.now();
    const auto writes = run_batch(batch);
    batch.clear();
    if (writes.foreground_writes > 0) m_foreground_since_checkpoint = true;
    bound_wal();
    const auto ended = m_clock.now();
    const auto charged = m_share.charge(writes, began, ended);
    if (m_foreground_seconds != nullptr) {
      m_foreground_seconds->inc(std::chrono::duration<double>(charged.foreground).count());
      m_background_seconds->inc(std::chrono::duration<double>(charged.background).count());
    }
  }
}

void WriteBatcher::complete() {
  std::deque<Finished> finished;
  for (;;) {
    {
      std::unique_lock lock(m_mutex);
      m_finished_wake.wait(lock, [&] { return m_writer_stopped || !m_finished.empty(); });
      if (m_finished.empty()) return; // the writer stopped and every Done was called
      finished.swap(m_finished);
      // Taken: no longer held against the queue limit (a caller woken by its
      // Done may submit again at once).
      m_completing_foreground = 0;
      m_completing_background = 0;
    }
    for (auto &write : finished) {
      try {
        write.done(write.outcome);
      } catch (const std::exception &e) {
        spdlog::error("write completion threw: {}", e.what());
      }
    }
    finished.clear();
  }
}

void WriteBatcher::watch_wal(soci::session &sql) {
  m_wal_frames = 0;
  int page_bytes = 4096;
  sql << "PRAGMA page_size", soci::into(page_bytes);
  m_wal_page_bytes = static_cast<std::uint64_t>(page_bytes);
  auto *backend = static_cast<soci::sqlite3_session_backend *>(sql.get_backend());
  sqlite_api::sqlite3_wal_hook(backend->conn_, record_wal_frames, &m_wal_frames);
}

void WriteBatcher::bound_wal() {
  const auto &wal_path = m_db.wal_path();
  if (!wal_path || !m_sql) return;
  std::error_code error;
  const auto size = std::filesystem::file_size(*wal_path, error);
  if (error) return; // no WAL yet
  m_wal_stats.wal_bytes.store(size, std::memory_order_relaxed);
  if (m_wal_bytes != nullptr) m_wal_bytes->set(static_cast<double>(size));
  if (size <= m_db.wal_limit_bytes()) {
    // The log, not the file: SQLite writes the log from the file's start
    // again (without shrinking it) once a checkpoint copied all of it back
    // and no reader still needs it. So a passive checkpoint each time the
    // log holds k_checkpoint_log_bytes (or half the limit) keeps the file
    // near that size; a reader that holds on keeps the log growing, then
    // every batch checkpoints again until the truncating checkpoint at the
    // limit (below). Each checkpoint writes every page the log holds back
    // into the database file and syncs it.
    const auto log_bytes = static_cast<std::uint64_t>(m_wal_frames) * m_wal_page_bytes;
    const auto half_limit = m_db.wal_limit_bytes() / 2;
    const auto cadence =
        m_foreground_since_checkpoint ? std::min(k_checkpoint_log_bytes, half_limit) : half_limit;
    if (log_bytes < cadence) return;
    m_foreground_since_checkpoint = false;
    // Copy frames back early (no waiting for readers), so that the
    // truncating checkpoint at the limit has little left to copy. Here and
    // not on another thread: SQLite refuses a checkpoint at once (busy) while
    // another connection runs one, which kept the WAL growing under load.
    try {
      *m_sql << "PRAGMA wal_checkpoint(PASSIVE)";
      if (m_checkpoints_passive != nullptr) m_checkpoints_passive->inc();
    } catch (const std::exception &e) {
      spdlog::warn("WAL checkpoint failed: {}", e.what());
    }
    return;
  }
  // PASSIVE checkpoints never restart the log while writes continue;
  // TRUNCATE waits (busy_timeout) for readers on older snapshots, copies the
  // rest and empties the file.
  m_foreground_since_checkpoint = false;
  const auto started = std::chrono::steady_clock::now();
  int busy = 0;
  int log_frames = 0;
  int checkpointed = 0;
  try {
    *m_sql << "PRAGMA wal_checkpoint(TRUNCATE)", soci::into(busy), soci::into(log_frames),
        soci::into(checkpointed);
  } catch (const std::exception &e) {
    busy = 1;
    spdlog::warn("WAL checkpoint failed: {}", e.what());
  }
  const auto pause = std::chrono::steady_clock::now() - started;
  const auto pause_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(pause).count());
  m_wal_stats.checkpoints.fetch_add(1, std::memory_order_relaxed);
  if (busy != 0) m_wal_stats.incomplete_checkpoints.fetch_add(1, std::memory_order_relaxed);
  m_wal_stats.last_pause_us.store(pause_us, std::memory_order_relaxed);
  m_wal_stats.total_pause_us.fetch_add(pause_us, std::memory_order_relaxed);
  if (pause_us > m_wal_stats.max_pause_us.load(std::memory_order_relaxed)) {
    m_wal_stats.max_pause_us.store(pause_us, std::memory_order_relaxed); // one writer thread
  }
  if (m_checkpoint_pause != nullptr) {
    (busy != 0 ? m_checkpoints_incomplete : m_checkpoints_complete)->inc();
    m_checkpoint_pause->observe(std::chrono::duration<double>(pause).count());
  }
  const auto after = std::filesystem::file_size(*wal_path, error);
  if (!error) m_wal_stats.wal_bytes.store(after, std::memory_order_relaxed);
  if (!error && m_wal_bytes != nullptr) m_wal_bytes->set(static_cast<double>(after));
  // One line per checkpoint: with the default limit, at most one every few
  // seconds under full load.
  const auto level =
      pause > k_slow_checkpoint || busy != 0 ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(level, "WAL checkpoint paused the writer {} ms: {} KiB -> {} KiB{}", pause_us / 1000,
              size >> 10, error ? 0 : after >> 10,
              busy != 0 ? " (incomplete: a reader or another writer held on)" : "");
}

WriterTimeShare::BatchTime WriteBatcher::run_batch(std::deque<Item> &batch) {
  WriterTimeShare::BatchTime spent;
  // Each write's time runs from its start to the next one's (or to the end
  // of the loop): one clock read per write.
  auto charge = [&spent](const Item &write, WriterTimeShare::Duration took) {
    if (write.priority == Priority::foreground) {
      spent.foreground += took;
      ++spent.foreground_writes;
    } else {
      spent.background += took;
      ++spent.background_writes;
    }
  };
  std::vector<Result<void>> outcomes(batch.size());
  // Writes rolled back as a deadlock's victim: they run again in the next
  // batch (once this one committed, the other side's wait is over) instead
  // of failing, nor failing the batch with them.
  std::vector<bool> again(batch.size(), false);
  // Set when the database cannot be reached or stopped answering: then the
  // writes queued behind this batch fail at once too, rather than each
  // waiting out another connect or stall timeout (503 within SPEC's 10 s).
  bool unreachable = false;
  // Writes applied in this batch: those after them did not run (the batch's
  // time budget ran out) and go first in the next batch.
  std::size_t applied = batch.size();
  const auto started = m_clock.now();
  StallWatchdog::Guard stall;
  try {
    if (!m_sql) {
      unreachable = true;
      m_sql = m_db.connect(/*for_writer=*/true);
      m_context = std::make_unique<WriteContext>(*m_sql);
      if (m_db.wal_path()) watch_wal(*m_sql);
      unreachable = false;
    }
    soci::session &sql = *m_sql;
    const auto stall_limit = m_db.request_stall_limit();
    stall = m_db.guard(sql, stall_limit);
    auto &savepoint = m_context->prepared<Savepoint>();
    // SQLite: the writes run without a savepoint each while none fails
    // having changed rows (the connection counts them); one that does
    // rolls the whole batch back, and its writes run again first in the
    // next batches, each in its own savepoint again ("Savepoints only when
    // a write fails (SQLite)", docs/architecture.md).
    sqlite_api::sqlite3 *const lite = m_db.dialect() == Dialect::sqlite && m_savepoint_batches == 0
                                          ? sqlite_connection(sql)
                                          : nullptr;
    if (m_savepoint_batches > 0) --m_savepoint_batches;
    // The write that failed having changed rows without a savepoint.
    std::optional<std::size_t> undone_at;
    // SQLite: take the write lock up front (waiting up to busy_timeout for
    // another process's writer). A deferred BEGIN that reads before it writes
    // fails at once with SQLITE_BUSY when another process committed in
    // between, without waiting: two processes on one file would 503.
    begin_write(sql, m_db.dialect());
    auto write_started = started;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto now = m_clock.now();
      if (i > 0) {
        charge(batch[i - 1], now - write_started);
        // The stall limit bounds progress, not the batch: a server that
        // answers slowly is not cut, one that stops answering still is.
        stall.extend(stall_limit);
        if (now - started >= m_db.batch_budget()) {
          applied = i;
          break;
        }
      }
      write_started = now;
      // Undoes the failed write's changes: false when only the whole
      // batch's rollback can (no savepoint, and it changed rows).
      const long long rows_before = lite != nullptr ? rows_changed(lite) : 0;
      auto undo_write = [&] {
        if (lite != nullptr) return rows_changed(lite) == rows_before;
        savepoint.rollback.execute(true);
        savepoint.release.execute(true);
        return true;
      };
      if (lite == nullptr) savepoint.begin.execute(true);
      try {
        batch[i].apply(*m_context);
        if (lite == nullptr) savepoint.release.execute(true);
      } catch (const AbortWrite &e) {
        if (!undo_write()) {
          undone_at = i;
          break;
        }
        outcomes[i] = tl::unexpected(e.error);
      } catch (const soci::soci_error &e) {
        if (!is_database_failure(e) || is_deadlock_victim(e)) {
          // The session stays: the statement that threw must not run again.
          m_context->forget_prepared_except<Savepoint>();
        }
        if (is_deadlock_victim(e)) {
          savepoint.rollback.execute(true);
          savepoint.release.execute(true);
          if (++batch[i].deadlocks <= k_deadlock_retries) {
            again[i] = true;
            spdlog::warn("a write was a deadlock's victim: rolled back alone, it runs again in "
                         "the next batch");
          } else {
            spdlog::error("a write was a deadlock's victim {} times: it fails", k_deadlock_retries);
            outcomes[i] = fail(ErrorKind::unavailable, "database_unavailable",
                               "the database did not accept the write; retry shortly");
          }
          continue;
        }
        // The database itself failed (locked, gone, full): the whole batch
        // fails with 503 rather than every write waiting out its own timeout.
        // Anything else (a constraint a bug violated) is this write's alone.
        if (is_database_failure(e)) throw;
        if (!undo_write()) {
          undone_at = i;
          break;
        }
        spdlog::error("write rolled back: {}", e.what());
        outcomes[i] = fail(ErrorKind::internal, "internal", e.what());
      } catch (const std::exception &e) {
        if (!undo_write()) {
          undone_at = i;
          break;
        }
        spdlog::error("write rolled back: {}", e.what());
        outcomes[i] = fail(ErrorKind::internal, "internal", e.what());
      }
    }
    if (undone_at) {
      // Nothing of this batch is kept: every write runs again, first in the
      // next batches, in a savepoint each (the one that failed fails alone
      // then). A write gives the same result when run again (Apply).
      charge(batch[*undone_at], m_clock.now() - write_started);
      sql.rollback();
      stall.disarm();
      again.assign(again.size(), true);
      m_savepoint_batches = k_savepoint_batches;
      spdlog::debug("a write failed after changing rows without a savepoint: its batch of {} "
                    "writes runs again, each in a savepoint",
                    batch.size());
    } else {
      if (applied == batch.size() && !batch.empty()) {
        charge(batch.back(), m_clock.now() - write_started);
      }
      stall.extend(stall_limit);
      const auto commit_started = std::chrono::steady_clock::now();
      sql.commit();
      stall.disarm();
      if (applied < batch.size()) {
        spdlog::warn("a write batch ran past its budget of {} ms (a slow database): committed "
                     "after {} writes, the other {} go first in the next batch",
                     m_db.batch_budget().count(), applied, batch.size() - applied);
        for (std::size_t i = applied; i < batch.size(); ++i) again[i] = true;
      }
      if (m_batch_size != nullptr) {
        m_batch_size->observe(static_cast<double>(applied));
        m_commit_seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started)
                .count());
      }
    }
  } catch (const std::exception &e) {
    if (stall.disarm()) unreachable = true;
    spdlog::error("database write batch of {} failed: {}", batch.size(), e.what());
    if (m_sql && !unreachable) {
      try {
        m_sql->rollback();
      } catch (const std::exception &) {
        // The connection is broken: reconnect on the next batch.
      }
    }
    m_context.reset();
    m_sql.reset();
    again.assign(again.size(), false); // nothing committed: every write fails
    for (auto &outcome : outcomes) {
      outcome = fail(ErrorKind::unavailable, "database_unavailable",
                     "the database did not accept the write; retry shortly");
    }
    if (unreachable) {
      std::lock_guard lock(m_mutex);
      const auto queued = m_foreground.size() + m_background.size();
      for (auto *queue : {&m_foreground, &m_background}) {
        while (!queue->empty()) {
          batch.push_back(std::move(queue->front()));
          queue->pop_front();
        }
      }
      outcomes.resize(batch.size(), outcomes.empty() ? Result<void>{} : outcomes.front());
      if (queued > 0) spdlog::error("{} queued writes failed with it", queued);
    }
  }
  std::deque<Item> retry_foreground;
  std::deque<Item> retry_background;
  std::lock_guard lock(m_mutex);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (i < again.size() && again[i]) {
      (batch[i].priority == Priority::foreground ? retry_foreground : retry_background)
          .push_back(std::move(batch[i]));
      continue;
    }
    // Done runs on the completion thread: the writer goes on to the next
    // batch meanwhile.
    ++completing_of(batch[i].priority);
    m_finished.push_back(
        Finished{std::move(batch[i].done), std::move(outcomes[i]), batch[i].priority});
  }
  m_finished_wake.notify_one();
  // First of their class in the next batch (they were admitted already: no
  // queue limit).
  m_foreground.insert(m_foreground.begin(), std::make_move_iterator(retry_foreground.begin()),
                      std::make_move_iterator(retry_foreground.end()));
  m_background.insert(m_background.begin(), std::make_move_iterator(retry_background.begin()),
                      std::make_move_iterator(retry_background.end()));
  return spent;
}

} // namespace usher::store
