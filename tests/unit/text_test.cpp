// Unit tests for util/text: trimming, ASCII case, UTF-8 length, control characters and hex.
#include <gtest/gtest.h>

#include <string>

#include <usher/util/text.hpp>

namespace usher::text {

TEST(Text, TrimRemovesSpacesAndTabsOnly) {
  EXPECT_EQ(trim("  a b\t"), "a b");
  EXPECT_EQ(trim("\n a"), "\n a");
  EXPECT_EQ(trim(" \t \t"), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("a"), "a");
}

TEST(Text, AsciiLowerChangesAsciiLettersOnly) {
  EXPECT_EQ(ascii_lower("MiXeD@Example.COM"), "mixed@example.com");
  // "Ä" (C3 84) keeps its bytes: only A-Z are lower-cased.
  EXPECT_EQ(ascii_lower("\xC3\x84Z"), "\xC3\x84z");
  EXPECT_EQ(ascii_lower("[@]`{"), "[@]`{"); // the neighbours of A-Z and a-z
}

TEST(Text, Utf8LengthCountsCodePointsAndRejectsInvalid) {
  EXPECT_EQ(utf8_length("h\xC3\xA9llo"), 5u);
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("\xE2\x82\xAC"), 1u);     // euro sign, 3 bytes
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80"), 1u); // emoji, 4 bytes
  EXPECT_EQ(utf8_length("\xF4\x8F\xBF\xBF"), 1u); // U+10FFFF, the last code point
  EXPECT_EQ(utf8_length("\xC3"), std::nullopt);
  EXPECT_EQ(utf8_length("\xED\xA0\x80"), std::nullopt);     // a surrogate
  EXPECT_EQ(utf8_length("\xC0\xAF"), std::nullopt);         // overlong
  EXPECT_EQ(utf8_length("\xF4\x90\x80\x80"), std::nullopt); // past U+10FFFF
  EXPECT_EQ(utf8_length("\x80"), std::nullopt);             // a lone continuation byte
  EXPECT_EQ(utf8_length("\xFF"), std::nullopt);
  EXPECT_EQ(utf8_length("\xE2\x82"), std::nullopt); // truncated
}

TEST(Text, ControlCharactersIncludeNulDelAndC1) {
  EXPECT_TRUE(has_control_character(std::string("a\0b", 3)));
  EXPECT_TRUE(has_control_character("a\x7F"));
  EXPECT_TRUE(has_control_character("a\xC2\x85"));
  EXPECT_TRUE(has_control_character("a\x1F"));
  EXPECT_TRUE(has_control_character("a\tb"));
  EXPECT_TRUE(has_control_character("\xC2\x9F"));  // U+009F, the last C1 control
  EXPECT_FALSE(has_control_character("\xC2\xA0")); // U+00A0, no-break space
  EXPECT_FALSE(has_control_character("J\xC3\xBCrgen O'Neil"));
  EXPECT_FALSE(has_control_character(""));
}

TEST(Text, InvalidUtf8CountsAsAControlCharacter) {
  EXPECT_TRUE(has_control_character("ok\xFF"));
  EXPECT_TRUE(has_control_character("\xC3"));
}

TEST(Text, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Bearer", "bEARER"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("Bearer", "Bearer "));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("\xC3\x84", "\xC3\xA4")); // Ä and ä differ outside ASCII
}

TEST(Text, ToHexRendersEveryByteAsTwoLowerCaseDigits) {
  EXPECT_EQ(to_hex(""), "");
  EXPECT_EQ(to_hex(std::string("\x00\x0F\xA5\xFF", 4)), "000fa5ff");
  EXPECT_EQ(to_hex("AZ"), "415a");
}

} // namespace usher::text
