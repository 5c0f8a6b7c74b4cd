// The answer side of one HTTP exchange, without RESTinio: a Response value
// and the Responder that sends it exactly once. Every copy of a Responder
// shares one answer; when the last copy goes away unanswered (a completion
// threw, or was dropped by a queue), the client gets a 500 problem and the
// request stops counting as in flight.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace usher::http {

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// The 500 problem a request gets when nothing else answered it.
Response unanswered_response();

class Responder {
public:
  using Send = std::function<void(Response)>;

  // `send` writes the response (on any thread); `finished` runs once after
  // it (the in-flight count).
  Responder(Send send, std::function<void()> finished);

  // Sends `response` unless this exchange was answered already; true when
  // this call answered it.
  bool respond(Response response) const;

  bool answered() const { return m_state->answered.load(); }

private:
  struct State {
    State(Send s, std::function<void()> f) : send(std::move(s)), finished(std::move(f)) {}
    ~State();
    State(const State &) = delete;
    State &operator=(const State &) = delete;
    bool respond(Response response);

    Send send;
    std::function<void()> finished;
    std::atomic<bool> answered{false};
  };
  std::shared_ptr<State> m_state;
};

} // namespace usher::http
