// Admin endpoints for API tokens: list them (never the token or its digest)
// and revoke one. A revoked token is refused here at once and on every other
// instance at its next registry refresh (within a second).
#include <usher/http/api.hpp>

#include <charconv>

namespace usher::http {
namespace {

constexpr std::initializer_list<auth::Role> k_admin = {auth::Role::admin};

} // namespace

void Api::list_tokens(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    on_pool(req, [this, req](soci::session &sql) {
      nlohmann::json items = nlohmann::json::array();
      for (const auto &token : auth::list_tokens(sql)) items.push_back(auth::to_json(token));
      reply(req, json_response(200, {{"tokens", items}}));
    });
  });
}

void Api::revoke_token(const Request &req) {
  const auto text = req->param("id");
  std::int64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id);
  authenticate(req, k_admin, [this, req, id](const auth::Principal &principal) {
    auto revoked = std::make_shared<Result<auth::Revocation>>();
    on_writer(
        req,
        [revoked, id, actor = principal.actor(), instance = m_deps.config.instance](
            soci::session &sql) { *revoked = auth::revoke_token(sql, id, actor, instance); },
        [this, req, revoked, id](const Result<void> &written) {
          if (!written) return reply_error(req, written.error());
          if (!*revoked) return reply_error(req, revoked->error());
          m_deps.tokens.forget(id);
          auto answer = auth::to_json((*revoked)->token);
          answer["changed"] = (*revoked)->changed;
          reply(req, json_response(200, answer));
        });
  });
}

} // namespace usher::http
