// Serving the web UI (SPEC §7): which bytes and headers answer a path. A
// pure function of the path, so it is tested without a server; http/
// translates it into a response.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usher::ui {

// Sent with every UI answer. No inline script or style anywhere: the policy
// allows only the UI's own files, no framing, no plugins, no <base>.
inline constexpr std::string_view k_content_security_policy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

struct Page {
  int status = 200;
  std::string content_type;
  std::string_view body; // points into the binary's assets
  std::vector<std::pair<std::string, std::string>> headers;
};

// The answer for GET `path` ("/" or "/assets/..."): the asset with its
// caching and security headers, or a 404 (with the same security headers).
Page page_for(std::string_view path);

} // namespace usher::ui
