#include <usher/provisioning/new_user.hpp>

#include <limits>

#include <fmt/format.h>

#include <usher/util/json_fields.hpp>
#include <usher/util/text.hpp>

namespace usher::provisioning {
namespace {

tl::unexpected<Error> bad_email(const char *why) {
  return fail(ErrorKind::invalid, "email_invalid", fmt::format("email {}", why), "email");
}

bool is_atext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool valid_local_part(std::string_view local) {
  if (local.empty() || local.size() > 64) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  char previous = '\0';
  for (const char c : local) {
    if (c == '.' ? previous == '.' : !is_atext(c)) return false;
    previous = c;
  }
  return true;
}

bool valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  std::size_t labels = 0;
  std::size_t start = 0;
  while (start <= domain.size()) {
    auto dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const auto label = domain.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (const char c : label) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    ++labels;
    start = dot + 1;
    if (dot == domain.size()) break;
  }
  return labels >= 2;
}

} // namespace

nlohmann::json NewUser::to_json() const {
  nlohmann::json j = {{"email", email}, {"full_name", full_name}};
  if (phone) j["phone"] = *phone;
  if (product) j["product"] = *product;
  return j;
}

Result<std::string> normalise_email(std::string_view raw) {
  if (text::has_control_character(raw)) return bad_email("must not contain control characters");
  const auto trimmed = text::trim(raw);
  if (trimmed.empty()) return bad_email("must not be empty");
  if (trimmed.size() > k_max_email) {
    return fail(ErrorKind::invalid, "field_length",
                fmt::format("email must be at most {} characters", k_max_email), "email");
  }
  const auto at = trimmed.rfind('@');
  if (at == std::string_view::npos) return bad_email("must contain @");
  if (!valid_local_part(trimmed.substr(0, at)) || !valid_domain(trimmed.substr(at + 1))) {
    return bad_email("is not a valid address");
  }
  return text::ascii_lower(trimmed);
}

Result<NewUser> parse_new_user(const nlohmann::json &body) {
  json_fields::Reader reader(body, {"email", "full_name", "phone", "product"});
  if (auto err = reader.check()) return tl::unexpected(*err);

  NewUser user;
  auto email = reader.required_text("email", 0, std::numeric_limits<std::size_t>::max());
  if (!email) return tl::unexpected(email.error());
  auto normalized = normalise_email(*email);
  if (!normalized) return tl::unexpected(normalized.error());
  user.email = std::move(*normalized);

  // Raw values may carry surrounding spaces; the limits apply after trimming,
  // and errors always quote the limits of SPEC §3.
  auto full_name = reader.required_text("full_name", 0, std::numeric_limits<std::size_t>::max());
  if (!full_name) return tl::unexpected(full_name.error());
  user.full_name = std::string(text::trim(*full_name));
  if (auto err = json_fields::check_text(user.full_name, "full_name", 1, k_max_full_name)) {
    return tl::unexpected(*err);
  }

  auto phone = reader.optional_text("phone", k_max_phone);
  if (!phone) return tl::unexpected(phone.error());
  user.phone = std::move(*phone);

  auto product = reader.optional_text("product", k_max_product);
  if (!product) return tl::unexpected(product.error());
  user.product = std::move(*product);
  return user;
}

} // namespace usher::provisioning
