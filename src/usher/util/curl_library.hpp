// libcurl, loaded by its first user. usher does not link libcurl: a process
// that sends no HTTP (no Telegram alerts, no outbound webhooks) never maps it
// nor the libraries it pulls in (gnutls, nghttp2, ssh2, rtmp, krb5, ldap, …),
// about 3 MiB of an idle serve's resident pages (docs/benchmarks.md,
// "Memory"). curl.h still gives the types and constants; the functions come
// from dlopen("libcurl.so.4") and dlsym.
#pragma once

#include <curl/curl.h>

#include <usher/util/error.hpp>

namespace usher::curl {

// The libcurl functions usher calls, as curl.h declares them. easy_setopt and
// easy_getinfo are variadic, like curl_easy_setopt: pass exactly the type
// the option documents (long, a pointer, curl_off_t).
struct Library {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...) = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...) = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
};

// The soname of the libcurl whose headers usher is built with (Debian's
// libcurl4).
constexpr const char *k_soname = "libcurl.so.4";

// Loads the shared library `file` and resolves every function of Library in
// it, without initialising it; an `unavailable` error names what is missing.
// A library that loaded but lacks a function is unloaded again. The process
// uses library(); this is the part the unit tests can point elsewhere.
Result<Library> open_library(const char *file);

// libcurl (k_soname), loaded, resolved and initialised (curl_global_init) by
// the first call, from any thread; every later call gives the same answer,
// a failure included, which is logged once as an error. Never unloaded.
Result<const Library *> library();

} // namespace usher::curl
