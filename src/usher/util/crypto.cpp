#include <usher/util/crypto.hpp>

#include <stdexcept>
#include <vector>

#include <sodium.h>

#include <usher/util/text.hpp>

namespace usher::crypto {

void initialise() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string random_token(std::string_view prefix, std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  randombytes_buf(raw.data(), raw.size());
  std::string encoded(sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                      '\0');
  sodium_bin2base64(encoded.data(), encoded.size(), raw.data(), raw.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  encoded.resize(encoded.find('\0'));
  sodium_memzero(raw.data(), raw.size());
  return std::string(prefix) + encoded;
}

// libsodium's SHA-256, not OpenSSL's: OpenSSL's first call initialises its
// providers, about 2 MiB of resident pages that serve would otherwise carry
// only for this (docs/benchmarks.md, "Memory"); for a token or a request
// body it is as fast.
std::string sha256_hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char *>(data.data()), data.size());
  return text::to_hex(std::string_view(reinterpret_cast<const char *>(digest), sizeof digest));
}

std::string hash_password(std::string_view password, PasswordCost cost) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), cost.iterations,
                            cost.memory_kib * 1024, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::runtime_error("argon2id hashing ran out of memory");
  }
  return out;
}

bool verify_password(std::string_view password, const std::string &phc_hash) {
  return crypto_pwhash_str_verify(phc_hash.c_str(), password.data(), password.size()) == 0;
}

} // namespace usher::crypto
