// Text helpers with no dependencies on the rest of usher.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace usher::text {

// `s` without leading and trailing ASCII spaces (space and tab).
std::string_view trim(std::string_view s);

// `s` with ASCII letters lower-cased; other bytes unchanged.
std::string ascii_lower(std::string_view s);

// Number of code points in `s`, or nullopt when `s` is not valid UTF-8.
std::optional<std::size_t> utf8_length(std::string_view s);

// True when `s` (valid UTF-8) holds a C0 or C1 control character or DEL.
bool has_control_character(std::string_view s);

// True when `a` and `b` are equal ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b);

// Lower-case hexadecimal rendering of `bytes`.
std::string to_hex(std::string_view bytes);

} // namespace usher::text
