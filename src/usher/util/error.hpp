// Expected failures as values: a small set of kinds (mapped to HTTP status in
// exactly one place, http/problem.cpp) plus a stable machine-readable code.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace usher {

enum class ErrorKind {
  invalid,            // the input is wrong: 400
  unauthenticated,    // no or bad credentials: 401
  forbidden,          // authenticated, wrong role: 403
  not_found,          // 404
  method_not_allowed, // 405
  conflict,           // 409
  unprocessable,      // 422
  too_large,          // 413
  unsupported_media,  // 415
  too_many_requests,  // throttled: 429
  unavailable,        // a dependency is down or a queue is full: 503
  timeout,            // a dependency did not answer in time: 503
  internal,           // a bug: 500
};

// `code` is stable and documented (docs/api.md); `detail` is for humans;
// `field` names the offending input field, when there is one.
struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string code;
  std::string detail;
  std::string field;
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(ErrorKind kind, std::string code, std::string detail,
                                  std::string field = {}) {
  return tl::unexpected<Error>(Error{kind, std::move(code), std::move(detail), std::move(field)});
}

} // namespace usher
