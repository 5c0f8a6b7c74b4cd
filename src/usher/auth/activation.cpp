#include <usher/auth/activation.hpp>

#include <algorithm>

#include <fmt/format.h>

#include <usher/provisioning/new_user.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/json_fields.hpp>

namespace usher::auth {
namespace {

constexpr const char *k_find_activation =
    "SELECT account_id FROM activation_tokens "
    "WHERE token_hash = :hash AND used_at IS NULL AND expires_at > :now";

constexpr const char *k_use_activation =
    "UPDATE activation_tokens SET used_at = :now "
    "WHERE token_hash = :hash AND used_at IS NULL AND expires_at > :now2 RETURNING account_id";

constexpr const char *k_set_password =
    "UPDATE accounts SET password_hash = :hash, activated_at = :now WHERE id = :id";

constexpr const char *k_find_login =
    "SELECT id, password_hash FROM accounts WHERE email_normalized = :email";

constexpr const char *k_insert_session =
    "INSERT INTO sessions (account_id, token_hash, expires_at, created_at) "
    "VALUES (:account_id, :hash, :expires_at, :created_at)";

constexpr const char *k_account_state = "SELECT email, activated_at FROM accounts WHERE id = :id";

// Unused tokens that still work stop working now; used and expired ones
// keep their times.
constexpr const char *k_expire_unused =
    "UPDATE activation_tokens SET expires_at = :now "
    "WHERE account_id = :id AND used_at IS NULL AND expires_at > :now2";

constexpr const char *k_insert_activation =
    "INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at) "
    "VALUES (:account_id, :hash, :expires_at, :created_at)";

constexpr std::string_view k_activation_prefix = "usher_a_";
// Microseconds since 1970 in 14 hex digits: enough until the year 4254.
constexpr std::size_t k_time_digits = 14;
// The prefix, the time, and 32 random bytes as 43 base64url characters.
constexpr std::size_t k_ordered_token_size = k_activation_prefix.size() + k_time_digits + 43;

constexpr std::size_t k_min_password = 8;
constexpr std::size_t k_max_password = 128;

tl::unexpected<Error> invalid_activation() {
  return fail(ErrorKind::invalid, "activation_token_invalid",
              "the activation token is unknown, expired or already used", "token");
}

} // namespace

Result<ActivationRequest> parse_activation(const nlohmann::json &body) {
  json_fields::Reader reader(body, {"token", "password"});
  if (auto err = reader.check()) return tl::unexpected(*err);
  ActivationRequest req;
  auto token = reader.required_text("token", 1, 512);
  if (!token) return tl::unexpected(token.error());
  req.token = *token;
  auto password = reader.required_text("password", k_min_password, k_max_password);
  if (!password) return tl::unexpected(password.error());
  req.password = *password;
  return req;
}

Result<LoginRequest> parse_login(const nlohmann::json &body) {
  json_fields::Reader reader(body, {"email", "password"});
  if (auto err = reader.check()) return tl::unexpected(*err);
  auto email = reader.required_text("email", 1, 1024);
  if (!email) return tl::unexpected(email.error());
  auto normalized = provisioning::normalise_email(*email);
  if (!normalized) return tl::unexpected(normalized.error());
  // Any length is accepted here: a wrong password is a 401, never a 400.
  auto password = reader.required_text("password", 0, 4096);
  if (!password) return tl::unexpected(password.error());
  return LoginRequest{*normalized, *password};
}

Result<std::int64_t> find_activation(soci::session &sql, const std::string &token_hash) {
  const std::string now = clock::now_iso8601();
  long long account_id = 0;
  sql << k_find_activation, soci::use(token_hash), soci::use(now), soci::into(account_id);
  if (!sql.got_data()) return invalid_activation();
  return account_id;
}

Result<std::int64_t> activate(soci::session &sql, const std::string &token_hash,
                              const std::string &password_hash) {
  const std::string now = clock::now_iso8601();
  long long account_id = 0;
  sql << k_use_activation, soci::use(now), soci::use(token_hash), soci::use(now),
      soci::into(account_id);
  if (!sql.got_data()) return invalid_activation();
  sql << k_set_password, soci::use(password_hash), soci::use(now), soci::use(account_id);
  return account_id;
}

std::optional<LoginAccount> find_login(soci::session &sql, const std::string &email_normalized) {
  long long id = 0;
  std::string hash;
  soci::indicator hash_ind = soci::i_null;
  sql << k_find_login, soci::use(email_normalized), soci::into(id), soci::into(hash, hash_ind);
  if (!sql.got_data()) return std::nullopt;
  LoginAccount account;
  account.account_id = id;
  if (hash_ind == soci::i_ok) account.password_hash = hash;
  return account;
}

Session create_session(soci::session &sql, std::int64_t account_id, std::chrono::hours ttl) {
  Session session;
  session.token = crypto::random_token("usher_s_");
  session.expires_at = clock::iso8601(std::chrono::system_clock::now() + ttl);
  const std::string hash = crypto::sha256_hex(session.token);
  const std::string now = clock::now_iso8601();
  const long long id = account_id;
  sql << k_insert_session, soci::use(id), soci::use(hash), soci::use(session.expires_at),
      soci::use(now);
  return session;
}

IssuedSecret issue_activation_token(clock::WallTime now) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  IssuedSecret secret;
  secret.token = crypto::random_token(fmt::format(
      "{}{:0{}x}", k_activation_prefix, std::max<std::int64_t>(micros, 0), k_time_digits));
  secret.hash = activation_digest(secret.token);
  return secret;
}

std::string activation_digest(std::string_view token) {
  const bool ordered =
      token.size() == k_ordered_token_size && token.starts_with(k_activation_prefix) &&
      std::all_of(token.begin() + k_activation_prefix.size(),
                  token.begin() + k_activation_prefix.size() + k_time_digits,
                  [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  if (!ordered) return crypto::sha256_hex(token);
  std::string digest(token.substr(k_activation_prefix.size(), k_time_digits));
  digest += '.';
  digest += crypto::sha256_hex(token);
  return digest;
}

Result<ReissuedActivation> reissue_activation(soci::session &sql, std::int64_t account_id,
                                              clock::WallTime now, std::chrono::hours ttl) {
  const long long id = account_id;
  std::string email;
  std::string activated_at;
  soci::indicator activated = soci::i_null;
  sql << k_account_state, soci::use(id), soci::into(email), soci::into(activated_at, activated);
  if (!sql.got_data()) {
    return fail(ErrorKind::not_found, "user_not_found", "no account with that email or id", "");
  }
  if (activated == soci::i_ok) {
    return fail(ErrorKind::conflict, "already_activated",
                "the account was activated at " + activated_at + "; it needs no activation token",
                "");
  }
  const std::string now_text = clock::iso8601(now);
  sql << k_expire_unused, soci::use(now_text), soci::use(id), soci::use(now_text);
  ReissuedActivation reissued{account_id, email, {}, clock::iso8601(now + ttl)};
  auto secret = issue_activation_token(now);
  sql << k_insert_activation, soci::use(id), soci::use(secret.hash), soci::use(reissued.expires_at),
      soci::use(now_text);
  reissued.token = std::move(secret.token);
  return reissued;
}

} // namespace usher::auth
