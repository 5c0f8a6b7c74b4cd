// Unit tests for provisioning/new_user: email normalisation and POST /api/v1/users body validation.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include <usher/provisioning/new_user.hpp>

namespace usher::provisioning {
namespace {

using nlohmann::json;

// A valid address of exactly `length` characters: a 64-character local part
// and a domain of 63-character labels.
std::string email_of_length(std::size_t length) {
  std::string domain;
  std::size_t domain_length = length - 65;
  char label = 'a';
  while (domain_length > 64) {
    domain += std::string(63, label++) + ".";
    domain_length -= 64;
  }
  domain += std::string(domain_length, label);
  return std::string(64, 'l') + "@" + domain;
}

// A body that is valid, with `key` replaced by `value`.
json body_with(const std::string &key, const json &value) {
  json body = {{"email", "buyer@example.com"}, {"full_name", "Buyer"}};
  body[key] = value;
  return body;
}

void expect_error(const Result<NewUser> &result, const std::string &code,
                  const std::string &field) {
  ASSERT_FALSE(result) << "accepted: " << result->to_json().dump();
  EXPECT_EQ(result.error().kind, ErrorKind::invalid);
  EXPECT_EQ(result.error().code, code) << result.error().detail;
  EXPECT_EQ(result.error().field, field) << result.error().detail;
}

TEST(NormaliseEmail, TrimsAndLowerCases) {
  const auto email = normalise_email("   Alice.Smith+Tag@Example.COM  ");
  ASSERT_TRUE(email) << email.error().detail;
  EXPECT_EQ(*email, "alice.smith+tag@example.com");
}

TEST(NormaliseEmail, AcceptsCommonValidAddresses) {
  for (const char *raw : {"a@b.co", "first.last@sub.example.org", "o'neil@example.ie",
                          "x_y-z!#$%&*/=?^`{|}~@ex-ample.com", "1@2.3"}) {
    EXPECT_TRUE(normalise_email(raw)) << raw;
  }
}

TEST(NormaliseEmail, RejectsMalformedAddressesNamingTheEmailField) {
  for (const char *raw : {
           "alice.example.com",         // no @
           "a@@example.com",            // the local part would be "a@"
           "@example.com",              // empty local part
           "alice@",                    // empty domain
           ".alice@example.com",        // leading dot
           "alice.@example.com",        // trailing dot
           "al..ice@example.com",       // double dot
           "alice@localhost",           // domain without a dot
           "alice@example..com",        // empty label
           "alice@.example.com",        // leading dot in the domain
           "alice@example.com.",        // trailing dot in the domain
           "alice@-example.com",        // label with a leading hyphen
           "alice@example-.com",        // label with a trailing hyphen
           "al ice@example.com",        // space in the local part
           "alice@exa mple.com",        // space in the domain
           "al\"ice@example.com",       // a quote is not atext
           "j\xC3\xBCrgen@example.com", // non-ASCII local part
           "alice@m\xC3\xBCnchen.de",   // non-ASCII domain
           "alice@exam_ple.com",        // underscore in the domain
       }) {
    const auto email = normalise_email(raw);
    ASSERT_FALSE(email) << "accepted " << raw;
    EXPECT_EQ(email.error().kind, ErrorKind::invalid) << raw;
    EXPECT_EQ(email.error().code, "email_invalid") << raw;
    EXPECT_EQ(email.error().field, "email") << raw;
  }
}

TEST(NormaliseEmail, RejectsEmptyAndBlank) {
  for (const char *raw : {"", "   "}) {
    const auto email = normalise_email(raw);
    ASSERT_FALSE(email) << "accepted '" << raw << "'";
    EXPECT_EQ(email.error().code, "email_invalid");
    EXPECT_EQ(email.error().field, "email");
  }
}

TEST(NormaliseEmail, LocalPartIsAtMost64Characters) {
  EXPECT_TRUE(normalise_email(std::string(64, 'a') + "@example.com"));
  const auto too_long = normalise_email(std::string(65, 'a') + "@example.com");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, "email_invalid");
}

TEST(NormaliseEmail, DomainLabelIsAtMost63Characters) {
  EXPECT_TRUE(normalise_email("a@" + std::string(63, 'd') + ".com"));
  EXPECT_FALSE(normalise_email("a@" + std::string(64, 'd') + ".com"));
}

TEST(NormaliseEmail, Accepts254CharactersAndRejects255) {
  const std::string longest = email_of_length(254);
  ASSERT_EQ(longest.size(), 254u);
  const auto accepted = normalise_email(longest);
  ASSERT_TRUE(accepted) << accepted.error().detail;
  EXPECT_EQ(*accepted, longest);

  const std::string too_long = email_of_length(255);
  ASSERT_EQ(too_long.size(), 255u);
  const auto rejected = normalise_email(too_long);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().kind, ErrorKind::invalid);
  EXPECT_EQ(rejected.error().code, "field_length");
  EXPECT_EQ(rejected.error().field, "email");
}

