// Errors on the wire: RFC 9457 problem+json, and the one mapping from
// ErrorKind to HTTP status.
#pragma once

#include <string>

#include <usher/util/error.hpp>

namespace usher::http {

int status_for(ErrorKind kind);
const char *reason_phrase(int status);

// {"type","title","status","detail","code"[,"field"]} for `error`.
std::string problem_body(const Error &error);

} // namespace usher::http
