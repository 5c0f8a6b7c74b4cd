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
  Database(std::string url, std::chrono::milliseconds busy_timeout, bool synchronous_full = true,
           std::uint64_t wal_limit_bytes = k_default_wal_limit_bytes);

  static constexpr std::uint64_t k_default_wal_limit_bytes = 64ULL * 1024 * 1024;

  Dialect dialect() const { return m_dialect; }

  // SQLite: the database file's path; nullopt for PostgreSQL.
  const std::optional<std::string> &sqlite_path() const { return m_sqlite_path; }
  // SQLite: the path of the write-ahead log file ("PATH-wal"); nullopt for
  // PostgreSQL.
  const std::optional<std::string> &wal_path() const { return m_wal_path; }
  std::uint64_t wal_limit_bytes() const { return m_wal_limit_bytes; }

  // Opens a new session; throws soci::soci_error when the database cannot be
  // reached. `for_writer` turns off SQLite's automatic WAL checkpoints on
  // this connection (the maintenance thread checkpoints passively, and the
  // writer truncates the WAL itself when it passes the limit).
  std::unique_ptr<soci::session> connect(bool for_writer = false) const;

private:
  std::string m_url;
  std::string m_connect_string;
  Dialect m_dialect;
  std::chrono::milliseconds m_busy_timeout;
  bool m_synchronous_full;
  std::uint64_t m_wal_limit_bytes;
  std::optional<std::string> m_sqlite_path;
  std::optional<std::string> m_wal_path;
};

// Runs `sql` (several statements separated by ';') one statement at a time.
void execute_script(soci::session &sql, const std::string &script);

// The readiness probe's round trip (/readyz); throws soci::soci_error when
// the database does not answer.
void ping(soci::session &sql);

} // namespace usher::store
