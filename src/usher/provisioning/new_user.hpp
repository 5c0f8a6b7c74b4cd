// A sales manager's request for a new customer account, validated and
// normalised (SPEC §3 limits). Knows nothing of HTTP.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <usher/util/error.hpp>

namespace usher::provisioning {

struct NewUser {
  std::string email; // normalised: trimmed and lower-cased
  std::string full_name;
  std::optional<std::string> phone;
  std::optional<std::string> product;

  nlohmann::json to_json() const;
};

inline constexpr std::size_t k_max_email = 254;
inline constexpr std::size_t k_max_full_name = 200;
inline constexpr std::size_t k_max_phone = 32;
inline constexpr std::size_t k_max_product = 100;

// `raw` trimmed, checked as an address (ASCII local part and domain, one
// '@', a dotted domain) and lower-cased; the error names the field "email".
Result<std::string> normalise_email(std::string_view raw);

// Validates a POST /api/v1/users body.
Result<NewUser> parse_new_user(const nlohmann::json &body);

} // namespace usher::provisioning
