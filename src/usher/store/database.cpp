#include <usher/store/database.hpp>

#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <usher/store/dialect.hpp>
#include <usher/store/postgres_library.hpp>
#include <usher/util/postgres_url.hpp>

namespace usher::store {
namespace {

// libpq's own message says what failed (refused, password, missing
// database) but neither which setting nor how to fix it; it never
// contains the password.
std::string connect_failure(const std::string &redacted_url, std::string libpq_message) {
  while (!libpq_message.empty() && (libpq_message.back() == '\n' || libpq_message.back() == ' '))
    libpq_message.pop_back();
  for (auto &c : libpq_message) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  std::string hint;
  if (libpq_message.find("password authentication failed") != std::string::npos ||
      libpq_message.find("no password supplied") != std::string::npos) {
    hint = " (check the user name and password in DATABASE_URL)";
  } else if (libpq_message.find("does not exist") != std::string::npos) {
    hint = " (the database or role in DATABASE_URL does not exist: create it first)";
  } else if (libpq_message.find("Connection refused") != std::string::npos ||
             libpq_message.find("could not translate host name") != std::string::npos ||
             libpq_message.find("timeout expired") != std::string::npos) {
    hint = " (is PostgreSQL running at the host and port in DATABASE_URL?)";
  }
  return fmt::format("cannot connect to DATABASE_URL {}: {}{}", redacted_url, libpq_message, hint);
}

} // namespace

Database::Database(std::string url, std::chrono::milliseconds busy_timeout, bool synchronous_full,
                   std::uint64_t wal_limit_bytes, std::chrono::milliseconds statement_timeout)
    : m_url(std::move(url)), m_busy_timeout(busy_timeout), m_statement_timeout(statement_timeout),
      m_synchronous_full(synchronous_full), m_wal_limit_bytes(wal_limit_bytes) {
  if (m_url.rfind("sqlite:", 0) == 0) {
    m_dialect = Dialect::sqlite;
    const std::string path = m_url.substr(7);
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    m_sqlite_path = path;
    m_wal_path = path + "-wal";
    // SOCI's sqlite3 backend takes "db=PATH"; quoting allows spaces.
    m_connect_string = fmt::format("db=\"{}\" timeout={}", path,
                                   std::max<long long>(1, busy_timeout.count() / 1000));
  } else if (m_url.rfind("postgresql://", 0) == 0 || m_url.rfind("postgres://", 0) == 0) {
    m_dialect = Dialect::postgresql;
    auto conninfo = postgres_url::to_conninfo(m_url, k_connect_timeout_s);
    if (!conninfo) throw std::runtime_error("DATABASE_URL " + conninfo.error().detail);
    m_connect_string = std::move(*conninfo);
    m_watchdog = std::make_unique<StallWatchdog>();
  } else {
    throw std::runtime_error("DATABASE_URL must start with sqlite: or postgresql://");
  }
}

std::unique_ptr<soci::session> Database::connect(bool for_writer) const {
  std::unique_ptr<soci::session> sql;
  if (m_dialect == Dialect::sqlite) {
    sql = std::make_unique<soci::session>(*soci::factory_sqlite3(), m_connect_string);
    *sql << fmt::format("PRAGMA busy_timeout = {}", m_busy_timeout.count());
    *sql << "PRAGMA journal_mode = WAL";
    // FULL: a commit is on disk before any 2xx; group commit amortises the
    // fsync over every write in the batch. NORMAL (WAL): a commit survives
    // a crash of usher, not of the machine.
    *sql << (m_synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    *sql << "PRAGMA foreign_keys = ON";
    // Savepoint journals stay in memory (every group-commit write has one).
    *sql << "PRAGMA temp_store = MEMORY";
    // Whichever connection resets the WAL trims the file back to this size,
    // so a WAL that grew during a burst does not keep its disk space.
    *sql << fmt::format("PRAGMA journal_size_limit = {}", m_wal_limit_bytes);
    if (for_writer) *sql << "PRAGMA wal_autocheckpoint = 0";
  } else {
    // SOCI's backend and libpq are loaded by the first connection
    // (postgres_library.hpp); a process on SQLite never maps them.
    const auto postgres = postgres_library();
    if (!postgres) {
      throw soci::soci_error(
          connect_failure(postgres_url::redacted(m_url), postgres.error().detail));
    }
    try {
      sql = std::make_unique<soci::session>(*(*postgres)->factory, m_connect_string);
    } catch (const soci::soci_error &e) {
      throw soci::soci_error(connect_failure(postgres_url::redacted(m_url), e.what()));
    }
    // Set on the session (not as libpq `options`, which connection poolers
    // refuse): no statement runs longer than DB_STATEMENT_TIMEOUT_MS, and no
    // lock is waited for longer than DB_BUSY_TIMEOUT_MS (SQLite's busy
    // timeout). Both fail the statement, which the callers treat as the
    // database being unavailable. connect_timeout bounds the connection's
    // establishment only: these round trips are watched like any other, or
    // a link that stalls right after it would hang the caller for ever.
    auto stall = guard(*sql, request_stall_limit());
    *sql << fmt::format("SET statement_timeout = {}", m_statement_timeout.count());
    *sql << fmt::format("SET lock_timeout = {}", m_busy_timeout.count());
    // Times are written as ISO 8601 UTC text by usher itself; the session's
    // time zone only matters to now() in SQL, which stays UTC.
    *sql << "SET TIME ZONE 'UTC'";
    // libpq prints NOTICEs ("relation ... already exists, skipping") on
    // stderr, outside usher's log format.
    *sql << "SET client_min_messages = warning";
  }
  return sql;
}

StallWatchdog::Guard Database::guard(soci::session &sql, std::chrono::milliseconds limit) const {
  if (!m_watchdog) return {};
  return m_watchdog->arm(sql, limit);
}

void execute_script(soci::session &sql, const std::string &script) {
  std::size_t start = 0;
  while (start < script.size()) {
    auto end = script.find(';', start);
    if (end == std::string::npos) end = script.size();
    const std::string statement = script.substr(start, end - start);
    if (statement.find_first_not_of(" \t\r\n") != std::string::npos) sql << statement;
    start = end + 1;
  }
}

void ping(soci::session &sql) {
  int one = 0;
  sql << "SELECT 1", soci::into(one);
}

bool configure_sqlite_process() {
  return sqlite_api::sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK &&
         sqlite_api::sqlite3_config(SQLITE_CONFIG_MULTITHREAD) == SQLITE_OK;
}

bool sqlite_connection_serialized(soci::session &sql) {
  auto *backend = static_cast<soci::sqlite3_session_backend *>(sql.get_backend());
  return sqlite_api::sqlite3_db_mutex(backend->conn_) != nullptr;
}

long long inserted_rowid(soci::session &sql) {
  auto *backend = static_cast<soci::sqlite3_session_backend *>(sql.get_backend());
  return sqlite_api::sqlite3_last_insert_rowid(backend->conn_);
}

void InsertWithId::prepare(const std::string &insert) {
  if (m_returning) m_statement.exchange(soci::into(m_id));
  m_statement.alloc();
  m_statement.prepare(m_returning ? insert + " RETURNING id" : insert);
  m_statement.define_and_bind();
}

std::optional<long long> InsertWithId::run() {
  if (m_returning) {
    if (!m_statement.execute(true)) return std::nullopt;
    m_statement.fetch(); // finish the RETURNING statement so that COMMIT can run
    return m_id;
  }
  m_statement.execute(true);
  if (m_statement.get_affected_rows() != 1) return std::nullopt;
  return inserted_rowid(m_sql);
}

} // namespace usher::store
