// Numbered schema migrations (SPEC §4), the same SQL on SQLite and
// PostgreSQL but for the identity column type.
#pragma once

#include <soci/soci.h>

#include <usher/store/database.hpp>

namespace usher::store {

// The highest migration number this build knows.
int latest_migration();

// Applies every migration not yet recorded in `schema_migrations`, each in
// its own transaction; returns how many were applied. Throws soci_error.
// `up_to` stops after that migration (tests of an upgrade from an older
// schema).
int migrate(soci::session &sql, Dialect dialect, int up_to = latest_migration());

} // namespace usher::store
