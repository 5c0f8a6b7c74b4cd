// Random secrets, SHA-256 digests and argon2id password hashes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace usher::crypto {

// Initialises libsodium; call once at start-up before any other function here.
void initialise();

// A new random secret of `bytes` random bytes, rendered URL-safe (base64url,
// no padding), prefixed with `prefix`.
std::string random_token(std::string_view prefix, std::size_t bytes = 32);

// Lower-case hex SHA-256 of `data`. Tokens are stored only as this digest.
std::string sha256_hex(std::string_view data);

// Cost of argon2id: memory in KiB and iterations.
struct PasswordCost {
  std::size_t memory_kib = 19 * 1024;
  unsigned long long iterations = 2;
};

// argon2id hash in the PHC string format; throws std::runtime_error when the
// system is out of memory.
std::string hash_password(std::string_view password, PasswordCost cost);

// True when `password` matches `phc_hash`.
bool verify_password(std::string_view password, const std::string &phc_hash);

} // namespace usher::crypto
