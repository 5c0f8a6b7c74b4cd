// Numbered schema migrations (SPEC §4), the same SQL on SQLite and
// PostgreSQL but for the identity column type.
#pragma once

#include <soci/soci.h>

#include <usher/store/database.hpp>

namespace usher::store {

// Applies every migration not yet recorded in `schema_migrations`, each in
// its own transaction; returns how many were applied. Throws soci_error.
int migrate(soci::session &sql, Dialect dialect);

// The highest migration number this build knows.
int latest_migration();

} // namespace usher::store
