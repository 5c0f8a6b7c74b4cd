// Buyer activation (set a password with a single-use token) and login
// (password in, session token out). Plain functions over a session: the
// HTTP layer decides which thread runs them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/util/clock.hpp>
#include <usher/util/error.hpp>

namespace usher::auth {

struct ActivationRequest {
  std::string token;
  std::string password;
};

struct LoginRequest {
  std::string email_normalized;
  std::string password;
};

// Validates an activation body: exactly {"token","password"}, password 8 to
// 128 characters without control characters.
Result<ActivationRequest> parse_activation(const nlohmann::json &body);

// Validates a login body: exactly {"email","password"}.
Result<LoginRequest> parse_login(const nlohmann::json &body);

// The account an unused, unexpired activation token belongs to.
Result<std::int64_t> find_activation(soci::session &sql, const std::string &token_hash);

// Uses the token and stores `password_hash`, in the caller's transaction.
// Fails with activation_token_invalid when the token was used meanwhile.
Result<std::int64_t> activate(soci::session &sql, const std::string &token_hash,
                              const std::string &password_hash);

struct LoginAccount {
  std::int64_t account_id = 0;
  std::optional<std::string> password_hash; // unset until activated
};

std::optional<LoginAccount> find_login(soci::session &sql, const std::string &email_normalized);

struct Session {
  std::string token; // clear: returned once, never stored or logged
  std::string expires_at;
};

// Creates a session for `account_id` inside the caller's transaction.
Session create_session(soci::session &sql, std::int64_t account_id, std::chrono::hours ttl);

struct IssuedSecret {
  std::string token; // clear: returned once, never stored or logged
  std::string hash;  // what is stored
};

// A new activation token issued at `now` (provisioning stores its digest):
// "usher_a_", the issue time as 14 hex digits of microseconds, then 32
// random bytes in base64url. The time is not secret; it makes digests of
// tokens issued one after the other sort one after the other.
IssuedSecret issue_activation_token(clock::WallTime now);

// What is stored for an activation token and looked up by: for a token of
// the shape above, its 14 time digits, ".", and the SHA-256 of the whole
// token in hex; for any other text (the tokens issued before that shape),
// the SHA-256 alone. The time first keeps the unique index on the digest
// appending near its right edge instead of writing a random leaf per new
// customer (docs/benchmarks.md, "Activation digests in issue order").
std::string activation_digest(std::string_view token);

struct ReissuedActivation {
  std::int64_t account_id = 0;
  std::string email;
  std::string token; // clear: returned once, never stored or logged
  std::string expires_at;
};

// Resend (SPEC §3 POST /api/v1/users/{id}/activation, `usher users resend`):
// a new activation token for an account not yet activated, expiring `ttl`
// after `now`, in the caller's write transaction. Every earlier unused token
// stops working at `now` (its row stays: provisioning inserts a job's token
// only if absent, so a re-run job cannot bring it back). Fails with
// user_not_found or already_activated (conflict).
Result<ReissuedActivation> reissue_activation(soci::session &sql, std::int64_t account_id,
                                              clock::WallTime now, std::chrono::hours ttl);

} // namespace usher::auth
