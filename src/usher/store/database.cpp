#include <usher/store/database.hpp>

#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace usher::store {

Database::Database(std::string url, std::chrono::milliseconds busy_timeout, bool synchronous_full,
                   std::uint64_t wal_limit_bytes)
    : m_url(std::move(url)), m_busy_timeout(busy_timeout), m_synchronous_full(synchronous_full),
      m_wal_limit_bytes(wal_limit_bytes) {
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
    m_connect_string = m_url;
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
    sql = std::make_unique<soci::session>(*soci::factory_postgresql(), m_connect_string);
    *sql << fmt::format("SET statement_timeout = {}", m_busy_timeout.count());
  }
  return sql;
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

} // namespace usher::store
