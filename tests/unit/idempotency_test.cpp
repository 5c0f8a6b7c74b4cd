// Unit tests for idempotency: Idempotency-Key checks, body fingerprints and the in-flight set.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include <usher/idempotency/idempotency.hpp>

namespace usher::idempotency {
namespace {

using nlohmann::json;

void expect_bad_key(std::string_view header) {
  const auto key = parse_key(header);
  ASSERT_FALSE(key) << "accepted " << ::testing::PrintToString(std::string(header));
  EXPECT_EQ(key.error().kind, ErrorKind::invalid);
  EXPECT_EQ(key.error().code, "idempotency_key_invalid");
  EXPECT_EQ(key.error().field, "Idempotency-Key");
}

TEST(IdempotencyKey, AcceptsVisibleAsciiUpTo255Characters) {
  const auto uuid = parse_key("4b1f3c1e-8a7d-4f0e-9c55-0d6f1a2b3c4d");
  ASSERT_TRUE(uuid);
  EXPECT_EQ(*uuid, "4b1f3c1e-8a7d-4f0e-9c55-0d6f1a2b3c4d");

  const std::string longest(255, 'k');
  const auto accepted = parse_key(longest);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(*accepted, longest);
  EXPECT_TRUE(parse_key("!~"));
}

TEST(IdempotencyKey, RejectsEmptyAndTooLong) {
  expect_bad_key("");
  expect_bad_key(std::string(256, 'k'));
}

TEST(IdempotencyKey, RejectsControlAndNonAsciiCharacters) {
  expect_bad_key(std::string("key\0", 4));
  expect_bad_key("key\x1F");
  expect_bad_key("key\n");
  expect_bad_key("key\x7F");
  expect_bad_key("cl\xC3\xA9");
  expect_bad_key("\xFF");
}

TEST(Fingerprint, IgnoresKeyOrderAndWhitespace) {
  const auto a =
      fingerprint(json::parse(R"({"email":"a@b.co","full_name":"A","nested":{"x":1,"y":[1,2]}})"));
  const auto b = fingerprint(json::parse(R"(
    { "nested" : { "y" : [ 1, 2 ], "x" : 1 },
      "full_name" : "A",
      "email" : "a@b.co" }
  )"));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
}

TEST(Fingerprint, DiffersForDifferentValues) {
  const auto base = fingerprint(json::parse(R"({"email":"a@b.co","full_name":"A"})"));
  EXPECT_NE(base, fingerprint(json::parse(R"({"email":"a@b.co","full_name":"B"})")));
  EXPECT_NE(base, fingerprint(json::parse(R"({"email":"A@b.co","full_name":"A"})")));
  EXPECT_NE(base, fingerprint(json::parse(R"({"email":"a@b.co","full_name":"A","phone":null})")));
  EXPECT_NE(base, fingerprint(json::parse(R"({"email":"a@b.co","name":"A"})")));
  EXPECT_NE(fingerprint(json::parse("[1,2]")), fingerprint(json::parse("[2,1]")));
  EXPECT_NE(fingerprint(json::parse(R"({"n":1})")), fingerprint(json::parse(R"({"n":"1"})")));
}

TEST(InFlight, SecondBeginOfTheSameKeyFailsUntilEnd) {
  InFlight in_flight;
  EXPECT_TRUE(in_flight.begin(1, "k"));
  EXPECT_FALSE(in_flight.begin(1, "k"));
  in_flight.end(1, "k");
  EXPECT_TRUE(in_flight.begin(1, "k"));
}

TEST(InFlight, KeysAreScopedToTheToken) {
  InFlight in_flight;
  EXPECT_TRUE(in_flight.begin(1, "k"));
  EXPECT_TRUE(in_flight.begin(2, "k"));
  EXPECT_TRUE(in_flight.begin(1, "other"));
  in_flight.end(2, "k");
  EXPECT_FALSE(in_flight.begin(1, "k")) << "ending token 2's key released token 1's";
}

TEST(InFlight, EndOfAnUnknownKeyIsHarmless) {
  InFlight in_flight;
  in_flight.end(9, "never begun");
  EXPECT_TRUE(in_flight.begin(9, "never begun"));
}

} // namespace
} // namespace usher::idempotency
