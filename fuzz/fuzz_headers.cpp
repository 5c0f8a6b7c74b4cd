// Fuzzes the request headers usher reads itself: Idempotency-Key
// (idempotency::parse_key) and Authorization (auth::bearer_token, then the
// SHA-256 the token registry is keyed by, as http/api.cpp does).
#include <cstddef>
#include <cstdint>
#include <string>

#include <usher/auth/api_tokens.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/util/crypto.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  const auto header = fuzz::as_text(data, size);
  fuzz::answer(idempotency::parse_key(header), [](const std::string &key) {
    if (key.empty() || key.size() > idempotency::k_max_key) __builtin_trap();
  });
  if (const auto token = auth::bearer_token(header)) {
    // The token is a view into the header: it must lie inside it.
    if (token->data() < header.data() ||
        token->data() + token->size() > header.data() + header.size()) {
      __builtin_trap();
    }
    if (crypto::sha256_hex(*token).size() != 64) __builtin_trap();
  }
  return 0;
}
