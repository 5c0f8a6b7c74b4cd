// POST /api/v1/auth/activate and POST /api/v1/auth/login: no API token; the
// buyer proves who they are with an activation token or a password. Every
// attempt is counted per client address and per account before any work,
// and argon2id runs on the HashingPool, never on the read pool.
#include <usher/http/api.hpp>

#include <spdlog/spdlog.h>

#include <usher/auth/activation.hpp>
#include <usher/util/crypto.hpp>

namespace usher::http {
namespace {

Error invalid_credentials() {
  return Error{ErrorKind::unauthenticated, "invalid_credentials", "wrong email or password", ""};
}

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

void Api::on_hashing(const Request &req, auth::HashingPool::Task task) {
  if (m_passwords.hashing.submit(std::move(task))) return;
  m_throttled.add({{"limit", "hashing_queue"}, {"address", client_address(req)}});
  reply_error(req, Error{ErrorKind::unavailable, "unavailable",
                         "too many password checks at once; retry shortly", ""});
}

void Api::activate(const Request &req) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_activation(body);
    if (!request) return reply_error(req, request.error());
    const std::string token_hash = crypto::sha256_hex(request->token);
    if (!admit_password_attempt(req, "activation:" + token_hash)) return;
    // Check the token before paying for argon2id.
    on_pool(req, [this, req, token_hash, password = request->password](soci::session &sql) {
      auto account = auth::find_activation(sql, token_hash);
      if (!account) return reply_error(req, account.error());
      on_hashing(req, [this, req, token_hash, password]() {
        std::string password_hash;
        try {
          password_hash = crypto::hash_password(password, m_deps.config.password_cost);
        } catch (const std::exception &e) {
          return reply_error(req, Error{ErrorKind::internal, "internal", e.what(), ""});
        }
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
  });
}

void Api::login(const Request &req) {
  with_json_body(req, {}, [this, req](const auth::Principal &, const nlohmann::json &body) {
    auto request = auth::parse_login(body);
    if (!request) return reply_error(req, request.error());
    if (!admit_password_attempt(req, "login:" + request->email_normalized)) return;
    on_pool(req, [this, req, request = std::move(*request)](soci::session &sql) {
      auto account = auth::find_login(sql, request.email_normalized);
      on_hashing(req, [this, req, password = request.password, account = std::move(account)]() {
        // Unknown, not yet activated and wrong password cost the same and answer the same.
        const bool known = account && account->password_hash;
        bool verified = false;
        try {
          verified = crypto::verify_password(password, known ? *account->password_hash
                                                             : m_deps.dummy_password_hash);
        } catch (const std::exception &e) {
          return reply_error(req, Error{ErrorKind::internal, "internal", e.what(), ""});
        }
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
  });
}

} // namespace usher::http
