// The answer side of one HTTP exchange, without RESTinio: a Response value
// and the Responder that sends it exactly once. Every copy of a Responder
// shares one answer; when the last copy goes away unanswered (a completion
// threw, or was dropped by a queue), the client gets a 500 problem and the
// request stops counting as in flight.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usher::http {

using NameValues = std::vector<std::pair<std::string, std::string>>;

// One request as the handlers see it: plain values, filled by the server
// (http/server.cpp) from the wire, or by a test.
struct HttpRequest {
  std::string method; // "GET", "POST", ...
  std::string path;   // without the query
  NameValues headers;
  std::string body;
  std::string remote_address;
  // The query's parameters, decoded, in order; nullopt when the query is not
  // a valid query string.
  std::optional<NameValues> query = NameValues{};
  // The route's named parameters (":id").
  NameValues params;
  // The matched route's template ("/api/v1/jobs/:id"); empty when none
  // matched. The metrics' route label: bounded, never the path itself.
  std::string route;
  // The request's id (X-Request-Id: the caller's when usable, else a new
  // one; util/request_id.hpp). It goes into the job and its events.
  std::string request_id;

  // The first header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  // The route parameter `name`; empty when there is none.
  std::string param(std::string_view name) const;
  // The first query parameter `name`; nullopt when absent or the query is
  // not valid.
  std::optional<std::string> query_param(std::string_view name) const;
};

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
