// Verification of inbound purchase webhooks' signatures (SPEC §9), over the
// raw body, before anything in it is parsed. Knows nothing of HTTP: the
// caller hands over the one header's value (or its absence) and the body;
// the typed Verdict says why a request is refused, so that the endpoint maps
// every refusal to one status without logging the payload.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include <usher/util/clock.hpp>

namespace usher::webhooks {

enum class Provider { stripe, lemonsqueezy, generic };

// "stripe", "lemonsqueezy", "generic" (the {provider} path segment); nullopt otherwise.
std::optional<Provider> parse_provider(std::string_view name);
std::string_view provider_name(Provider provider);

// The header that carries the provider's signature: Stripe-Signature,
// X-Signature, Usher-Signature.
std::string_view signature_header(Provider provider);

enum class Verdict {
  ok,
  missing_header,   // no signature header
  malformed_header, // unreadable: no or bad t=, bad hex, too long, duplicates
  no_v1_signature,  // a t= header without any v1= value
  stale,            // the timestamp is older than the tolerance
  future,           // the timestamp is further ahead than the tolerance
  mismatch,         // no secret gives any of the signatures
  no_secret,        // the provider has no secret configured (the endpoint: 404)
};

// Stable snake_case name of a verdict, for problem codes and logs.
std::string_view verdict_code(Verdict verdict);

// Limits on what is parsed: a longer header, or more v1= values, is malformed.
inline constexpr std::size_t k_max_header = 4096;
inline constexpr std::size_t k_max_v1 = 8;
inline constexpr std::size_t k_digest = 32; // HMAC-SHA256

// A parsed `t=T,v1=HEX[,v1=HEX…]` header (Stripe-Signature, Usher-Signature).
// Elements of other schemes (v0=, …) are ignored; the timestamp is the text
// of T, as it is signed.
struct TimestampedSignature {
  std::int64_t timestamp = 0; // Unix seconds
  std::string timestamp_text;
  std::vector<std::string> v1; // raw 32-byte digests
};

tl::expected<TimestampedSignature, Verdict> parse_timestamped(std::string_view header);

// A lone hex digest (Lemon Squeezy's X-Signature), as raw 32 bytes.
tl::expected<std::string, Verdict> parse_hex_digest(std::string_view header);

// HMAC-SHA256 of `data` under `key`, raw 32 bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

struct VerifyOptions {
  std::vector<std::string> secrets; // any one verifies (rotation)
  std::chrono::seconds tolerance{300};
};

// Verifies `header` (nullopt: the request had none) over the raw `body` with
// the provider's scheme, timestamps checked against `clock`'s wall time.
// Every comparison of digests takes constant time.
Verdict verify(Provider provider, std::optional<std::string_view> header, std::string_view body,
               const VerifyOptions &options, const clock::Clock &clock);

} // namespace usher::webhooks
