// Request ids: one id that ties a request to what it caused (its job, the
// job's events and alerts, the timeline, the log lines). A caller may bring
// its own (the API's X-Request-Id header, docs/api.md); otherwise usher
// makes one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace usher::request_id {

// The longest id accepted from a caller.
inline constexpr std::size_t k_max_length = 128;

// `candidate` when it is a usable id: 1 to 128 characters, each a letter, a
// digit or one of "-_.:/+=@" (UUIDs, hex and base64 ids, trace ids); nullopt
// otherwise (too long, empty, spaces, quotes, control characters, non-ASCII).
std::optional<std::string> accept(std::string_view candidate);

// A new id: 32 lower-case hex digits (128 random bits).
std::string generate();

// The caller's id when it is usable, else a new one.
std::string accept_or_generate(std::optional<std::string_view> candidate);

} // namespace usher::request_id
