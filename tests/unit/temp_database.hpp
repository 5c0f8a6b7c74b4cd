// A migrated SQLite database file of its own under the temporary directory,
// with one session for the test's own reads, removed (with its WAL files)
// when the test ends. Shared by the unit suites of the pipeline.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>

#include <unistd.h>

#include <soci/soci.h>

#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/util/crypto.hpp>

namespace usher::testing {

class MigratedDatabase {
public:
  explicit MigratedDatabase(const std::string &name)
      : m_path(unique_path(name)),
        m_db("sqlite:" + m_path.string(), std::chrono::milliseconds(5000)) {
    crypto::initialise();
    m_sql = m_db.connect();
    store::migrate(*m_sql, m_db.dialect());
  }
  ~MigratedDatabase() {
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }
  MigratedDatabase(const MigratedDatabase &) = delete;
  MigratedDatabase &operator=(const MigratedDatabase &) = delete;

  store::Database &db() { return m_db; }
  soci::session &sql() { return *m_sql; }

  // One number from a query with one bound text parameter.
  long long count(const std::string &sql_text, const std::string &bound = {}) {
    long long n = -1;
    if (bound.empty()) {
      *m_sql << sql_text, soci::into(n);
    } else {
      *m_sql << sql_text, soci::use(bound), soci::into(n);
    }
    return n;
  }

  std::string text(const std::string &sql_text, long long id) {
    std::string value;
    soci::indicator ind = soci::i_null;
    *m_sql << sql_text, soci::use(id), soci::into(value, ind);
    return ind == soci::i_ok ? value : std::string("<null>");
  }

private:
  static std::filesystem::path unique_path(const std::string &name) {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher_unit_" + name + "_" + std::to_string(getpid()) + "_" +
            std::to_string(counter++) + "_" + std::to_string(std::random_device{}()) + ".db");
  }

  std::filesystem::path m_path;
  store::Database m_db;
  std::unique_ptr<soci::session> m_sql;
};

} // namespace usher::testing
