// Admin endpoints for API tokens: list them (never the token or its digest)
// and revoke one. A revoked token is refused here at once and on every other
// instance at its next registry refresh (within a second).
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/auth/token_admin.hpp>

namespace usher::http {
namespace {} // namespace

void Api::list_tokens(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    m_deps.services.tokens.list(
        answer<std::vector<auth::TokenInfo>>(req, [](const std::vector<auth::TokenInfo> &tokens) {
          nlohmann::json items = nlohmann::json::array();
          for (const auto &token : tokens) items.push_back(auth::to_json(token));
          return json_response(200, {{"tokens", items}});
        }));
  });
}

void Api::revoke_token(const Request &req) {
  const auto text = req->param("id");
  std::int64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id);
  authenticate(req, k_admin, [this, req, id](const auth::Principal &principal) {
    m_deps.services.tokens.revoke(
        id, principal.actor(), answer<auth::Revocation>(req, [](const auth::Revocation &revoked) {
          auto body = auth::to_json(revoked.token);
          body["changed"] = revoked.changed;
          return json_response(200, body);
        }));
  });
}

} // namespace usher::http
