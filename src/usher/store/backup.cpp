// `usher backup` and `usher restore` (see backup.hpp).
#include <usher/store/backup.hpp>

#include <cerrno>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace usher::store {
namespace {

namespace fs = std::filesystem;

// The copy reaches the disk before usher says it is done: SQLite does not
// fsync what VACUUM INTO writes.
void sync_path(const fs::path &path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + path.string());
  }
  const int rc = ::fsync(fd);
  const int fsync_errno = errno;
  ::close(fd);
  if (rc != 0) {
    throw std::system_error(fsync_errno, std::generic_category(), "fsync " + path.string());
  }
}

fs::path parent_of(const fs::path &path) {
  const fs::path parent = fs::absolute(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// SQLite's own check of the file, and proof that it is an usher database
// (it has the migrations table). A plain connection: no usher settings
// are written into a file that is only being checked.
Result<void> check_copy(const fs::path &path) {
  try {
    soci::session sql(*soci::factory_sqlite3(), fmt::format("db=\"{}\"", path.string()));
    std::string verdict;
    sql << "PRAGMA quick_check", soci::into(verdict);
    if (verdict != "ok") {
      return fail(ErrorKind::invalid, "backup_corrupt",
                  fmt::format("{} fails SQLite's check: {}", path.string(), verdict));
    }
    int migrations = 0;
    sql << "SELECT COUNT(*) FROM schema_migrations", soci::into(migrations);
    if (migrations == 0) {
      return fail(ErrorKind::invalid, "not_an_usher_database",
                  fmt::format("{} has no applied usher migrations", path.string()));
    }
  } catch (const soci::soci_error &e) {
    return fail(ErrorKind::invalid, "not_an_usher_database",
                fmt::format("{} is not an usher database: {}", path.string(), e.what()));
  }
  return {};
}

bool path_exists(const fs::path &path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

void remove_quietly(const fs::path &path) {
  std::error_code ec;
  fs::remove(path, ec);
}

} // namespace

Result<BackupSummary> backup(const Database &db, const fs::path &destination) {
  if (!db.sqlite_path()) {
    return fail(ErrorKind::invalid, "not_sqlite",
                "usher backup copies the embedded SQLite database; back up PostgreSQL with "
                "pg_dump (docs/operations.md)");
  }
  if (path_exists(destination)) {
    return fail(
        ErrorKind::conflict, "backup_exists",
        fmt::format("{} exists; usher backup never overwrites a file", destination.string()));
  }
  try {
    {
      auto sql = db.connect();
      const std::string target = destination.string();
      // One read transaction over a snapshot: writers carry on (WAL).
      *sql << "VACUUM INTO :target", soci::use(target);
    }
    if (auto checked = check_copy(destination); !checked) {
      remove_quietly(destination);
      return tl::unexpected(checked.error());
    }
    sync_path(destination, false);
    sync_path(parent_of(destination), true);
    return BackupSummary{fs::file_size(destination)};
  } catch (const std::exception &e) {
    remove_quietly(destination);
    return fail(ErrorKind::unavailable, "backup_failed",
                fmt::format("backup to {} failed: {}", destination.string(), e.what()));
  }
}

Result<BackupSummary> restore(const fs::path &source, const Database &db) {
  if (!db.sqlite_path()) {
    return fail(ErrorKind::invalid, "not_sqlite",
                "usher restore puts back an SQLite backup; DATABASE_URL names PostgreSQL "
                "(restore it with pg_restore, docs/operations.md)");
  }
  const fs::path target = *db.sqlite_path();
  if (!path_exists(source)) {
    return fail(ErrorKind::not_found, "backup_missing",
                fmt::format("no backup at {}", source.string()));
  }
  for (const fs::path &present : {target, fs::path(*db.wal_path())}) {
    if (path_exists(present)) {
      return fail(ErrorKind::conflict, "database_exists",
                  fmt::format("{} exists: stop usher and move the old database (and its -wal and "
                              "-shm files) aside first",
                              present.string()));
    }
  }
  const fs::path partial = target.string() + ".restoring";
  try {
    remove_quietly(partial);
    fs::copy_file(source, partial);
    if (auto checked = check_copy(partial); !checked) {
      remove_quietly(partial);
      return tl::unexpected(checked.error());
    }
    sync_path(partial, false);
    fs::rename(partial, target);
    sync_path(parent_of(target), true);
    return BackupSummary{fs::file_size(target)};
  } catch (const std::exception &e) {
    remove_quietly(partial);
    return fail(ErrorKind::unavailable, "restore_failed",
                fmt::format("restore of {} failed: {}", source.string(), e.what()));
  }
}

} // namespace usher::store
