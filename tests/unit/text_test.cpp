#include <gtest/gtest.h>

#include <usher/util/text.hpp>

namespace usher::text {

TEST(Text, TrimRemovesSpacesAndTabsOnly) {
  EXPECT_EQ(trim("  a b\t"), "a b");
  EXPECT_EQ(trim("\n a"), "\n a");
}

TEST(Text, Utf8LengthCountsCodePointsAndRejectsInvalid) {
  EXPECT_EQ(utf8_length("h\xC3\xA9llo"), 5u);
  EXPECT_EQ(utf8_length("\xC3"), std::nullopt);
  EXPECT_EQ(utf8_length("\xED\xA0\x80"), std::nullopt); // a surrogate
  EXPECT_EQ(utf8_length("\xC0\xAF"), std::nullopt);     // overlong
}

TEST(Text, ControlCharactersIncludeNulDelAndC1) {
  EXPECT_TRUE(has_control_character(std::string("a\0b", 3)));
  EXPECT_TRUE(has_control_character("a\x7F"));
  EXPECT_TRUE(has_control_character("a\xC2\x85"));
  EXPECT_FALSE(has_control_character("J\xC3\xBCrgen O'Neil"));
}

} // namespace usher::text
