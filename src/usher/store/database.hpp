// Where usher's data lives: a DATABASE_URL turned into SOCI sessions with the
// settings every connection needs (SQLite: WAL, full sync, busy timeout).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <soci/soci.h>

namespace usher::store {

enum class Dialect { sqlite, postgresql };

class Database {
public:
  // `url` is "sqlite:PATH" or "postgresql://..."; throws std::runtime_error
  // when the URL names neither.
  // `synchronous_full`: SQLite fsyncs every commit (survives power loss);
  // otherwise commits survive a crash of the process but not of the machine.
  Database(std::string url, std::chrono::milliseconds busy_timeout, bool synchronous_full = true);

  Dialect dialect() const { return m_dialect; }

  // Opens a new session; throws soci::soci_error when the database cannot be
  // reached. `for_writer` turns off SQLite's automatic WAL checkpoints on
  // this connection (the maintenance thread checkpoints instead, off the
  // writer's path).
  std::unique_ptr<soci::session> connect(bool for_writer = false) const;

private:
  std::string m_url;
  std::string m_connect_string;
  Dialect m_dialect;
  std::chrono::milliseconds m_busy_timeout;
  bool m_synchronous_full;
};

// Runs `sql` (several statements separated by ';') one statement at a time.
void execute_script(soci::session &sql, const std::string &script);

} // namespace usher::store
