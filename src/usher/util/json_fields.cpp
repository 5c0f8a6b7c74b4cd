#include <usher/util/json_fields.hpp>

#include <algorithm>

#include <fmt/format.h>

#include <usher/util/text.hpp>

namespace usher::json_fields {

Reader::Reader(const nlohmann::json &body, std::initializer_list<const char *> allowed)
    : m_body(body), m_allowed(allowed.begin(), allowed.end()) {}

std::optional<Error> Reader::check() const {
  if (!m_body.is_object()) {
    return Error{ErrorKind::invalid, "body_not_object", "the request body must be a JSON object",
                 ""};
  }
  for (const auto &[key, value] : m_body.items()) {
    if (std::find(m_allowed.begin(), m_allowed.end(), key) == m_allowed.end()) {
      // The name may be anything a client sent: show it only when printable.
      const bool printable = !text::has_control_character(key) && key.size() <= 64;
      return Error{ErrorKind::invalid, "unknown_field",
                   printable ? fmt::format("unknown field \"{}\"", key) : "unknown field",
                   printable ? key : "(unprintable)"};
    }
  }
  return std::nullopt;
}

std::optional<Error> check_text(const std::string &value, const char *field, std::size_t min,
                                std::size_t max) {
  const auto length = text::utf8_length(value);
  if (!length || text::has_control_character(value)) {
    return Error{ErrorKind::invalid, "field_invalid",
                 fmt::format("{} must not contain control characters", field), field};
  }
  if (*length < min || *length > max) {
    return Error{ErrorKind::invalid, "field_length",
                 min == max ? fmt::format("{} must be {} characters", field, min)
                            : fmt::format("{} must be {} to {} characters", field, min, max),
                 field};
  }
  return std::nullopt;
}

Result<std::string> Reader::required_text(const char *name, std::size_t min,
                                          std::size_t max) const {
  const auto it = m_body.find(name);
  if (it == m_body.end() || it->is_null()) {
    return fail(ErrorKind::invalid, "field_required", fmt::format("{} is required", name), name);
  }
  if (!it->is_string()) {
    return fail(ErrorKind::invalid, "field_type", fmt::format("{} must be a string", name), name);
  }
  const auto &value = it->get_ref<const std::string &>();
  if (auto err = check_text(value, name, min, max)) return tl::unexpected(*err);
  return value;
}

Result<std::optional<std::string>> Reader::optional_text(const char *name, std::size_t max) const {
  const auto it = m_body.find(name);
  if (it == m_body.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) {
    return fail(ErrorKind::invalid, "field_type", fmt::format("{} must be a string", name), name);
  }
  const auto &value = it->get_ref<const std::string &>();
  if (auto err = check_text(value, name, 0, max)) return tl::unexpected(*err);
  return std::optional<std::string>{value};
}

} // namespace usher::json_fields
