// SOCI's PostgreSQL backend and libpq, loaded by the first PostgreSQL
// connection. usher links neither: a process on SQLite never maps them nor
// the libraries libpq pulls in (OpenSSL, Kerberos, LDAP and through it
// gnutls, p11-kit, nettle, gmp, …), about 5 MiB of an idle serve's resident
// pages (docs/benchmarks.md, "Memory"). The headers still give the types;
// the functions come from dlopen and dlsym.
#pragma once

#include <string>

#include <soci/postgresql/soci-postgresql.h>

#include <usher/util/error.hpp>

namespace usher::store {

// What usher calls in SOCI's PostgreSQL backend and in libpq.
struct PostgresLibrary {
  const soci::backend_factory *factory = nullptr; // soci::factory_postgresql()
  decltype(&::PQsocket) socket = nullptr;
  decltype(&::PQconsumeInput) consume_input = nullptr;
  decltype(&::PQerrorMessage) error_message = nullptr;
  decltype(&::PQnotifies) notifies = nullptr;
  decltype(&::PQfreemem) freemem = nullptr;
  // soci::postgresql_soci_error::sqlstate(), called through its symbol (a
  // dynamic_cast to the type would link the backend: its typeinfo is there).
  std::string (*error_sqlstate)(const soci::postgresql_soci_error *) = nullptr;
};

// The sonames of the SOCI and libpq whose headers usher is built with
// (Debian's libsoci-postgresql4.0 and libpq5).
constexpr const char *k_soci_postgresql_soname = "libsoci_postgresql.so.4.0";
constexpr const char *k_libpq_soname = "libpq.so.5";

// Loads `backend` (SOCI's PostgreSQL backend) and `libpq` and resolves every
// member of PostgresLibrary in them; an `unavailable` error names what is
// missing. The process uses postgres_library(); this is the part the unit
// tests can point elsewhere.
Result<PostgresLibrary> open_postgres_library(const char *backend, const char *libpq);

// The libraries of k_soci_postgresql_soname and k_libpq_soname, loaded and
// resolved by the first call, from any thread; every later call gives the
// same answer, a failure included. Never unloaded.
Result<const PostgresLibrary *> postgres_library();

// The SQLSTATE of `error` when it is a soci::postgresql_soci_error
// ("40P01"), else empty. Loads nothing: an error of PostgreSQL's only exists
// once the backend is loaded.
std::string postgres_sqlstate(const soci::soci_error &error);

} // namespace usher::store
