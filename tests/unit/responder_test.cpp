// Unit tests for http::Responder (http/exchange.hpp): one answer per
// request, and a 500 problem when a completion throws or is dropped.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/http/exchange.hpp>

namespace usher::http {
namespace {

// What a Responder sent, and how often it finished.
struct Sent {
  std::vector<Response> responses;
  int finished = 0;

  Responder responder() {
    return Responder([this](Response r) { responses.push_back(std::move(r)); },
                     [this] { ++finished; });
  }
};

TEST(ResponderTest, AnswersOnceAndDropsLaterAnswers) {
  Sent sent;
  {
    const auto responder = sent.responder();
    const auto copy = responder;
    EXPECT_TRUE(responder.respond(Response{201, "{}", "application/json", {}}));
    EXPECT_FALSE(copy.respond(Response{500, "", "application/json", {}}));
    EXPECT_TRUE(copy.answered());
  }
  ASSERT_EQ(sent.responses.size(), 1u);
  EXPECT_EQ(sent.responses[0].status, 201);
  EXPECT_EQ(sent.finished, 1);
}

TEST(ResponderTest, ADroppedCompletionIsA500Problem) {
  Sent sent;
  {
    const auto responder = sent.responder();
    // A queue that drops its work without running it.
    std::function<void()> completion = [responder] { responder.respond(Response{}); };
    completion = nullptr;
    EXPECT_TRUE(sent.responses.empty()) << "the handler still holds a copy";
  }
  ASSERT_EQ(sent.responses.size(), 1u);
  EXPECT_EQ(sent.responses[0].status, 500);
  EXPECT_EQ(sent.responses[0].content_type, "application/problem+json");
  EXPECT_EQ(nlohmann::json::parse(sent.responses[0].body)["code"], "internal");
  EXPECT_EQ(sent.finished, 1);
}

TEST(ResponderTest, ACompletionThatThrowsBeforeAnsweringIsA500Problem) {
  Sent sent;
  auto completion = [responder = sent.responder()](bool ok) {
    if (!ok) throw std::runtime_error("bug in a completion");
    responder.respond(Response{200, "{}", "application/json", {}});
  };
  auto run = std::move(completion);
  EXPECT_THROW(run(false), std::runtime_error);
  EXPECT_TRUE(sent.responses.empty());
  { auto gone = std::move(run); } // the writer drops the completion after it threw
  ASSERT_EQ(sent.responses.size(), 1u);
  EXPECT_EQ(sent.responses[0].status, 500);
  EXPECT_EQ(sent.finished, 1);
}

TEST(ResponderTest, ASendThatThrowsStillFinishes) {
  int finished = 0;
  {
    Responder responder([](Response) { throw std::runtime_error("connection gone"); },
                        [&finished] { ++finished; });
    EXPECT_TRUE(responder.respond(Response{}));
  }
  EXPECT_EQ(finished, 1);
}

} // namespace
} // namespace usher::http
