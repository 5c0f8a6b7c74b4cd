// Strict reading of a JSON request object: unknown fields, wrong types,
// lengths and control characters are errors that name the field.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/util/error.hpp>

namespace usher::json_fields {

class Reader {
public:
  Reader(const nlohmann::json &body, std::initializer_list<const char *> allowed);

  // The body is an object and holds only allowed fields.
  std::optional<Error> check() const;

  // A string field of `min`..`max` code points without control characters.
  Result<std::string> required_text(const char *name, std::size_t min, std::size_t max) const;

  // Like required_text, but absent or null gives nullopt.
  Result<std::optional<std::string>> optional_text(const char *name, std::size_t max) const;

private:
  const nlohmann::json &m_body;
  std::vector<std::string> m_allowed;
};

// Checks a text value: valid UTF-8, no control characters, `min`..`max`
// code points; the error names `field`.
std::optional<Error> check_text(const std::string &value, const char *field, std::size_t min,
                                std::size_t max);

} // namespace usher::json_fields
