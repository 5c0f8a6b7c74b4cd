// Unit tests for webhooks/: signatures computed here with OpenSSL's HMAC as
// each provider documents its scheme (Stripe: HMAC-SHA256 of "T." + body,
// hex, in Stripe-Signature; Lemon Squeezy: HMAC-SHA256 of the body, hex, in
// X-Signature), and the purchase events' payload shapes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <variant>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <usher/webhooks/event.hpp>
#include <usher/webhooks/signature.hpp>

#include "manual_clock.hpp"

namespace usher::webhooks {
namespace {

using namespace std::chrono_literals;

// Lower-case hex HMAC-SHA256, with OpenSSL (independent of the code under test).
std::string openssl_hmac_hex(const std::string &key, const std::string &data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char *>(data.data()), data.size(), mac, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof byte, "%02x", mac[i]);
    hex += byte;
  }
  return hex;
}

std::int64_t unix_seconds(const clock::Clock &clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

const std::string k_body = R"({"id":"evt_1","type":"checkout.session.completed"})";

// Stripe-Signature for `body` at time `t` under `secret`.
std::string stripe_header(const std::string &secret, std::int64_t t, const std::string &body) {
  const std::string ts = std::to_string(t);
  return "t=" + ts + ",v1=" + openssl_hmac_hex(secret, ts + "." + body);
}

VerifyOptions options(std::vector<std::string> secrets) {
  return VerifyOptions{std::move(secrets), 300s};
}

TEST(WebhookSignature, AcceptsStripesDocumentedScheme) {
  testing::ManualClock clock;
  const auto header = stripe_header("whsec_test", unix_seconds(clock), k_body);
  EXPECT_EQ(verify(Provider::stripe, header, k_body, options({"whsec_test"}), clock), Verdict::ok);
  // The same scheme as Usher-Signature for generic.
  EXPECT_EQ(verify(Provider::generic, header, k_body, options({"whsec_test"}), clock), Verdict::ok);
}

TEST(WebhookSignature, AnyOfSeveralV1ValuesMayMatchAndOtherSchemesAreIgnored) {
  testing::ManualClock clock;
  const std::string ts = std::to_string(unix_seconds(clock));
  const std::string good = openssl_hmac_hex("whsec_new", ts + "." + k_body);
  const std::string other = openssl_hmac_hex("whsec_elsewhere", ts + "." + k_body);
  const std::string header = "t=" + ts + ", v1=" + other + ",v0=" + std::string(64, 'a') +
                             ",v1=" + good + ",scheme9=whatever";
  EXPECT_EQ(verify(Provider::stripe, header, k_body, options({"whsec_new"}), clock), Verdict::ok);
  // Upper-case hex is the same digest.
  std::string upper = "t=" + ts + ",v1=" + good;
  for (auto &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  upper[0] = 't';
  upper.replace(upper.find("V1="), 3, "v1=");
  EXPECT_EQ(verify(Provider::stripe, upper, k_body, options({"whsec_new"}), clock), Verdict::ok);
}

TEST(WebhookSignature, AnyConfiguredSecretVerifiesForRotation) {
  testing::ManualClock clock;
  const auto t = unix_seconds(clock);
  const auto by_old = stripe_header("whsec_old", t, k_body);
  const auto by_new = stripe_header("whsec_new", t, k_body);
  const auto both = options({"whsec_new", "whsec_old"});
  EXPECT_EQ(verify(Provider::stripe, by_old, k_body, both, clock), Verdict::ok);
  EXPECT_EQ(verify(Provider::stripe, by_new, k_body, both, clock), Verdict::ok);
  EXPECT_EQ(verify(Provider::stripe, by_old, k_body, options({"whsec_new"}), clock),
            Verdict::mismatch);
  const std::string ls_old = openssl_hmac_hex("ls_old", k_body);
  EXPECT_EQ(verify(Provider::lemonsqueezy, ls_old, k_body, options({"ls_new", "ls_old"}), clock),
            Verdict::ok);
}

TEST(WebhookSignature, WrongSecretTamperedOrTruncatedBodyIsAMismatch) {
  testing::ManualClock clock;
  const auto header = stripe_header("whsec_test", unix_seconds(clock), k_body);
  EXPECT_EQ(verify(Provider::stripe, header, k_body, options({"whsec_wrong"}), clock),
            Verdict::mismatch);
  EXPECT_EQ(verify(Provider::stripe, header, k_body.substr(0, k_body.size() - 1),
                   options({"whsec_test"}), clock),
            Verdict::mismatch);
  EXPECT_EQ(verify(Provider::stripe, header, k_body + " ", options({"whsec_test"}), clock),
            Verdict::mismatch);
  // The timestamp is part of what is signed.
  const std::string ts = std::to_string(unix_seconds(clock));
  const std::string shifted = "t=" + std::to_string(unix_seconds(clock) - 1) +
                              ",v1=" + openssl_hmac_hex("whsec_test", ts + "." + k_body);
  EXPECT_EQ(verify(Provider::stripe, shifted, k_body, options({"whsec_test"}), clock),
            Verdict::mismatch);
}

TEST(WebhookSignature, StaleAndFutureTimestampsAreRejectedAtTheTolerance) {
  testing::ManualClock clock;
  const auto now = unix_seconds(clock);
  const auto opts = options({"s"});
  EXPECT_EQ(verify(Provider::stripe, stripe_header("s", now - 300, k_body), k_body, opts, clock),
            Verdict::ok);
  EXPECT_EQ(verify(Provider::stripe, stripe_header("s", now - 301, k_body), k_body, opts, clock),
            Verdict::stale);
  EXPECT_EQ(verify(Provider::stripe, stripe_header("s", now + 300, k_body), k_body, opts, clock),
            Verdict::ok);
  EXPECT_EQ(verify(Provider::stripe, stripe_header("s", now + 301, k_body), k_body, opts, clock),
            Verdict::future);
  EXPECT_EQ(verify(Provider::generic, stripe_header("s", 0, k_body), k_body, opts, clock),
            Verdict::stale);
  // A header that was fine goes stale as the clock moves on.
  const auto header = stripe_header("s", now, k_body);
  clock.advance(301s);
  EXPECT_EQ(verify(Provider::stripe, header, k_body, opts, clock), Verdict::stale);
  // A tolerance of 0 is not "unchecked": it is treated as 1 s.
  EXPECT_EQ(verify(Provider::stripe, header, k_body, VerifyOptions{{"s"}, 0s}, clock),
            Verdict::stale);
}

TEST(WebhookSignature, MalformedHeadersAreTypedRefusals) {
  testing::ManualClock clock;
  const auto opts = options({"s"});
  const std::string ts = std::to_string(unix_seconds(clock));
  const std::string hex = openssl_hmac_hex("s", ts + "." + k_body);
  const auto check = [&](std::optional<std::string_view> header, Verdict expected) {
    EXPECT_EQ(verify(Provider::stripe, header, k_body, opts, clock), expected)
        << (header ? std::string(*header) : "(none)");
  };
  check(std::nullopt, Verdict::missing_header);
  check("", Verdict::missing_header);
  check("   ", Verdict::missing_header);
  check("v1=" + hex, Verdict::malformed_header);                        // no t
  check("t=abc,v1=" + hex, Verdict::malformed_header);                  // non-numeric t
  check("t=-5,v1=" + hex, Verdict::malformed_header);                   // signed t
  check("t=,v1=" + hex, Verdict::malformed_header);                     // empty t
  check("t=99999999999999999999,v1=" + hex, Verdict::malformed_header); // overflow
  check("t=" + ts + ",t=" + ts + ",v1=" + hex, Verdict::malformed_header);
  check("t=" + ts, Verdict::no_v1_signature);
  check("t=" + ts + ",v0=" + hex, Verdict::no_v1_signature);
  check("t=" + ts + ",v1=" + hex.substr(1), Verdict::malformed_header); // short hex
  check("t=" + ts + ",v1=" + hex.substr(0, 63) + "g", Verdict::malformed_header);
  check("t=" + ts + ",,v1=" + hex, Verdict::malformed_header);
  check("garbage", Verdict::malformed_header);
  std::string many = "t=" + ts;
  for (std::size_t i = 0; i <= k_max_v1; ++i) many += ",v1=" + hex;
  check(many, Verdict::malformed_header);
  check("t=" + ts + ",v1=" + hex + ",x=" + std::string(k_max_header, 'a'),
        Verdict::malformed_header); // huge
}

TEST(WebhookSignature, LemonSqueezyIsAHexDigestOfTheRawBody) {
  testing::ManualClock clock;
  const std::string body = R"({"meta":{"event_name":"order_created"}})";
  const auto opts = options({"ls_secret"});
  const std::string hex = openssl_hmac_hex("ls_secret", body);
  EXPECT_EQ(verify(Provider::lemonsqueezy, hex, body, opts, clock), Verdict::ok);
  EXPECT_EQ(verify(Provider::lemonsqueezy, hex, body.substr(1), opts, clock), Verdict::mismatch);
  EXPECT_EQ(verify(Provider::lemonsqueezy, openssl_hmac_hex("other", body), body, opts, clock),
            Verdict::mismatch);
  EXPECT_EQ(verify(Provider::lemonsqueezy, std::nullopt, body, opts, clock),
            Verdict::missing_header);
  EXPECT_EQ(verify(Provider::lemonsqueezy, "xyz", body, opts, clock), Verdict::malformed_header);
  EXPECT_EQ(verify(Provider::lemonsqueezy, "t=1,v1=" + hex, body, opts, clock),
            Verdict::malformed_header);
}

// The sample in docs/webhooks.md, signed there with openssl on the command line.
TEST(WebhookSignature, DocumentedSampleVerifies) {
  testing::ManualClock clock; // 2026-11-28T12:00:00Z = 1795867200
  ASSERT_EQ(unix_seconds(clock), 1795867200);
  const std::string body = R"({"id":"order-1001","email":"buyer@example.com",)"
                           R"("full_name":"Ann Buyer","product":"Course A"})";
  const std::string header =
      "t=1795867200,v1=3b30a529e699983dc5e1c3030687918bc2cdcd3e201bc2896eb7cc775b59509b";
  EXPECT_EQ(verify(Provider::generic, header, body, options({"whsec_example"}), clock),
            Verdict::ok);
  EXPECT_EQ(verify(Provider::lemonsqueezy,
                   "b9577edda7fbf4eedaadf9b77bcf31cc6e8b37a1b98f336662f13b549f4c6997", body,
                   options({"whsec_example"}), clock),
            Verdict::ok);
}

TEST(WebhookSignature, AProviderWithoutSecretsIsNotConfigured) {
  testing::ManualClock clock;
  const auto header = stripe_header("s", unix_seconds(clock), k_body);
  EXPECT_EQ(verify(Provider::stripe, header, k_body, options({}), clock), Verdict::no_secret);
}

TEST(WebhookSignature, ProvidersHeadersAndCodes) {
  EXPECT_EQ(parse_provider("stripe"), Provider::stripe);
  EXPECT_EQ(parse_provider("lemonsqueezy"), Provider::lemonsqueezy);
  EXPECT_EQ(parse_provider("generic"), Provider::generic);
  EXPECT_FALSE(parse_provider("paypal"));
  EXPECT_FALSE(parse_provider("Stripe"));
  EXPECT_EQ(signature_header(Provider::stripe), "Stripe-Signature");
  EXPECT_EQ(signature_header(Provider::lemonsqueezy), "X-Signature");
  EXPECT_EQ(signature_header(Provider::generic), "Usher-Signature");
  EXPECT_EQ(verdict_code(Verdict::stale), "signature_stale");
  EXPECT_EQ(hmac_sha256("key", "data").size(), k_digest);
}

const Purchase &purchase_of(const Result<Event> &event) {
  EXPECT_TRUE(event) << (event ? "" : event.error().detail);
  EXPECT_TRUE(std::holds_alternative<Purchase>(*event));
  return std::get<Purchase>(*event);
}

TEST(WebhookEvent, StripeCheckoutSessionCompletedIsAPurchase) {
  const auto event = parse_event(Provider::stripe, R"({
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event",
    "type": "checkout.session.completed",
    "data": {"object": {"id": "cs_test_a1", "object": "checkout.session",
      "customer_details": {"email": " Buyer@Example.COM ", "name": "Jenny Rosen"},
      "metadata": {"product": "Course A"}}}})");
  const auto &purchase = purchase_of(event);
  EXPECT_EQ(purchase.event_id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
  EXPECT_EQ(purchase.user.email, "buyer@example.com");
  EXPECT_EQ(purchase.user.full_name, "Jenny Rosen");
  EXPECT_EQ(purchase.user.product, "Course A");
  EXPECT_EQ(intake_key(Provider::stripe, purchase), "webhook:stripe:evt_1NG8Du2eZvKYlo2CUI79vXWy");
}

TEST(WebhookEvent, StripeWithoutNameOrProductUsesTheEmailsLocalPart) {
  const auto event = parse_event(Provider::stripe, R"({"id":"evt_2",
    "type":"checkout.session.completed",
    "data":{"object":{"customer_details":{"email":"jo@example.com","name":null}}}})");
  const auto &purchase = purchase_of(event);
  EXPECT_EQ(purchase.user.full_name, "jo");
  EXPECT_FALSE(purchase.user.product);
}

TEST(WebhookEvent, OtherStripeEventTypesAreIgnored) {
  const auto event = parse_event(Provider::stripe,
                                 R"({"id":"evt_3","type":"payment_intent.succeeded","data":{}})");
  ASSERT_TRUE(event);
  ASSERT_TRUE(std::holds_alternative<Ignored>(*event));
  EXPECT_EQ(std::get<Ignored>(*event).event_type, "payment_intent.succeeded");
}

TEST(WebhookEvent, LemonSqueezyOrderCreatedIsAPurchase) {
  const auto event = parse_event(Provider::lemonsqueezy, R"({
    "meta": {"event_name": "order_created", "custom_data": {}},
    "data": {"type": "orders", "id": "1",
      "attributes": {"user_name": "Darlene Daugherty", "user_email": "gernser@yahoo.com",
        "first_order_item": {"product_name": "Test Limited License for 2 years"}}}})");
  const auto &purchase = purchase_of(event);
  EXPECT_EQ(purchase.event_id, "1");
  EXPECT_EQ(purchase.user.email, "gernser@yahoo.com");
  EXPECT_EQ(purchase.user.full_name, "Darlene Daugherty");
  EXPECT_EQ(purchase.user.product, "Test Limited License for 2 years");
  EXPECT_EQ(intake_key(Provider::lemonsqueezy, purchase), "webhook:lemonsqueezy:1");

  const auto other = parse_event(Provider::lemonsqueezy,
                                 R"({"meta":{"event_name":"subscription_created"},"data":{}})");
  ASSERT_TRUE(other);
  EXPECT_TRUE(std::holds_alternative<Ignored>(*other));
}

