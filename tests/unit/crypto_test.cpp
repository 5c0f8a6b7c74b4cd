// Unit tests for util/crypto: SHA-256 digests, random tokens and argon2id password hashes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <usher/util/crypto.hpp>

namespace usher::crypto {
namespace {

// The smallest cost libsodium accepts comfortably: hashing stays fast in tests.
constexpr PasswordCost k_tiny_cost{64, 1};

class Crypto : public ::testing::Test {
protected:
  void SetUp() override { initialise(); }
};

TEST_F(Crypto, Sha256HexMatchesKnownVectors) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_F(Crypto, Sha256HexHashesEmbeddedNulBytes) {
  EXPECT_NE(sha256_hex(std::string("a\0b", 3)), sha256_hex("a"));
}

TEST_F(Crypto, RandomTokenHasThePrefixAndUrlSafeCharacters) {
  const std::string token = random_token("usher_");
  ASSERT_EQ(token.rfind("usher_", 0), 0u) << token;
  const std::string body = token.substr(6);
  // 32 bytes in base64url without padding: ceil(32 * 4 / 3) = 43 characters.
  EXPECT_EQ(body.size(), 43u) << token;
  EXPECT_EQ(
      body.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos)
      << token;
}

TEST_F(Crypto, RandomTokenLengthFollowsTheByteCount) {
  EXPECT_EQ(random_token("", 3).size(), 4u);
  EXPECT_EQ(random_token("p", 16).size(), 1u + 22u);
}

TEST_F(Crypto, RandomTokensDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(random_token("t_"));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_F(Crypto, HashPasswordVerifiesTheRightPasswordOnly) {
  const std::string hash = hash_password("correct horse battery", k_tiny_cost);
  EXPECT_EQ(hash.rfind("$argon2id$", 0), 0u) << hash;
  EXPECT_NE(hash.find("m=64,t=1"), std::string::npos) << hash;
  EXPECT_TRUE(verify_password("correct horse battery", hash));
  EXPECT_FALSE(verify_password("correct horse batterY", hash));
  EXPECT_FALSE(verify_password("", hash));
}

TEST_F(Crypto, HashPasswordIsSaltedEveryTime) {
  const std::string first = hash_password("same password", k_tiny_cost);
  const std::string second = hash_password("same password", k_tiny_cost);
  EXPECT_NE(first, second);
  EXPECT_TRUE(verify_password("same password", first));
  EXPECT_TRUE(verify_password("same password", second));
}

TEST_F(Crypto, VerifyPasswordRejectsAMalformedHash) {
  EXPECT_FALSE(verify_password("anything", ""));
  EXPECT_FALSE(verify_password("anything", "not a phc string"));
}

} // namespace
} // namespace usher::crypto
