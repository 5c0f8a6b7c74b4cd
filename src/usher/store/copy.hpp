// `usher migrate-data`: moves an embedded SQLite install to PostgreSQL by
// copying every table (docs/operations.md, "Moving from SQLite to
// PostgreSQL").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <usher/store/database.hpp>
#include <usher/util/error.hpp>

namespace usher::store {

struct TableCopy {
  std::string table;
  std::int64_t rows = 0; // copied, and counted again on both sides
};

struct CopySummary {
  std::vector<TableCopy> tables; // in the order they were copied
  std::int64_t rows() const;
};

// Copies every table of `from` (SQLite) into `to` (PostgreSQL), both first
// brought to the latest migration. `to` must hold no data (nothing but the
// rows its migrations seeded): the copy never merges. One read transaction
// on `from` (a consistent snapshot: stop usher first, or what it writes
// meanwhile is not copied) and one transaction on `to`: all or nothing.
// Ids are kept (jobs, tokens and events keep their numbers) and the
// identity sequences moved past them, so new rows do not collide. Every
// table's row count is compared on both sides before the commit.
// Errors: `invalid` (not SQLite to PostgreSQL), `conflict` (`to` holds
// data, or a table only one side has), `unavailable` (a database failed;
// nothing was committed), `internal` (counts differ; rolled back).
// `progress(table, rows)` is told after each table.
Result<CopySummary> copy_database(
    const Database &from, const Database &to,
    const std::function<void(const std::string &, std::int64_t)> &progress = {});

} // namespace usher::store
