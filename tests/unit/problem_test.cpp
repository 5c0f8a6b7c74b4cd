// Unit tests for http/problem: the ErrorKind to HTTP status mapping and RFC 9457 problem bodies.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/http/problem.hpp>

namespace usher::http {
namespace {

using nlohmann::json;

TEST(Problem, StatusForEveryErrorKind) {
  const std::vector<std::pair<ErrorKind, int>> expected = {
      {ErrorKind::invalid, 400},
      {ErrorKind::unauthenticated, 401},
      {ErrorKind::forbidden, 403},
      {ErrorKind::not_found, 404},
      {ErrorKind::method_not_allowed, 405},
      {ErrorKind::conflict, 409},
      {ErrorKind::too_large, 413},
      {ErrorKind::unsupported_media, 415},
      {ErrorKind::unprocessable, 422},
      {ErrorKind::unavailable, 503},
      {ErrorKind::timeout, 503},
      {ErrorKind::internal, 500},
  };
  for (const auto &[kind, status] : expected) {
    EXPECT_EQ(status_for(kind), status) << "ErrorKind " << static_cast<int>(kind);
  }
}

TEST(Problem, ReasonPhrasesOfTheStatusesUsherSends) {
  EXPECT_STREQ(reason_phrase(400), "Bad Request");
  EXPECT_STREQ(reason_phrase(413), "Content Too Large");
  EXPECT_STREQ(reason_phrase(422), "Unprocessable Content");
  EXPECT_STREQ(reason_phrase(503), "Service Unavailable");
  EXPECT_STREQ(reason_phrase(599), "Unknown");
}

TEST(Problem, BodyHasTheRfc9457KeysAndTheField) {
  const Error error{ErrorKind::invalid, "field_length", "phone must be 0 to 32 characters",
                    "phone"};
  const json body = json::parse(problem_body(error));
  EXPECT_EQ(body, (json{{"type", "https://usher.invalid/problems/field_length"},
                        {"title", "Bad Request"},
                        {"status", 400},
                        {"detail", "phone must be 0 to 32 characters"},
                        {"code", "field_length"},
                        {"field", "phone"}}));
}

TEST(Problem, BodyLeavesOutAnEmptyField) {
  const Error error{ErrorKind::conflict, "user_exists", "already there", ""};
  const json body = json::parse(problem_body(error));
  EXPECT_FALSE(body.contains("field")) << body.dump();
  EXPECT_EQ(body.size(), 5u) << body.dump();
  EXPECT_EQ(body.at("status"), 409);
  EXPECT_EQ(body.at("title"), "Conflict");
  EXPECT_EQ(body.at("code"), "user_exists");
  EXPECT_EQ(body.at("type"), "https://usher.invalid/problems/user_exists");
}

TEST(Problem, BodyStatusFollowsTheKind) {
  for (const ErrorKind kind :
       {ErrorKind::unauthenticated, ErrorKind::timeout, ErrorKind::internal}) {
    const json body = json::parse(problem_body(Error{kind, "c", "d", ""}));
    EXPECT_EQ(body.at("status"), status_for(kind));
    EXPECT_EQ(body.at("title"), reason_phrase(status_for(kind)));
  }
}

TEST(Problem, BodyWithoutACodeUsesError) {
  const json body = json::parse(problem_body(Error{ErrorKind::internal, "", "boom", ""}));
  EXPECT_EQ(body.at("code"), "error");
  EXPECT_EQ(body.at("type"), "https://usher.invalid/problems/error");
}

TEST(Problem, BodyWithInvalidUtf8DoesNotThrow) {
  const Error error{ErrorKind::invalid, "field_invalid", "bad bytes: \xFF\xFE\xC3", "na\xFFme"};
  std::string text;
  ASSERT_NO_THROW(text = problem_body(error));
  json body;
  ASSERT_NO_THROW(body = json::parse(text)) << text;
  const std::string detail = body.at("detail");
  EXPECT_EQ(detail.rfind("bad bytes: ", 0), 0u) << detail;
  EXPECT_NE(detail.find("\xEF\xBF\xBD"), std::string::npos) << detail; // U+FFFD
  EXPECT_EQ(body.at("status"), 400);
}

} // namespace
} // namespace usher::http
