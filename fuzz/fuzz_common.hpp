// What every fuzz target does with a parser's outcome: a value is serialised
// as the response would be, an error becomes its problem+json body. Either
// way the bytes the client would get are built, so a detail or field that
// cannot be serialised (say, cut UTF-8) is found too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include <usher/http/problem.hpp>
#include <usher/util/error.hpp>

namespace usher::fuzz {

// The bytes as the HTTP layer parses a body (http/api.cpp, with_json_body).
inline nlohmann::json parse_body(const std::uint8_t *data, std::size_t size) {
  return nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
}

inline std::string_view as_text(const std::uint8_t *data, std::size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

// The problem body of a failed parse; a value is handed to `on_value`.
template <typename T, typename OnValue>
void answer(const Result<T> &result, OnValue on_value) {
  if (result) {
    on_value(*result);
  } else {
    const std::string body = http::problem_body(result.error());
    if (body.empty()) __builtin_trap();
  }
}

} // namespace usher::fuzz
