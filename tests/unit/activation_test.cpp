// Unit tests for auth/activation: the shape of an activation token, the
// digest stored for it, and that tokens issued before that shape still work.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <usher/auth/activation.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>

#include "temp_database.hpp"

namespace usher::auth {
namespace {

using namespace std::chrono_literals;

clock::WallTime at(std::int64_t micros) {
  return clock::WallTime(
      std::chrono::duration_cast<clock::WallTime::duration>(std::chrono::microseconds(micros)));
}

class Activation : public ::testing::Test {
protected:
  void SetUp() override { crypto::initialise(); }
};

TEST_F(Activation, ATokenCarriesItsIssueTimeThenThirtyTwoRandomBytes) {
  // 2026-12-07T22:00:00.123456Z
  const auto secret = issue_activation_token(at(1796680800123456));
  ASSERT_EQ(secret.token.size(), 8u + 14u + 43u) << secret.token;
  EXPECT_EQ(secret.token.substr(0, 22), "usher_a_06621258ddba40") << secret.token;
  EXPECT_EQ(secret.token.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 22),
            std::string::npos)
      << secret.token;
  EXPECT_NE(issue_activation_token(at(1796680800123456)).token, secret.token);
}

TEST_F(Activation, TheDigestIsTheIssueTimeThenTheSha256OfTheWholeToken) {
  const auto secret = issue_activation_token(at(1796680800123456));
  EXPECT_EQ(secret.hash, "06621258ddba40." + crypto::sha256_hex(secret.token));
  EXPECT_EQ(activation_digest(secret.token), secret.hash);
  EXPECT_EQ(secret.hash.find(secret.token.substr(22)), std::string::npos)
      << "the random part is never stored";
}

TEST_F(Activation, DigestsOfTokensIssuedLaterSortLater) {
  std::string previous;
  for (std::int64_t micros : {0LL, 1LL, 15LL, 16LL, 1796680800123456LL, 1796680800123457LL,
                              1796767200000000LL, 9000000000000000LL}) {
    const auto digest = issue_activation_token(at(micros)).hash;
    EXPECT_LT(previous, digest) << micros;
    previous = digest;
  }
}

TEST_F(Activation, AnyOtherTextIsDigestedBySha256Alone) {
  // The shape issued before the issue time was part of the token.
  const std::string old_token = crypto::random_token("usher_a_");
  EXPECT_EQ(activation_digest(old_token), crypto::sha256_hex(old_token));
  // The right length, but no hex time after the prefix.
  const std::string not_hex = "usher_a_0662125xddba40" + std::string(43, 'A');
  EXPECT_EQ(activation_digest(not_hex), crypto::sha256_hex(not_hex));
  const std::string upper_hex = "usher_a_06621258DDBA40" + std::string(43, 'A');
  EXPECT_EQ(activation_digest(upper_hex), crypto::sha256_hex(upper_hex));
  // A time of the right shape, one character short or long.
  const std::string shorter = "usher_a_06621258ddba40" + std::string(42, 'A');
  EXPECT_EQ(activation_digest(shorter), crypto::sha256_hex(shorter));
  const std::string longer = "usher_a_06621258ddba40" + std::string(44, 'A');
  EXPECT_EQ(activation_digest(longer), crypto::sha256_hex(longer));
  EXPECT_EQ(activation_digest(""), crypto::sha256_hex(""));
}

TEST_F(Activation, ATokenIssuedBeforeItsTimeWasPartOfItStillActivates) {
  testing::MigratedDatabase db("activation");
  db.sql() << "INSERT INTO accounts (id, email, email_normalized, created_at) "
              "VALUES (1, 'old@example.com', 'old@example.com', '2026-01-01T00:00:00Z')";
  const std::string old_token = crypto::random_token("usher_a_");
  const std::string stored = crypto::sha256_hex(old_token);
  db.sql() << "INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at) "
              "VALUES (1, :hash, '2999-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
      soci::use(stored);

  const auto found = find_activation(db.sql(), activation_digest(old_token));
  ASSERT_TRUE(found) << found.error().code;
  EXPECT_EQ(*found, 1);
  const auto activated = activate(db.sql(), activation_digest(old_token), "$argon2id$stand-in");
  ASSERT_TRUE(activated) << activated.error().code;
  EXPECT_EQ(*activated, 1);
  EXPECT_FALSE(activate(db.sql(), activation_digest(old_token), "$argon2id$stand-in"))
      << "used once";
}

TEST_F(Activation, AReissuedTokenIsStoredByItsDigestAndFoundByIt) {
  testing::MigratedDatabase db("activation-reissue");
  db.sql() << "INSERT INTO accounts (id, email, email_normalized, created_at) "
              "VALUES (7, 'new@example.com', 'new@example.com', '2026-01-01T00:00:00Z')";
  const auto now = std::chrono::system_clock::now();
  const auto reissued = reissue_activation(db.sql(), 7, now, 48h);
  ASSERT_TRUE(reissued) << reissued.error().code;
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = :h",
                     activation_digest(reissued->token)),
            1);
  EXPECT_EQ(db.count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = :h",
                     crypto::sha256_hex(reissued->token)),
            0);
  const auto found = find_activation(db.sql(), activation_digest(reissued->token));
  ASSERT_TRUE(found) << found.error().code;
  EXPECT_EQ(*found, 7);
}

} // namespace
} // namespace usher::auth
