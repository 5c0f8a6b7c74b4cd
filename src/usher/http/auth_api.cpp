// POST /api/v1/auth/activate and POST /api/v1/auth/login: no API token; the
// buyer proves who they are with an activation token or a password. Every
// attempt is counted per client address and per account before any work;
// then auth::Accounts checks it (argon2id on the HashingPool, never on the
// read pool). A full hashing queue is a throttled attempt too.
#include <usher/http/api.hpp>

#include <spdlog/spdlog.h>

#include <usher/auth/accounts.hpp>
#include <usher/auth/activation.hpp>

namespace usher::http {
namespace {

std::string client_address(const Request &req) { return req->remote_address; }

} // namespace

bool Api::admit_password_attempt(const Request &req, const std::string &account_key) {
  const std::string address = client_address(req);
  const char *limit = "address";
  auto wait = m_passwords.addresses.attempt(address);
  if (!wait) {
    limit = "account";
    wait = m_passwords.accounts.attempt(account_key);
  }
  if (!wait) return true;
  // The same answer whether the account exists or not.
  m_throttled.add({{"limit", limit}, {"address", address}});
  auto response = problem_response(Error{ErrorKind::too_many_requests, "too_many_attempts",
                                         "too many password attempts; retry later", ""});
  response.headers.emplace_back("Retry-After", std::to_string(auth::retry_after_seconds(*wait)));
  reply(req, std::move(response));
  return false;
}

template <typename T, typename Serialise>
store::Completion<T> Api::answer_password_attempt(const Request &req, Serialise serialise) {
  return [this, req, serialise = std::move(serialise)](Result<T> result) {
    if (!result && result.error().code == auth::k_hashing_busy) {
      m_throttled.add({{"limit", "hashing_queue"}, {"address", client_address(req)}});
      result.error().code = "unavailable";
    }
    if (!result) return reply_error(req, result.error());
    reply(req, serialise(*result));
  };
}

void Api::activate(const Request &req) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_activation(body);
    if (!request) return reply_error(req, request.error());
    std::string token_hash = auth::activation_digest(request->token);
    if (!admit_password_attempt(req, "activation:" + token_hash)) return;
    m_deps.services.accounts.activate(
        std::move(token_hash), std::move(request->password),
        answer_password_attempt<std::int64_t>(req, [](std::int64_t user_id) {
          return json_response(200, {{"status", "activated"}, {"user_id", user_id}});
        }));
  });
}

void Api::login(const Request &req) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_login(body);
    if (!request) return reply_error(req, request.error());
    if (!admit_password_attempt(req, "login:" + request->email_normalized)) return;
    m_deps.services.accounts.login(
        std::move(request->email_normalized), std::move(request->password),
        answer_password_attempt<auth::Session>(req, [](const auth::Session &session) {
          return json_response(
              200, {{"session_token", session.token}, {"expires_at", session.expires_at}});
        }));
  });
}

} // namespace usher::http
