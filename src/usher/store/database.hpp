// Where usher's data lives: a DATABASE_URL turned into SOCI sessions with the
// settings every connection needs (SQLite: WAL, full sync, busy timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <soci/soci.h>

#include <usher/store/dialect.hpp>
#include <usher/store/stall_watchdog.hpp>

namespace usher::store {

class Database {
public:
  // `url` is "sqlite:PATH" or "postgresql://..."; throws std::runtime_error
  // when the URL names neither.
  // `synchronous_full`: SQLite fsyncs every commit (survives power loss);
  // otherwise commits survive a crash of the process but not of the machine.
  // `wal_limit_bytes`: SQLite's `journal_size_limit` on every connection (a
  // reset WAL is trimmed back to it) and the size past which the writer
  // truncates the WAL (WriteBatcher).
  // PostgreSQL: `url` becomes a libpq conninfo (postgres_url::to_conninfo;
  // throws std::runtime_error naming DATABASE_URL when it is malformed);
  // every connection gets `statement_timeout` and, as lock_timeout,
  // `busy_timeout`.
  Database(std::string url, std::chrono::milliseconds busy_timeout, bool synchronous_full = true,
           std::uint64_t wal_limit_bytes = k_default_wal_limit_bytes,
           std::chrono::milliseconds statement_timeout = std::chrono::milliseconds(30000));

  static constexpr std::uint64_t k_default_wal_limit_bytes = 64ULL * 1024 * 1024;
  // PostgreSQL: libpq's connect_timeout when the URL sets none, so that an
  // unreachable host fails start-up (and readiness) instead of hanging.
  static constexpr int k_connect_timeout_s = 5;

  Dialect dialect() const { return m_dialect; }

  // SQLite: the database file's path; nullopt for PostgreSQL.
  const std::optional<std::string> &sqlite_path() const { return m_sqlite_path; }
  // SQLite: the path of the write-ahead log file ("PATH-wal"); nullopt for
  // PostgreSQL.
  const std::optional<std::string> &wal_path() const { return m_wal_path; }
  std::uint64_t wal_limit_bytes() const { return m_wal_limit_bytes; }

  // Opens a new session; throws soci::soci_error when the database cannot be
  // reached (PostgreSQL: the message names DATABASE_URL, without its
  // password, and says what to check). `for_writer` turns off SQLite's automatic WAL checkpoints on
  // this connection (the maintenance thread checkpoints passively, and the
  // writer truncates the WAL itself when it passes the limit).
  std::unique_ptr<soci::session> connect(bool for_writer = false) const;

  // PostgreSQL: until the guard is released, `sql`'s connection is cut
  // (shutdown of its socket) once `limit` passes, so that a server that
  // stops answering fails the call instead of blocking it for ever
  // (StallWatchdog). SQLite: does nothing.
  StallWatchdog::Guard guard(soci::session &sql, std::chrono::milliseconds limit) const;
  // The limit for round trips that requests wait for (the writer's batch,
  // the read pool's task): DB_BUSY_TIMEOUT_MS (a lock wait may legitimately
  // last that long) plus k_stall_margin.
  std::chrono::milliseconds request_stall_limit() const { return m_busy_timeout + k_stall_margin; }
  static constexpr std::chrono::milliseconds k_stall_margin{2000};
  // How long the writer adds writes to one batch: past it, the batch
  // commits what it applied and the rest goes first in the next one. Half
  // the request's round-trip limit, so that a request that arrives behind a
  // running batch waits for little more than that batch and its own, even
  // on a slow link where each write costs several slow round trips
  // (docs/operations.md, "PostgreSQL slow").
  std::chrono::milliseconds batch_budget() const { return request_stall_limit() / 2; }
  // The limit for background round trips (maintenance, alerts): a statement
  // may run DB_STATEMENT_TIMEOUT_MS, then the server itself cancels it.
  std::chrono::milliseconds background_stall_limit() const {
    return m_statement_timeout + k_stall_margin;
  }

private:
  std::string m_url;
  std::string m_connect_string;
  Dialect m_dialect;
  std::chrono::milliseconds m_busy_timeout;
  std::chrono::milliseconds m_statement_timeout;
  bool m_synchronous_full;
  std::uint64_t m_wal_limit_bytes;
  std::optional<std::string> m_sqlite_path;
  std::optional<std::string> m_wal_path;
  std::unique_ptr<StallWatchdog> m_watchdog; // PostgreSQL only
};

// SQLite's process-wide settings, applied once before its first connection
// (cli::run does, as its first step): no memory statistics, which take a
// global mutex around every allocation SQLite makes, and the multi-thread
// mode, in which a connection takes no mutex around each call. That mode
// asks what usher does anyway, since a soci::session is not thread-safe
// either: a connection is used by one thread at a time (each thread opens
// its own; the writer's is the writer thread's alone). Together they cut
// 5-10 % of the CPU per request and per drained user (docs/benchmarks.md,
// "SQLite without its mutexes"). Returns false when SQLite was already
// initialised (a connection opened first): the settings are then left as
// they were, which is correct, only slower.
bool configure_sqlite_process();

// Whether `sql` (an SQLite connection) takes a mutex around each call:
// false once configure_sqlite_process() ran before it was opened.
bool sqlite_connection_serialized(soci::session &sql);

// Runs `sql` (several statements separated by ';') one statement at a time.
void execute_script(soci::session &sql, const std::string &script);

// The readiness probe's round trip (/readyz); throws soci::soci_error when
// the database does not answer.
void ping(soci::session &sql);

} // namespace usher::store
