// Unit tests for util/request_id: which ids a caller may bring, and new ones.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <usher/util/request_id.hpp>

namespace usher::request_id {

TEST(RequestId, UsableIdsAreKeptAsGiven) {
  const std::vector<std::string> ids = {"a", "abc-123", "6f1c2b1e-3c1d-4f5e-9a2b-0c1d2e3f4a5b",
                                        "a.b_c:d/e+f=g@h", std::string(k_max_length, 'x')};
  for (const auto &id : ids) {
    EXPECT_EQ(accept(id), id);
    EXPECT_EQ(accept_or_generate(id), id);
  }
}

TEST(RequestId, UnusableIdsAreRefusedAndReplaced) {
  const std::vector<std::string> ids = {
      std::string(), std::string(k_max_length + 1, 'x'), "sp ace",      "quo\"te",
      "new\nline",   std::string("nul\0l", 5),           "caf\xC3\xA9", "semi;colon",
      "<b>"};
  for (const auto &id : ids) {
    EXPECT_EQ(accept(id), std::nullopt) << id;
    const auto replaced = accept_or_generate(id);
    EXPECT_NE(replaced, id);
    EXPECT_EQ(replaced.size(), 32u);
  }
  EXPECT_EQ(accept_or_generate(std::nullopt).size(), 32u);
}

TEST(RequestId, NewIdsAre32HexDigitsAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const auto id = generate();
    ASSERT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

} // namespace usher::request_id
