// libcurl through dlopen and dlsym (see curl_library.hpp).
#include <usher/util/curl_library.hpp>

#include <string>

#include <dlfcn.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/util/shared_library.hpp>

namespace usher::curl {

Result<Library> open_library(const char *file) {
  auto opened = shared_library::open(file, "http_client_unavailable");
  if (!opened) return tl::unexpected(opened.error());
  void *handle = *opened;
  Library library;
  const char *missing = nullptr;
  const auto need = [&](const char *name, auto &function) {
    if (missing == nullptr && !shared_library::resolve(handle, name, function)) missing = name;
  };
  need("curl_global_init", library.global_init);
  need("curl_easy_init", library.easy_init);
  need("curl_easy_cleanup", library.easy_cleanup);
  need("curl_easy_setopt", library.easy_setopt);
  need("curl_easy_perform", library.easy_perform);
  need("curl_easy_getinfo", library.easy_getinfo);
  need("curl_easy_reset", library.easy_reset);
  need("curl_easy_strerror", library.easy_strerror);
  need("curl_slist_append", library.slist_append);
  need("curl_slist_free_all", library.slist_free_all);
  if (missing != nullptr) {
    dlclose(handle);
    return fail(ErrorKind::unavailable, "http_client_unavailable",
                fmt::format("{} has no {}: it is not libcurl", file, missing));
  }
  return library;
}

Result<const Library *> library() {
  // One per process, like dlopen's handles and curl_global_init's state: the
  // static is initialised once, thread-safely, by the first caller. libcurl
  // 7.84 and later initialise thread-safely too (Debian 12 ships 7.88,
  // "threadsafe" in its features).
  static const Result<Library> k_loaded = []() -> Result<Library> {
    auto opened = open_library(k_soname);
    if (opened) {
      const CURLcode code = opened->global_init(CURL_GLOBAL_DEFAULT);
      if (code != CURLE_OK) {
        opened =
            fail(ErrorKind::unavailable, "http_client_unavailable",
                 fmt::format("{} failed to initialise: {}", k_soname, opened->easy_strerror(code)));
      }
    }
    if (!opened) {
      spdlog::error("HTTP client unavailable, no Telegram alert or outbound webhook can be "
                    "sent: {}",
                    opened.error().detail);
    }
    return opened;
  }();
  if (!k_loaded) return tl::unexpected(k_loaded.error());
  return &*k_loaded;
}

} // namespace usher::curl
