// Fuzzes the other JSON bodies: POST /api/v1/auth/activate, POST
// /api/v1/auth/login and PUT /api/v1/admin/system/mode. Every input goes
// through all three validators, so one corpus of JSON documents serves them.
#include <cstddef>
#include <cstdint>

#include <usher/auth/activation.hpp>
#include <usher/system/system_mode.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  const auto body = fuzz::parse_body(data, size);
  if (body.is_discarded()) return 0;
  fuzz::answer(auth::parse_activation(body), [](const auth::ActivationRequest &request) {
    if (request.token.empty() || request.password.empty()) __builtin_trap();
  });
  fuzz::answer(auth::parse_login(body), [](const auth::LoginRequest &request) {
    if (request.email_normalized.empty()) __builtin_trap();
  });
  fuzz::answer(system::parse_mode_change(body), [](const system::ModeChange &change) {
    if (system::to_string(change.to) == nullptr) __builtin_trap();
  });
  return 0;
}
