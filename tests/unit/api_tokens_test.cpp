// Unit tests for auth/api_tokens: parsing the Authorization header, roles and actor names.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <usher/auth/api_tokens.hpp>
#include <usher/store/migrations.hpp>
#include <usher/util/crypto.hpp>

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

// TokenRegistry against a migrated in-memory SQLite database; the runner
// either runs a lookup at once or keeps it for the test to run.
class TokenRegistryTest : public ::testing::Test {
protected:
  TokenRegistryTest() : sql(*soci::factory_sqlite3(), "db=:memory:") {
    crypto::initialise();
    store::migrate(sql, store::Dialect::sqlite);
  }

  TokenRegistry::Runner inline_runner() {
    return [this](std::function<void(soci::session &)> lookup, std::function<void()>) {
      ++lookups;
      lookup(sql);
      return true;
    };
  }

  TokenRegistry::Runner deferred_runner() {
    return [this](std::function<void(soci::session &)> lookup, std::function<void()>) {
      ++lookups;
      deferred.push_back(std::move(lookup));
      return true;
    };
  }

  // Resolves `token` and returns what `resolved` got (nullopt: not called yet).
  std::optional<Result<std::optional<Principal>>> resolve(TokenRegistry &registry,
                                                          const std::string &token,
                                                          const TokenRegistry::Runner &run) {
    // Shared with the callback: a deferred lookup answers after this returns.
    auto answer = std::make_shared<std::optional<Result<std::optional<Principal>>>>();
    registry.resolve(crypto::sha256_hex(token), run,
                     [answer](const Result<std::optional<Principal>> &found) { *answer = found; });
    return *answer;
  }

  soci::session sql;
  int lookups = 0;
  std::vector<std::function<void(soci::session &)>> deferred;
  std::chrono::steady_clock::time_point now{};
};

TEST_F(TokenRegistryTest, ATokenCreatedAfterTheLoadIsFoundAtOnceByAPointLookup) {
  TokenRegistry registry({}, [this] { return now; });
  registry.reload(sql);
  const auto created = create_token(sql, Role::admin, "late");
  EXPECT_FALSE(registry.find(crypto::sha256_hex(created.token)));
  const auto answer = resolve(registry, created.token, inline_runner());
  ASSERT_TRUE(answer && *answer && **answer);
  EXPECT_EQ((**answer)->token_id, created.id);
  EXPECT_EQ((**answer)->role, Role::admin);
  // Now from memory.
  EXPECT_TRUE(registry.find(crypto::sha256_hex(created.token)));
  EXPECT_TRUE(resolve(registry, created.token, inline_runner()));
  EXPECT_EQ(lookups, 1);
}

TEST_F(TokenRegistryTest, AnUnknownDigestIsLookedUpOnceWithinTheMissTtl) {
  TokenRegistry registry({8, 100, std::chrono::seconds(10)}, [this] { return now; });
  for (int i = 0; i < 5; ++i) {
    const auto answer = resolve(registry, "usher_garbage", inline_runner());
    ASSERT_TRUE(answer && *answer);
    EXPECT_FALSE(**answer);
  }
  EXPECT_EQ(lookups, 1);
  now += std::chrono::seconds(11);
  EXPECT_TRUE(resolve(registry, "usher_garbage", inline_runner()));
  EXPECT_EQ(lookups, 2);
}

TEST_F(TokenRegistryTest, RememberedMissesAreBounded) {
  TokenRegistry registry({8, 3, std::chrono::seconds(10)}, [this] { return now; });
  for (const char *token : {"g1", "g2", "g3", "g4"}) resolve(registry, token, inline_runner());
  EXPECT_EQ(lookups, 4);
  resolve(registry, "g4", inline_runner()); // remembered
  EXPECT_EQ(lookups, 4);
  resolve(registry, "g1", inline_runner()); // forgotten: the oldest
  EXPECT_EQ(lookups, 5);
}

TEST_F(TokenRegistryTest, ConcurrentMissesForOneDigestShareOneLookup) {
  TokenRegistry registry({}, [this] { return now; });
  const auto created = create_token(sql, Role::sales_manager, "shared");
  std::vector<Result<std::optional<Principal>>> answers;
  for (int i = 0; i < 3; ++i) {
    registry.resolve(crypto::sha256_hex(created.token), deferred_runner(),
                     [&answers](const auto &found) { answers.push_back(found); });
  }
  EXPECT_EQ(lookups, 1);
  EXPECT_TRUE(answers.empty());
  ASSERT_EQ(deferred.size(), 1U);
  deferred.front()(sql);
  ASSERT_EQ(answers.size(), 3U);
  for (const auto &answer : answers) {
    ASSERT_TRUE(answer && *answer);
    EXPECT_EQ((*answer)->token_id, created.id);
  }
  EXPECT_EQ(registry.lookups_in_flight(), 0U);
}

TEST_F(TokenRegistryTest, LookupsPastTheBoundAreRefusedAsUnavailable) {
  TokenRegistry registry({2, 100, std::chrono::seconds(10)}, [this] { return now; });
  EXPECT_FALSE(resolve(registry, "a", deferred_runner()));
  EXPECT_FALSE(resolve(registry, "b", deferred_runner()));
  const auto refused = resolve(registry, "c", deferred_runner());
  ASSERT_TRUE(refused);
  ASSERT_FALSE(*refused);
  EXPECT_EQ(refused->error().kind, ErrorKind::unavailable);
  EXPECT_EQ(lookups, 2);
  for (auto &lookup : deferred) lookup(sql);
  EXPECT_EQ(registry.lookups_in_flight(), 0U);
  EXPECT_TRUE(resolve(registry, "c", deferred_runner()) == std::nullopt); // room again
}

TEST_F(TokenRegistryTest, ARunnerThatCannotQueueAnswersUnavailable) {
  TokenRegistry registry({}, [this] { return now; });
  const auto answer =
      resolve(registry, "x",
              [](std::function<void(soci::session &)>, std::function<void()>) { return false; });
  ASSERT_TRUE(answer);
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().kind, ErrorKind::unavailable);
  EXPECT_EQ(registry.lookups_in_flight(), 0U);
}

TEST_F(TokenRegistryTest, ReloadAndForgetDropRevokedTokens) {
  TokenRegistry registry({}, [this] { return now; });
  const auto kept = create_token(sql, Role::admin, "kept");
  const auto revoked = create_token(sql, Role::admin, "revoked");
  registry.reload(sql);
  EXPECT_TRUE(registry.find(crypto::sha256_hex(revoked.token)));
  registry.forget(revoked.id);
  EXPECT_FALSE(registry.find(crypto::sha256_hex(revoked.token)));
  EXPECT_TRUE(registry.find(crypto::sha256_hex(kept.token)));
  const long long id = revoked.id;
  sql << "UPDATE api_tokens SET revoked_at = '2026-11-29T00:00:00.000Z' WHERE id = :id",
      soci::use(id);
  registry.reload(sql);
  EXPECT_FALSE(registry.find(crypto::sha256_hex(revoked.token)));
  const auto answer = resolve(registry, revoked.token, inline_runner());
  ASSERT_TRUE(answer && *answer);
  EXPECT_FALSE(**answer);
}

} // namespace
} // namespace usher::auth
