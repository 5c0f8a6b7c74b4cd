// Backups of the embedded SQLite database (docs/operations.md): a consistent
// copy taken while usher runs, and the restore of such a copy into place.
#pragma once

#include <cstdint>
#include <filesystem>

#include <usher/store/database.hpp>
#include <usher/util/error.hpp>

namespace usher::store {

struct BackupSummary {
  std::uint64_t bytes = 0;
};

// Writes a consistent snapshot of `db` (SQLite only) to `destination` with
// `VACUUM INTO`: one read transaction, so intake and the worker keep writing
// meanwhile (WAL readers do not block the writer). The copy is checked
// (`PRAGMA quick_check`) and fsynced before this returns. Fails with
// `conflict` when `destination` exists (never overwritten), `invalid` for a
// PostgreSQL database (use pg_dump), `unavailable` when SQLite fails; a
// partial copy is removed.
Result<BackupSummary> backup(const Database &db, const std::filesystem::path &destination);

// Puts the backup at `source` in place as the SQLite database of `db`. Fails
// with `conflict` when the database file (or its -wal) exists: the operator
// stops usher and moves the old database aside first, so a stale WAL is
// never replayed onto the restored file and nothing is overwritten. The copy
// is checked (`PRAGMA quick_check`), fsynced and renamed into place.
Result<BackupSummary> restore(const std::filesystem::path &source, const Database &db);

} // namespace usher::store
