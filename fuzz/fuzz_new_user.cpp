// Fuzzes POST /api/v1/users: the JSON body through parse_new_user (and the
// Idempotency-Key fingerprint of it), plus the raw bytes through
// normalise_email as GET /api/v1/users?email= does.
#include <cstddef>
#include <cstdint>
#include <string>

#include <usher/idempotency/idempotency.hpp>
#include <usher/provisioning/new_user.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  fuzz::answer(provisioning::normalise_email(fuzz::as_text(data, size)),
               [](const std::string &email) {
                 // A normalised email is trimmed, lower-case ASCII.
                 for (const char c : email) {
                   if (c >= 'A' && c <= 'Z') __builtin_trap();
                 }
               });

  const auto body = fuzz::parse_body(data, size);
  if (body.is_discarded()) return 0;
  fuzz::answer(provisioning::parse_new_user(body), [&](const provisioning::NewUser &user) {
    const std::string echoed = user.to_json().dump();
    const std::string digest = idempotency::fingerprint(body);
    if (echoed.empty() || digest.empty()) __builtin_trap();
  });
  return 0;
}