TEST(NormaliseEmail, LengthLimitAppliesAfterTrimming) {
  const auto email = normalise_email("   " + email_of_length(254) + "  ");
  ASSERT_TRUE(email) << email.error().detail;
  EXPECT_EQ(email->size(), 254u);
}

TEST(NormaliseEmail, TabsAreControlCharactersNotSpaceToTrim) {
  // SPEC §3: control characters are invalid in every text field; the check
  // comes before trimming, so a tab is rejected rather than trimmed.
  for (const char *raw : {"\talice@example.com", "alice@example.com\t", "\t"}) {
    const auto email = normalise_email(raw);
    ASSERT_FALSE(email) << ::testing::PrintToString(std::string(raw));
    EXPECT_EQ(email.error().code, "email_invalid");
    EXPECT_EQ(email.error().field, "email");
  }
}

TEST(NormaliseEmail, RejectsControlCharacters) {
  for (const std::string &raw :
       {std::string("a\0b@example.com", 15), std::string("a@example.com\n"),
        std::string("a\x7F@example.com"), std::string("a@exa\xC2\x85mple.com")}) {
    const auto email = normalise_email(raw);
    ASSERT_FALSE(email) << ::testing::PrintToString(raw);
    EXPECT_EQ(email.error().code, "email_invalid");
    EXPECT_EQ(email.error().field, "email");
  }
}

TEST(ParseNewUser, AcceptsAFullBodyAndNormalises) {
  const auto user = parse_new_user(json::parse(R"({
    "email": "  Buyer@Example.COM ",
    "full_name": "  J\u00fcrgen O'Neil  ",
    "phone": "+49 30 1234567",
    "product": "Tripwire Pro"
  })"));
  ASSERT_TRUE(user) << user.error().detail;
  EXPECT_EQ(user->email, "buyer@example.com");
  EXPECT_EQ(user->full_name, "J\xC3\xBCrgen O'Neil");
  EXPECT_EQ(user->phone, std::optional<std::string>("+49 30 1234567"));
  EXPECT_EQ(user->product, std::optional<std::string>("Tripwire Pro"));
}

TEST(ParseNewUser, OptionalFieldsMayBeAbsentOrNull) {
  const auto absent = parse_new_user(json{{"email", "a@b.co"}, {"full_name", "A"}});
  ASSERT_TRUE(absent) << absent.error().detail;
  EXPECT_EQ(absent->phone, std::nullopt);
  EXPECT_EQ(absent->product, std::nullopt);

  const auto null = parse_new_user(
      json::parse(R"({"email": "a@b.co", "full_name": "A", "phone": null, "product": null})"));
  ASSERT_TRUE(null) << null.error().detail;
  EXPECT_EQ(null->phone, std::nullopt);
  EXPECT_EQ(null->product, std::nullopt);
  EXPECT_EQ(null->to_json(), (json{{"email", "a@b.co"}, {"full_name", "A"}}));
}

TEST(ParseNewUser, ToJsonCarriesTheSetOptionalFields) {
  const auto user = parse_new_user(body_with("phone", "123"));
  ASSERT_TRUE(user);
  EXPECT_EQ(user->to_json(),
            (json{{"email", "buyer@example.com"}, {"full_name", "Buyer"}, {"phone", "123"}}));
}

TEST(ParseNewUser, InvalidEmailIsReportedAsIs) {
  expect_error(parse_new_user(body_with("email", "no-at-sign")), "email_invalid", "email");
  expect_error(parse_new_user(body_with("email", "a@@b.com")), "email_invalid", "email");
  expect_error(parse_new_user(body_with("email", email_of_length(255))), "field_length", "email");
}

TEST(ParseNewUser, EmailMayCarrySurroundingSpacesBeyondTheLimit) {
  const auto user = parse_new_user(body_with("email", "  " + email_of_length(254) + "  "));
  ASSERT_TRUE(user) << user.error().detail;
  EXPECT_EQ(user->email.size(), 254u);
}

TEST(ParseNewUser, RequiredFieldsMustBePresentAndNotNull) {
  expect_error(parse_new_user(json{{"full_name", "A"}}), "field_required", "email");
  expect_error(parse_new_user(json{{"email", "a@b.co"}}), "field_required", "full_name");
  expect_error(parse_new_user(body_with("email", nullptr)), "field_required", "email");
  expect_error(parse_new_user(body_with("full_name", nullptr)), "field_required", "full_name");
}

TEST(ParseNewUser, WrongTypesNameTheField) {
  expect_error(parse_new_user(body_with("email", 42)), "field_type", "email");
  expect_error(parse_new_user(body_with("full_name", json::array({"A"}))), "field_type",
               "full_name");
  expect_error(parse_new_user(body_with("phone", 5551234)), "field_type", "phone");
  expect_error(parse_new_user(body_with("product", json::object())), "field_type", "product");
  expect_error(parse_new_user(body_with("product", false)), "field_type", "product");
}

