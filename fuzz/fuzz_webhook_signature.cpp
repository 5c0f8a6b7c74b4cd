// Fuzzes the webhook signature headers (webhooks/signature.hpp): the input's
// first line is a Stripe-Signature / Usher-Signature or X-Signature value,
// the rest the raw body. Each parser must give a value within its limits or
// a typed refusal; verify() must accept only what a secret signed;
// the body is then read as each provider's event (webhooks/event.hpp).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <usher/util/clock.hpp>
#include <usher/webhooks/event.hpp>
#include <usher/webhooks/signature.hpp>

#include "fuzz_common.hpp"

namespace {

// A wall clock fixed at 2026-11-28T12:00:00Z: runs are reproducible.
class FixedClock final : public usher::clock::Clock {
public:
  std::chrono::steady_clock::time_point now() const override { return {}; }
  usher::clock::WallTime wall() const override {
    return usher::clock::WallTime(std::chrono::seconds(1'795'867'200));
  }
};

// True when one of `secrets` signed `body` as `header` claims.
bool signed_by_a_secret(usher::webhooks::Provider provider, std::string_view header,
                        std::string_view body, const std::vector<std::string> &secrets) {
  using namespace usher::webhooks;
  for (const auto &secret : secrets) {
    if (provider == Provider::lemonsqueezy) {
      const auto digest = parse_hex_digest(header);
      if (digest && *digest == hmac_sha256(secret, body)) return true;
    } else if (const auto parsed = parse_timestamped(header)) {
      const std::string payload = parsed->timestamp_text + "." + std::string(body);
      for (const auto &v1 : parsed->v1) {
        if (v1 == hmac_sha256(secret, payload)) return true;
      }
    }
  }
  return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  using webhooks::Verdict;
  const auto input = fuzz::as_text(data, size);
  const auto newline = input.find('\n');
  const auto header = input.substr(0, newline);
  const auto body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  if (const auto parsed = webhooks::parse_timestamped(header)) {
    if (parsed->v1.empty() || parsed->v1.size() > webhooks::k_max_v1) __builtin_trap();
    for (const auto &digest : parsed->v1) {
      if (digest.size() != webhooks::k_digest) __builtin_trap();
    }
    if (parsed->timestamp < 0 || parsed->timestamp_text.empty()) __builtin_trap();
  } else if (parsed.error() == Verdict::ok) {
    __builtin_trap();
  }
  if (const auto digest = webhooks::parse_hex_digest(header)) {
    if (digest->size() != webhooks::k_digest) __builtin_trap();
  }

  // The seeds are signed with "whsec_fuzz" at the fixed clock's time, so the
  // accepting path is reached too; whenever verify() accepts, one secret's
  // HMAC must be among the header's digests (checked independently here).
  const FixedClock clock;
  const webhooks::VerifyOptions options{{"whsec_fuzz", "second"}, std::chrono::seconds(300)};
  for (const auto provider : {webhooks::Provider::stripe, webhooks::Provider::lemonsqueezy,
                              webhooks::Provider::generic}) {
    if (webhooks::verify(provider, header, body, options, clock) == Verdict::ok &&
        !signed_by_a_secret(provider, header, body, options.secrets)) {
      __builtin_trap();
    }
    fuzz::answer(webhooks::parse_event(provider, body), [&](const webhooks::Event &event) {
      if (const auto *purchase = std::get_if<webhooks::Purchase>(&event)) {
        if (purchase->event_id.empty() || purchase->event_id.size() > webhooks::k_max_event_id ||
            purchase->user.email.empty() || purchase->user.full_name.empty()) {
          __builtin_trap();
        }
        if (webhooks::intake_key(provider, *purchase).empty()) __builtin_trap();
      }
    });
  }
  return 0;
}
