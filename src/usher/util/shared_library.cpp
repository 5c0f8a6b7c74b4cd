#include <usher/util/shared_library.hpp>

#include <fmt/format.h>

namespace usher::shared_library {

Result<void *> open(const char *file, const char *code) {
  void *handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) return handle;
  // glibc keeps dlerror's message per thread.
  const char *why = dlerror(); // NOLINT(concurrency-mt-unsafe)
  return fail(ErrorKind::unavailable, code,
              fmt::format("cannot load {}: {}", file, why != nullptr ? why : "unknown error"));
}

} // namespace usher::shared_library