TEST(ParseNewUser, FullNameIsTrimmedToOneTo200CodePoints) {
  expect_error(parse_new_user(body_with("full_name", "")), "field_length", "full_name");
  expect_error(parse_new_user(body_with("full_name", "   ")), "field_length", "full_name");

  std::string padded(" ");
  padded.append(200, 'n').append(" ");
  const auto ascii = parse_new_user(body_with("full_name", padded));
  ASSERT_TRUE(ascii) << ascii.error().detail;
  EXPECT_EQ(ascii->full_name, std::string(200, 'n'));
  expect_error(parse_new_user(body_with("full_name", std::string(201, 'n'))), "field_length",
               "full_name");
}

TEST(ParseNewUser, TooLongValuesAreReportedWithTheSpecLimit) {
  // Whatever the length, the detail states the limit of SPEC §3.
  for (const std::size_t length : {201u, 800u, 801u, 5000u}) {
    const auto name = parse_new_user(body_with("full_name", std::string(length, 'n')));
    expect_error(name, "field_length", "full_name");
    if (!name) {
      EXPECT_NE(name.error().detail.find("200"), std::string::npos)
          << length << ": " << name.error().detail;
    }
  }
  for (const std::size_t length : {255u, 2000u}) {
    const auto email =
        parse_new_user(body_with("email", std::string(length - 12, 'e') + "@example.com"));
    ASSERT_FALSE(email);
    EXPECT_EQ(email.error().field, "email");
    EXPECT_NE(email.error().detail.find("254"), std::string::npos)
        << length << ": " << email.error().detail;
  }
}

TEST(ParseNewUser, FullNameCountsMultiByteCharactersOnce) {
  std::string two_byte;  // "é", 2 bytes each
  std::string four_byte; // an emoji, 4 bytes each
  for (int i = 0; i < 200; ++i) {
    two_byte += "\xC3\xA9";
    four_byte += "\xF0\x9F\x98\x80";
  }
  const auto accented = parse_new_user(body_with("full_name", two_byte));
  ASSERT_TRUE(accented) << accented.error().detail;
  EXPECT_EQ(accented->full_name, two_byte);
  EXPECT_TRUE(parse_new_user(body_with("full_name", four_byte)));

  expect_error(parse_new_user(body_with("full_name", two_byte + "\xC3\xA9")), "field_length",
               "full_name");
  expect_error(parse_new_user(body_with("full_name", four_byte + "x")), "field_length",
               "full_name");
}

TEST(ParseNewUser, PhoneIsAtMost32Characters) {
  EXPECT_TRUE(parse_new_user(body_with("phone", std::string(32, '1'))));
  EXPECT_TRUE(parse_new_user(body_with("phone", "")));
  expect_error(parse_new_user(body_with("phone", std::string(33, '1'))), "field_length", "phone");
}

TEST(ParseNewUser, ProductIsAtMost100Characters) {
  EXPECT_TRUE(parse_new_user(body_with("product", std::string(100, 'p'))));
  expect_error(parse_new_user(body_with("product", std::string(101, 'p'))), "field_length",
               "product");
}

TEST(ParseNewUser, ControlCharactersAreRejectedInEveryTextField) {
  // As a client sends them: JSON escapes for NUL, U+001F, DEL and NEL (U+0085).
  for (const char *escaped : {"\\u0000", "\\u001f", "\\u007f", "\\u0085", "\\n", "\\t"}) {
    for (const char *field : {"email", "full_name", "phone", "product"}) {
      json body = {{"email", "buyer@example.com"}, {"full_name", "Buyer"}};
      const std::string value =
          std::string("x") + escaped + (field == std::string("email") ? "@example.com" : "y");
      body[field] = json::parse("\"" + value + "\"");
      SCOPED_TRACE(std::string(field) + " with " + escaped);
      expect_error(parse_new_user(body), "field_invalid", field);
    }
  }
}

TEST(ParseNewUser, InvalidUtf8IsRejectedNamingTheField) {
  expect_error(parse_new_user(body_with("full_name", "Bad \xFF name")), "field_invalid",
               "full_name");
  expect_error(parse_new_user(body_with("phone", "\xC3")), "field_invalid", "phone");
}

TEST(ParseNewUser, UnknownFieldIsRejectedByName) {
  expect_error(parse_new_user(body_with("role", "admin")), "unknown_field", "role");
  // Checked before anything else, even when other fields are also wrong.
  expect_error(parse_new_user(json{{"Email", "a@b.co"}, {"full_name", 1}}), "unknown_field",
               "Email");
}

TEST(ParseNewUser, BodyMustBeAnObject) {
  for (const json &body : {json::array({"a@b.co", "A"}), json("a@b.co"), json(nullptr), json(1)}) {
    SCOPED_TRACE(body.dump());
    expect_error(parse_new_user(body), "body_not_object", "");
  }
}

} // namespace
} // namespace usher::provisioning
