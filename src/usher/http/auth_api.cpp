// POST /api/v1/auth/activate and POST /api/v1/auth/login: no API token; the
// buyer proves who they are with an activation token or a password.
#include <usher/http/api.hpp>

#include <usher/auth/activation.hpp>
#include <usher/util/crypto.hpp>

namespace usher::http {
namespace {

Error invalid_credentials() {
  return Error{ErrorKind::unauthenticated, "invalid_credentials", "wrong email or password", ""};
}

} // namespace

void Api::activate(const Request &req, const restinio::router::route_params_t &) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_activation(body);
    if (!request) return reply_error(req, request.error());
    const std::string token_hash = crypto::sha256_hex(request->token);
    // Check the token before paying for argon2id, then hash off the I/O thread.
    on_pool(req, [this, req, token_hash, password = request->password](soci::session &sql) {
      auto account = auth::find_activation(sql, token_hash);
      if (!account) return reply_error(req, account.error());
      const std::string password_hash =
          crypto::hash_password(password, m_deps.config.password_cost);
      auto outcome = std::make_shared<Result<std::int64_t>>();
      on_writer(
          req,
          [outcome, token_hash, password_hash](soci::session &write_sql) {
            *outcome = auth::activate(write_sql, token_hash, password_hash);
            if (!*outcome) throw store::AbortWrite(outcome->error());
          },
          [this, req, outcome](const Result<void> &written) {
            if (!written) return reply_error(req, written.error());
            reply(req, json_response(200, {{"status", "activated"}, {"user_id", **outcome}}));
          });
    });
  });
}

void Api::login(const Request &req, const restinio::router::route_params_t &) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_login(body);
    if (!request) return reply_error(req, request.error());
    on_pool(req, [this, req, request = std::move(*request)](soci::session &sql) {
      const auto account = auth::find_login(sql, request.email_normalized);
      // Unknown, not yet activated and wrong password cost the same and answer the same.
      const bool known = account && account->password_hash;
      const bool verified = crypto::verify_password(
          request.password, known ? *account->password_hash : m_deps.dummy_password_hash);
      if (!known || !verified) return reply_error(req, invalid_credentials());
      auto session = std::make_shared<auth::Session>();
      const auto account_id = account->account_id;
      const auto ttl = m_deps.config.session_ttl;
      on_writer(
          req,
          [session, account_id, ttl](soci::session &write_sql) {
            *session = auth::create_session(write_sql, account_id, ttl);
          },
          [this, req, session](const Result<void> &written) {
            if (!written) return reply_error(req, written.error());
            reply(req, json_response(200, {{"session_token", session->token},
                                           {"expires_at", session->expires_at}}));
          });
    });
  });
}

} // namespace usher::http
