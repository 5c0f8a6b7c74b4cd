// Unit tests for util/json_fields: the strict reader of JSON request objects.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include <usher/util/json_fields.hpp>

namespace usher::json_fields {
namespace {

using nlohmann::json;

TEST(JsonFields, CheckAcceptsAnObjectWithAllowedFieldsOnly) {
  const json body = {{"a", 1}, {"b", "x"}};
  EXPECT_EQ(Reader(body, {"a", "b", "c"}).check(), std::nullopt);
  EXPECT_EQ(Reader(json::object(), {"a"}).check(), std::nullopt);
}

TEST(JsonFields, CheckRejectsAnythingButAnObject) {
  for (const json &body : {json::array({1}), json("text"), json(nullptr), json(3), json(true)}) {
    const auto err = Reader(body, {"a"}).check();
    ASSERT_TRUE(err.has_value()) << body.dump();
    EXPECT_EQ(err->kind, ErrorKind::invalid);
    EXPECT_EQ(err->code, "body_not_object");
    EXPECT_EQ(err->field, "");
  }
}

TEST(JsonFields, CheckNamesAnUnknownField) {
  const json body = {{"a", 1}, {"extra", 2}};
  const auto err = Reader(body, {"a"}).check();
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->kind, ErrorKind::invalid);
  EXPECT_EQ(err->code, "unknown_field");
  EXPECT_EQ(err->field, "extra");
  EXPECT_NE(err->detail.find("\"extra\""), std::string::npos) << err->detail;
}

TEST(JsonFields, CheckDoesNotEchoAnUnprintableUnknownFieldName) {
  const json control = {{std::string("a\x01", 2), 1}};
  const auto err = Reader(control, {"a"}).check();
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, "unknown_field");
  EXPECT_EQ(err->field, "(unprintable)");
  EXPECT_EQ(err->detail, "unknown field");

  const json long_name = {{std::string(65, 'k'), 1}};
  const auto long_err = Reader(long_name, {"a"}).check();
  ASSERT_TRUE(long_err.has_value());
  EXPECT_EQ(long_err->field, "(unprintable)");

  const json limit_name = {{std::string(64, 'k'), 1}};
  const auto limit_err = Reader(limit_name, {"a"}).check();
  ASSERT_TRUE(limit_err.has_value());
  EXPECT_EQ(limit_err->field, std::string(64, 'k'));
}

TEST(JsonFields, RequiredTextReturnsTheValueAsSent) {
  const json body = {{"name", " Zo\xC3\xAB "}};
  const auto value = Reader(body, {"name"}).required_text("name", 1, 10);
  ASSERT_TRUE(value) << value.error().detail;
  EXPECT_EQ(*value, " Zo\xC3\xAB ");
}

TEST(JsonFields, RequiredTextRejectsMissingNullAndNonStrings) {
  const json body = {{"null", nullptr}, {"number", 5}, {"array", json::array()}};
  const Reader reader(body, {"missing", "null", "number", "array"});

  const auto missing = reader.required_text("missing", 1, 10);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "field_required");
  EXPECT_EQ(missing.error().field, "missing");

  const auto null = reader.required_text("null", 1, 10);
  ASSERT_FALSE(null);
  EXPECT_EQ(null.error().code, "field_required");
  EXPECT_EQ(null.error().field, "null");

  for (const char *name : {"number", "array"}) {
    const auto wrong = reader.required_text(name, 1, 10);
    ASSERT_FALSE(wrong) << name;
    EXPECT_EQ(wrong.error().kind, ErrorKind::invalid);
    EXPECT_EQ(wrong.error().code, "field_type");
    EXPECT_EQ(wrong.error().field, name);
  }
}

TEST(JsonFields, RequiredTextCountsCodePointsAgainstItsLimits) {
  const json body = {{"short", ""}, {"exact", "\xC3\xA9\xC3\xA9\xC3\xA9"}, {"long", "abcd"}};
  const Reader reader(body, {"short", "exact", "long"});
  EXPECT_TRUE(reader.required_text("exact", 1, 3)); // 6 bytes, 3 code points

  const auto too_short = reader.required_text("short", 1, 3);
  ASSERT_FALSE(too_short);
  EXPECT_EQ(too_short.error().code, "field_length");
  EXPECT_EQ(too_short.error().field, "short");

  const auto too_long = reader.required_text("long", 1, 3);
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, "field_length");
  EXPECT_EQ(too_long.error().field, "long");
  EXPECT_EQ(too_long.error().detail, "long must be 1 to 3 characters");
}

TEST(JsonFields, OptionalTextTreatsAbsentAndNullAsUnset) {
  const json body = {{"null", nullptr}, {"empty", ""}, {"number", 1}};
  const Reader reader(body, {"absent", "null", "empty", "number"});

  const auto absent = reader.optional_text("absent", 5);
  ASSERT_TRUE(absent);
  EXPECT_EQ(*absent, std::nullopt);

  const auto null = reader.optional_text("null", 5);
  ASSERT_TRUE(null);
  EXPECT_EQ(*null, std::nullopt);

  const auto empty = reader.optional_text("empty", 5);
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, std::optional<std::string>(""));

  const auto number = reader.optional_text("number", 5);
  ASSERT_FALSE(number);
  EXPECT_EQ(number.error().code, "field_type");
  EXPECT_EQ(number.error().field, "number");
}

TEST(JsonFields, CheckTextRejectsControlCharactersAndInvalidUtf8) {
  for (const std::string &value :
       {std::string("a\0b", 3), std::string("a\x1F"), std::string("a\x7F"),
        std::string("a\xC2\x85"), std::string("a\xFF")}) {
    const auto err = check_text(value, "note", 0, 100);
    ASSERT_TRUE(err.has_value()) << ::testing::PrintToString(value);
    EXPECT_EQ(err->kind, ErrorKind::invalid);
    EXPECT_EQ(err->code, "field_invalid");
    EXPECT_EQ(err->field, "note");
  }
  EXPECT_EQ(check_text("fine text", "note", 0, 100), std::nullopt);
}

TEST(JsonFields, CheckTextNamesAnExactLengthWhenMinEqualsMax) {
  const auto err = check_text("abc", "pin", 4, 4);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, "field_length");
  EXPECT_EQ(err->detail, "pin must be 4 characters");
  EXPECT_EQ(check_text("abcd", "pin", 4, 4), std::nullopt);
}

} // namespace
} // namespace usher::json_fields
