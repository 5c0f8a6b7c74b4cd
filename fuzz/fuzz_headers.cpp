// Fuzzes the request headers usher reads itself: Idempotency-Key
// (idempotency::parse_key), Authorization (auth::bearer_token, then the
// SHA-256 the token registry is keyed by, as http/api.cpp does) and
// X-Request-Id (request_id::accept: what is accepted is echoed in a response
// header and written to logs and alerts, so it must stay within its set).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <usher/auth/api_tokens.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/request_id.hpp>

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
  if (const auto id = request_id::accept(header)) {
    if (id->empty() || id->size() > request_id::k_max_length || *id != header) __builtin_trap();
    for (const char c : *id) {
      const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') ||
                           std::string_view("-_.:/+=@").find(c) != std::string_view::npos;
      if (!allowed) __builtin_trap();
    }
  }
  if (request_id::accept_or_generate(header).empty()) __builtin_trap();
  return 0;
}
