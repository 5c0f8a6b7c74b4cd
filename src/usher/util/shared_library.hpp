// Shared libraries loaded at run time, for the dependencies usher loads on
// first use instead of linking (util/curl_library.hpp,
// store/postgres_library.hpp).
#pragma once

#include <dlfcn.h>

#include <usher/util/error.hpp>

namespace usher::shared_library {

// dlopen(file) with RTLD_NOW (every symbol bound now, not at a first call)
// and RTLD_LOCAL (the library's symbols stay out of the global namespace, so
// they cannot change what other libraries bind to). On failure an
// `unavailable` error with `code`, naming the file and dlerror's reason.
Result<void *> open(const char *file, const char *code);

// Points `function` at the symbol `name` of `handle`; false when it has none.
template <typename Function>
bool resolve(void *handle, const char *name, Function &function) {
  void *symbol = dlsym(handle, name);
  if (symbol == nullptr) return false;
  // POSIX guarantees that dlsym's object pointer converts to a function pointer.
  function = reinterpret_cast<Function>(symbol);
  return true;
}

} // namespace usher::shared_library
