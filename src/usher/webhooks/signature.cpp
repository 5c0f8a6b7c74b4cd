#include <usher/webhooks/signature.hpp>

#include <algorithm>
#include <array>

#include <sodium.h>

namespace usher::webhooks {
namespace {

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly 64 hex digits (either case) to 32 bytes.
std::optional<std::string> decode_digest(std::string_view hex) {
  if (hex.size() != 2 * k_digest) return std::nullopt;
  std::string out(k_digest, '\0');
  for (std::size_t i = 0; i < k_digest; ++i) {
    const int high = hex_value(hex[2 * i]);
    const int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<char>((high << 4) | low);
  }
  return out;
}

// At most 12 digits, no sign: Unix seconds until the year 33658.
std::optional<std::int64_t> parse_seconds(std::string_view text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

bool same_digest(const std::string &a, const std::string &b) {
  return a.size() == k_digest && b.size() == k_digest &&
         sodium_memcmp(a.data(), b.data(), k_digest) == 0;
}

// True when any secret's HMAC of `signed_payload` equals any of `candidates`.
// Every pair is compared, so the time does not depend on which one matched.
bool any_matches(const std::vector<std::string> &secrets, std::string_view signed_payload,
                 const std::vector<std::string> &candidates) {
  bool matched = false;
  for (const auto &secret : secrets) {
    const std::string expected = hmac_sha256(secret, signed_payload);
    for (const auto &candidate : candidates) {
      matched = same_digest(expected, candidate) || matched;
    }
  }
  return matched;
}

Verdict verify_timestamped(std::string_view header, std::string_view body,
                           const VerifyOptions &options, const clock::Clock &clock) {
  auto parsed = parse_timestamped(header);
  if (!parsed) return parsed.error();
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
  const auto tolerance = std::max<std::int64_t>(options.tolerance.count(), 1);
  if (parsed->timestamp < now - tolerance) return Verdict::stale;
  if (parsed->timestamp > now + tolerance) return Verdict::future;
  std::string signed_payload;
  signed_payload.reserve(parsed->timestamp_text.size() + 1 + body.size());
  signed_payload.append(parsed->timestamp_text).append(".").append(body);
  return any_matches(options.secrets, signed_payload, parsed->v1) ? Verdict::ok : Verdict::mismatch;
}

Verdict verify_plain(std::string_view header, std::string_view body, const VerifyOptions &options) {
  auto digest = parse_hex_digest(header);
  if (!digest) return digest.error();
  return any_matches(options.secrets, body, {*digest}) ? Verdict::ok : Verdict::mismatch;
}

} // namespace

std::optional<Provider> parse_provider(std::string_view name) {
  if (name == "stripe") return Provider::stripe;
  if (name == "lemonsqueezy") return Provider::lemonsqueezy;
  if (name == "generic") return Provider::generic;
  return std::nullopt;
}

std::string_view provider_name(Provider provider) {
  switch (provider) {
  case Provider::stripe: return "stripe";
  case Provider::lemonsqueezy: return "lemonsqueezy";
  case Provider::generic: return "generic";
  }
  return "generic";
}

std::string_view signature_header(Provider provider) {
  switch (provider) {
  case Provider::stripe: return "Stripe-Signature";
  case Provider::lemonsqueezy: return "X-Signature";
  case Provider::generic: return "Usher-Signature";
  }
  return "Usher-Signature";
}

std::string_view verdict_code(Verdict verdict) {
  switch (verdict) {
  case Verdict::ok: return "ok";
  case Verdict::missing_header: return "signature_missing";
  case Verdict::malformed_header: return "signature_malformed";
  case Verdict::no_v1_signature: return "signature_no_v1";
  case Verdict::stale: return "signature_stale";
  case Verdict::future: return "signature_future";
  case Verdict::mismatch: return "signature_mismatch";
  case Verdict::no_secret: return "webhook_not_configured";
  }
  return "signature_malformed";
}

tl::expected<TimestampedSignature, Verdict> parse_timestamped(std::string_view header) {
  if (header.size() > k_max_header) return tl::unexpected(Verdict::malformed_header);
  header = trim_spaces(header);
  if (header.empty()) return tl::unexpected(Verdict::missing_header);
  TimestampedSignature out;
  bool have_timestamp = false;
  std::size_t start = 0;
  while (start <= header.size()) {
    const auto comma = header.find(',', start);
    const auto element = trim_spaces(header.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    const auto equals = element.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      return tl::unexpected(Verdict::malformed_header);
    }
    const auto key = element.substr(0, equals);
    const auto value = element.substr(equals + 1);
    if (key == "t") {
      const auto seconds = parse_seconds(value);
      if (have_timestamp || !seconds) return tl::unexpected(Verdict::malformed_header);
      have_timestamp = true;
      out.timestamp = *seconds;
      out.timestamp_text = std::string(value);
    } else if (key == "v1") {
      auto digest = decode_digest(value);
      if (!digest || out.v1.size() == k_max_v1) return tl::unexpected(Verdict::malformed_header);
      out.v1.push_back(std::move(*digest));
    }
    // Other schemes (Stripe's test-mode v0=, future ones) are ignored.
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (!have_timestamp) return tl::unexpected(Verdict::malformed_header);
  if (out.v1.empty()) return tl::unexpected(Verdict::no_v1_signature);
  return out;
}

tl::expected<std::string, Verdict> parse_hex_digest(std::string_view header) {
  if (header.size() > k_max_header) return tl::unexpected(Verdict::malformed_header);
  header = trim_spaces(header);
  if (header.empty()) return tl::unexpected(Verdict::missing_header);
  auto digest = decode_digest(header);
  if (!digest) return tl::unexpected(Verdict::malformed_header);
  return std::move(*digest);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char *>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char *>(data.data()),
                                data.size());
  std::array<unsigned char, crypto_auth_hmacsha256_BYTES> mac{};
  crypto_auth_hmacsha256_final(&state, mac.data());
  sodium_memzero(&state, sizeof state);
  return {reinterpret_cast<const char *>(mac.data()), mac.size()};
}

Verdict verify(Provider provider, std::optional<std::string_view> header, std::string_view body,
               const VerifyOptions &options, const clock::Clock &clock) {
  if (options.secrets.empty()) return Verdict::no_secret;
  if (!header) return Verdict::missing_header;
  switch (provider) {
  case Provider::stripe:
  case Provider::generic: return verify_timestamped(*header, body, options, clock);
  case Provider::lemonsqueezy: return verify_plain(*header, body, options);
  }
  return Verdict::malformed_header;
}

} // namespace usher::webhooks
