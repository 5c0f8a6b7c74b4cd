#include <usher/http/problem.hpp>

#include <nlohmann/json.hpp>

namespace usher::http {

int status_for(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid: return 400;
  case ErrorKind::unauthenticated: return 401;
  case ErrorKind::forbidden: return 403;
  case ErrorKind::not_found: return 404;
  case ErrorKind::method_not_allowed: return 405;
  case ErrorKind::conflict: return 409;
  case ErrorKind::too_large: return 413;
  case ErrorKind::unsupported_media: return 415;
  case ErrorKind::unprocessable: return 422;
  case ErrorKind::too_many_requests: return 429;
  case ErrorKind::unavailable:
  case ErrorKind::timeout: return 503;
  case ErrorKind::internal: return 500;
  }
  return 500;
}

const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

std::string problem_body(const Error &error) {
  const int status = status_for(error.kind);
  const std::string code = error.code.empty() ? "error" : error.code;
  nlohmann::json body = {{"type", "https://usher.invalid/problems/" + code},
                         {"title", reason_phrase(status)},
                         {"status", status},
                         {"detail", error.detail},
                         {"code", code}};
  if (!error.field.empty()) body["field"] = error.field;
  // Details may echo client bytes: never fail on invalid UTF-8.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace usher::http
