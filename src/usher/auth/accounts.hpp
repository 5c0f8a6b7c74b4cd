// The buyer's side of an account for callers that must not hold a database
// session (the HTTP API): activation, login and resending the activation
// token. Reads run on the BlockingPool, argon2id on the HashingPool (never
// on the read pool) and writes through the WriteBatcher; each call
// completes once with a value of auth/activation.hpp or an Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include <usher/auth/activation.hpp>
#include <usher/auth/hashing_pool.hpp>
#include <usher/store/async.hpp>
#include <usher/util/crypto.hpp>

namespace usher::auth {

struct AccountSettings {
  std::chrono::hours activation_ttl{24 * 7}; // of a resent activation token
  std::chrono::hours session_ttl{24};
  crypto::PasswordCost password_cost;
};

// The code of the error activate and login complete with when the hashing
// queue is full (unavailable): the caller may count a throttled attempt.
inline constexpr const char *k_hashing_busy = "hashing_busy";

class Accounts {
public:
  Accounts(store::BlockingPool &pool, store::WriteBatcher &writer, HashingPool &hashing,
           AccountSettings settings)
      : m_pool(pool), m_writer(writer), m_hashing(hashing), m_settings(settings) {}

  // Sets the password of the account whose unused, unexpired activation
  // token has digest `token_hash` (the token is checked before argon2id is
  // paid for); completes with the account id.
  void activate(std::string token_hash, std::string password, store::Completion<std::int64_t> done);
  // A new session for the account of `email_normalized` when `password` is
  // its password. Unknown, not yet activated and wrong password cost the
  // same and fail the same (invalid_credentials).
  void login(std::string email_normalized, std::string password, store::Completion<Session> done);
  // A new activation token, the earlier ones revoked (auth::reissue_activation).
  void reissue_activation(std::int64_t account_id, store::Completion<ReissuedActivation> done);

private:
  // Runs `task` on the hashing pool; completes `done` with k_hashing_busy
  // when its queue is full.
  template <typename T>
  void on_hashing(const store::Completion<T> &done, HashingPool::Task task);
  // Verified when a login names no account (or one not yet activated), so
  // that it costs what a wrong password costs. Hashed by the first login,
  // whichever account it names, not at start-up: argon2id's memory
  // (password_cost, 19 MiB by default) would otherwise be the peak RSS of
  // every process, logins or not (docs/benchmarks.md, "Memory"). Throws as
  // crypto::hash_password does; the next login tries again.
  const std::string &dummy_password_hash();

  store::BlockingPool &m_pool;
  store::WriteBatcher &m_writer;
  HashingPool &m_hashing;
  AccountSettings m_settings;
  std::once_flag m_dummy_once;
  std::string m_dummy_hash;
};

} // namespace usher::auth
