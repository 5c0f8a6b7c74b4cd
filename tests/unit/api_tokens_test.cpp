// Unit tests for auth/api_tokens: parsing the Authorization header, roles and actor names.
#include <gtest/gtest.h>

#include <string>

#include <usher/auth/api_tokens.hpp>

namespace usher::auth {
namespace {

TEST(BearerToken, ReturnsTheToken) {
  EXPECT_EQ(bearer_token("Bearer usher_abc-DEF_123"), "usher_abc-DEF_123");
}

TEST(BearerToken, SchemeComparesCaseInsensitively) {
  EXPECT_EQ(bearer_token("bearer tok"), "tok");
  EXPECT_EQ(bearer_token("BEARER tok"), "tok");
  EXPECT_EQ(bearer_token("BeArEr tok"), "tok");
}

TEST(BearerToken, ToleratesExtraSpacesAroundTheToken) {
  EXPECT_EQ(bearer_token("  Bearer tok  "), "tok");
  EXPECT_EQ(bearer_token("Bearer    tok"), "tok");
  EXPECT_EQ(bearer_token("\tBearer tok\t"), "tok");
}

TEST(BearerToken, MissingTokenIsNullopt) {
  EXPECT_EQ(bearer_token(""), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer     "), std::nullopt);
}

TEST(BearerToken, OtherSchemesAndMalformedValuesAreNullopt) {
  EXPECT_EQ(bearer_token("Basic dXNlcjpwYXNz"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearertok"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer: tok"), std::nullopt);
  EXPECT_EQ(bearer_token("tok"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer tok en"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer tok\x01"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer tok\x7F"), std::nullopt);
}

TEST(BearerToken, NonAsciiTokenIsNullopt) {
  EXPECT_EQ(bearer_token("Bearer t\xC3\xB6ken"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer \xFF"), std::nullopt);
}

TEST(BearerToken, TokenIsAtMost512Characters) {
  const std::string longest(512, 't');
  EXPECT_EQ(bearer_token("Bearer " + longest), longest);
  EXPECT_EQ(bearer_token("Bearer " + longest + "t"), std::nullopt);
}

TEST(Role, ParsesTheTwoRolesExactly) {
  EXPECT_EQ(parse_role("admin"), Role::admin);
  EXPECT_EQ(parse_role("sales_manager"), Role::sales_manager);
  EXPECT_EQ(parse_role(""), std::nullopt);
  EXPECT_EQ(parse_role("root"), std::nullopt);
  EXPECT_EQ(parse_role("Admin"), std::nullopt);
  EXPECT_EQ(parse_role("sales-manager"), std::nullopt);
  EXPECT_EQ(parse_role("admin "), std::nullopt);
}

TEST(Role, ToStringRoundTrips) {
  for (const Role role : {Role::admin, Role::sales_manager}) {
    EXPECT_EQ(parse_role(to_string(role)), role);
  }
  EXPECT_STREQ(to_string(Role::sales_manager), "sales_manager");
}

TEST(Principal, ActorNamesTheTokenAndItsId) {
  const Principal principal{42, "alice", Role::admin};
  EXPECT_EQ(principal.actor(), "alice (token 42)");
}

} // namespace
} // namespace usher::auth
