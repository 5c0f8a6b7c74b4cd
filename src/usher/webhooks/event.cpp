#include <usher/webhooks/event.hpp>

#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <usher/util/json_fields.hpp>

namespace usher::webhooks {
namespace {

using nlohmann::json;

constexpr std::size_t k_max_event_type = 100;

tl::unexpected<Error> invalid(std::string field, std::string detail) {
  return fail(ErrorKind::invalid, "webhook_event_invalid", std::move(detail), std::move(field));
}

// The value at `path` (object keys), or nullptr when any step is missing.
const json *at(const json &root, std::initializer_list<const char *> path) {
  const json *node = &root;
  for (const char *key : path) {
    if (!node->is_object()) return nullptr;
    const auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::string text_at(const json &root, std::initializer_list<const char *> path) {
  const json *node = at(root, path);
  return node != nullptr && node->is_string() ? node->get<std::string>() : std::string();
}

// An event id: a non-empty string (or Lemon Squeezy's id as a whole number)
// of printable ASCII.
Result<std::string> event_id(const json &root, std::initializer_list<const char *> path,
                             const char *field) {
  const json *node = at(root, path);
  std::string id;
  if (node != nullptr && node->is_string()) {
    id = node->get<std::string>();
  } else if (node != nullptr && node->is_number_unsigned()) {
    id = std::to_string(node->get<std::uint64_t>());
  } else {
    return invalid(field, fmt::format("{} must be a string", field));
  }
  if (id.empty() || id.size() > k_max_event_id) {
    return invalid(field, fmt::format("{} must be 1 to {} characters", field, k_max_event_id));
  }
  for (const char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return invalid(field, fmt::format("{} must be printable ASCII", field));
    }
  }
  return id;
}

// The buyer: email required, name and product optional.
Result<provisioning::NewUser> buyer(const json &root, std::initializer_list<const char *> email,
                                    const char *email_field,
                                    std::initializer_list<const char *> name,
                                    const char *name_field,
                                    std::initializer_list<const char *> product,
                                    const char *product_field) {
  provisioning::NewUser user;
  const json *email_node = at(root, email);
  if (email_node == nullptr || !email_node->is_string()) {
    return invalid(email_field, fmt::format("{} must be a string", email_field));
  }
  auto normalised = provisioning::normalise_email(email_node->get<std::string>());
  if (!normalised) return invalid(email_field, normalised.error().detail);
  user.email = std::move(*normalised);

  std::string full_name = text_at(root, name);
  if (full_name.empty()) full_name = user.email.substr(0, user.email.find('@'));
  if (auto err = json_fields::check_text(full_name, name_field, 1, provisioning::k_max_full_name)) {
    return invalid(name_field, err->detail);
  }
  user.full_name = std::move(full_name);

  const std::string product_name = text_at(root, product);
  if (!product_name.empty()) {
    if (auto err =
            json_fields::check_text(product_name, product_field, 1, provisioning::k_max_product)) {
      return invalid(product_field, err->detail);
    }
    user.product = product_name;
  }
  return user;
}

Ignored ignored(std::string type) {
  if (type.size() > k_max_event_type) type.resize(k_max_event_type);
  return Ignored{std::move(type)};
}

Result<Event> stripe_event(const json &body) {
  const std::string type = text_at(body, {"type"});
  if (type != "checkout.session.completed") return ignored(type);
  auto id = event_id(body, {"id"}, "id");
  if (!id) return tl::unexpected(id.error());
  auto user = buyer(
      body, {"data", "object", "customer_details", "email"}, "data.object.customer_details.email",
      {"data", "object", "customer_details", "name"}, "data.object.customer_details.name",
      {"data", "object", "metadata", "product"}, "data.object.metadata.product");
  if (!user) return tl::unexpected(user.error());
  return Purchase{std::move(*id), std::move(*user)};
}

Result<Event> lemonsqueezy_event(const json &body) {
  const std::string type = text_at(body, {"meta", "event_name"});
  if (type != "order_created") return ignored(type);
  auto id = event_id(body, {"data", "id"}, "data.id");
  if (!id) return tl::unexpected(id.error());
  auto user = buyer(body, {"data", "attributes", "user_email"}, "data.attributes.user_email",
                    {"data", "attributes", "user_name"}, "data.attributes.user_name",
                    {"data", "attributes", "first_order_item", "product_name"},
                    "data.attributes.first_order_item.product_name");
  if (!user) return tl::unexpected(user.error());
  return Purchase{std::move(*id), std::move(*user)};
}

Result<Event> generic_event(const json &body) {
  if (at(body, {"email"}) == nullptr) return ignored(text_at(body, {"type"}));
  auto id = event_id(body, {"id"}, "id");
  if (!id) return tl::unexpected(id.error());
  auto user = buyer(body, {"email"}, "email", {"full_name"}, "full_name", {"product"}, "product");
  if (!user) return tl::unexpected(user.error());
  return Purchase{std::move(*id), std::move(*user)};
}

} // namespace

std::string intake_key(Provider provider, const Purchase &purchase) {
  return fmt::format("webhook:{}:{}", provider_name(provider), purchase.event_id);
}

Result<Event> parse_event(Provider provider, std::string_view raw_body) {
  const json body = json::parse(raw_body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return fail(ErrorKind::invalid, "webhook_body_not_json", "the body must be a JSON object");
  }
  switch (provider) {
  case Provider::stripe: return stripe_event(body);
  case Provider::lemonsqueezy: return lemonsqueezy_event(body);
  case Provider::generic: return generic_event(body);
  }
  return generic_event(body);
}

} // namespace usher::webhooks
