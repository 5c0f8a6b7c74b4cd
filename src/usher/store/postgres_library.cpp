// SOCI's PostgreSQL backend and libpq through dlopen and dlsym (see
// postgres_library.hpp).
#include <usher/store/postgres_library.hpp>

#include <cstring>
#include <typeinfo>

#include <dlfcn.h>
#include <fmt/format.h>

#include <usher/util/shared_library.hpp>

namespace usher::store {
namespace {

// typeid(soci::postgresql_soci_error).name(), the Itanium C++ ABI's mangled
// name; the typeinfo object itself is the backend's.
constexpr const char *k_postgres_error_type = "N4soci21postgresql_soci_errorE";

const Result<PostgresLibrary> &loaded_library() {
  // One per process, like dlopen's handles: the static is initialised once,
  // thread-safely, by the first caller.
  // Not logged here: the failure reaches the caller, which reports a
  // connection it could not make (at start-up, the one line before exit).
  static const Result<PostgresLibrary> k_loaded =
      open_postgres_library(k_soci_postgresql_soname, k_libpq_soname);
  return k_loaded;
}

} // namespace

Result<PostgresLibrary> open_postgres_library(const char *backend, const char *libpq) {
  auto backend_handle = shared_library::open(backend, "database_unavailable");
  if (!backend_handle) return tl::unexpected(backend_handle.error());
  PostgresLibrary library;
  const char *missing = nullptr;
  const char *missing_in = backend;
  const auto need = [&](void *handle, const char *file, const char *name, auto &member) {
    if (missing == nullptr && !shared_library::resolve(handle, name, member)) {
      missing = name;
      missing_in = file;
    }
  };
  const soci::backend_factory *(*factory)() = nullptr;
  need(*backend_handle, backend, "factory_postgresql", factory);
  // A const member function returning std::string by value is, in the
  // Itanium C++ ABI, a function of (hidden result pointer, this): the
  // same as a free function of the object's address returning std::string.
  need(*backend_handle, backend, "_ZNK4soci21postgresql_soci_error8sqlstateB5cxx11Ev",
       library.error_sqlstate);
  if (missing != nullptr) {
    dlclose(*backend_handle);
    return fail(
        ErrorKind::unavailable, "database_unavailable",
        fmt::format("{} has no {}: it is not SOCI's PostgreSQL backend 4.0", backend, missing));
  }
  // The backend's own dependency: loaded already, this only takes a handle.
  auto libpq_handle = shared_library::open(libpq, "database_unavailable");
  if (!libpq_handle) {
    dlclose(*backend_handle);
    return tl::unexpected(libpq_handle.error());
  }
  need(*libpq_handle, libpq, "PQsocket", library.socket);
  need(*libpq_handle, libpq, "PQconsumeInput", library.consume_input);
  need(*libpq_handle, libpq, "PQerrorMessage", library.error_message);
  need(*libpq_handle, libpq, "PQnotifies", library.notifies);
  need(*libpq_handle, libpq, "PQfreemem", library.freemem);
  if (missing != nullptr) {
    dlclose(*libpq_handle);
    dlclose(*backend_handle);
    return fail(ErrorKind::unavailable, "database_unavailable",
                fmt::format("{} has no {}: it is not libpq", missing_in, missing));
  }
  library.factory = factory();
  return library;
}

Result<const PostgresLibrary *> postgres_library() {
  const auto &loaded = loaded_library();
  if (!loaded) return tl::unexpected(loaded.error());
  return &*loaded;
}

std::string postgres_sqlstate(const soci::soci_error &error) {
  // By the type's name first, which loads nothing: an SQLite process never
  // loads the backend to look at its errors. An error of this type exists
  // only once the backend is loaded.
  if (std::strcmp(typeid(error).name(), k_postgres_error_type) != 0) return {};
  const auto &loaded = loaded_library();
  if (!loaded) return {};
  return loaded->error_sqlstate(static_cast<const soci::postgresql_soci_error *>(&error));
}

} // namespace usher::store
