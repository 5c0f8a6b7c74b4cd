// Expected failures as values: a small set of kinds plus a stable
// machine-readable code. util/ knows no protocol: the API maps the kinds to
// its status codes in one place (problem.cpp).
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace usher {

enum class ErrorKind {
  invalid,            // the input is wrong
  unauthenticated,    // no or bad credentials
  forbidden,          // authenticated, but this role may not do it
  not_found,          // no such thing
  method_not_allowed, // the thing exists, the operation does not
  conflict,           // the current state forbids it (exists already, in progress)
  unprocessable,      // understood, but contradicts what was sent before
  too_large,          // the input is larger than accepted
  unsupported_media,  // the input's format is not one accepted
  too_many_requests,  // throttled: try again later
  unavailable,        // a dependency is down or a queue is full
  timeout,            // a dependency did not answer in time
  internal,           // a bug
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
