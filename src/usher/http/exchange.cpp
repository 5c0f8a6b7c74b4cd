#include <usher/http/exchange.hpp>

#include <exception>

#include <spdlog/spdlog.h>

#include <usher/http/problem.hpp>
#include <usher/util/text.hpp>

namespace usher::http {

std::optional<std::string> HttpRequest::header(std::string_view name) const {
  for (const auto &[field, value] : headers) {
    if (text::iequals(field, name)) return value;
  }
  return std::nullopt;
}

std::string HttpRequest::param(std::string_view name) const {
  for (const auto &[key, value] : params) {
    if (key == name) return value;
  }
  return {};
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  if (!query) return std::nullopt;
  for (const auto &[key, value] : *query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

Response unanswered_response() {
  return Response{500,
                  problem_body(Error{ErrorKind::internal, "internal", "internal error", ""}),
                  "application/problem+json",
                  {}};
}

Responder::Responder(Send send, std::function<void()> finished)
    : m_state(std::make_shared<State>(std::move(send), std::move(finished))) {}

bool Responder::respond(Response response) const { return m_state->respond(std::move(response)); }

bool Responder::State::respond(Response response) {
  if (answered.exchange(true)) {
    spdlog::error("a request was answered twice; the second answer ({}) is dropped",
                  response.status);
    return false;
  }
  try {
    send(std::move(response));
  } catch (const std::exception &e) {
    spdlog::error("sending a response failed: {}", e.what());
  }
  if (finished) finished();
  return true;
}

Responder::State::~State() {
  if (answered.load()) return;
  spdlog::error("a request was never answered (its completion threw or was dropped): 500");
  respond(unanswered_response());
}

} // namespace usher::http