TEST(WebhookEvent, GenericBodyWithEmailIsAPurchase) {
  const auto event =
      parse_event(Provider::generic,
                  R"({"id":"order-77","email":"a@example.com","full_name":"Ann","product":"P"})");
  const auto &purchase = purchase_of(event);
  EXPECT_EQ(purchase.event_id, "order-77");
  EXPECT_EQ(purchase.user.full_name, "Ann");
  EXPECT_EQ(purchase.user.product, "P");
  const auto without_email = parse_event(Provider::generic, R"({"id":"x","type":"refund"})");
  ASSERT_TRUE(without_email);
  EXPECT_TRUE(std::holds_alternative<Ignored>(*without_email));
}

TEST(WebhookEvent, BadBodiesAreInvalidAndNameTheField) {
  const auto not_json = parse_event(Provider::stripe, R"({"id":"evt_1","type":)");
  ASSERT_FALSE(not_json);
  EXPECT_EQ(not_json.error().kind, ErrorKind::invalid);
  EXPECT_EQ(not_json.error().code, "webhook_body_not_json");
  EXPECT_FALSE(parse_event(Provider::generic, "[1,2]"));
  EXPECT_FALSE(parse_event(Provider::generic, ""));

  const auto check = [](Provider provider, const std::string &body, const std::string &field) {
    const auto event = parse_event(provider, body);
    ASSERT_FALSE(event) << body;
    EXPECT_EQ(event.error().code, "webhook_event_invalid") << body;
    EXPECT_EQ(event.error().field, field) << body;
  };
  check(Provider::stripe, R"({"type":"checkout.session.completed","data":{}})", "id");
  check(Provider::stripe,
        R"({"id":"evt","type":"checkout.session.completed","data":{"object":{}}})",
        "data.object.customer_details.email");
  check(Provider::stripe,
        R"({"id":"evt","type":"checkout.session.completed",
            "data":{"object":{"customer_details":{"email":"not-an-email"}}}})",
        "data.object.customer_details.email");
  check(Provider::lemonsqueezy,
        R"({"meta":{"event_name":"order_created"},"data":{"id":"1","attributes":{}}})",
        "data.attributes.user_email");
  check(Provider::generic, R"({"email":"a@example.com"})", "id");
  check(Provider::generic, R"({"id":"has space","email":"a@example.com"})", "id");
  check(Provider::generic,
        R"({"id":")" + std::string(k_max_event_id + 1, 'x') + R"(","email":"a@example.com"})",
        "id");
  check(Provider::generic, R"({"id":"1","email":"a@example.com","full_name":"bad\u0007"})",
        "full_name");
}

} // namespace
} // namespace usher::webhooks
