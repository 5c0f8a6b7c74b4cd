#include <usher/util/postgres_url.hpp>

#include <cctype>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace usher::postgres_url {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// libpq conninfo quoting: single quotes, with \ and ' escaped.
std::string quoted(const std::string &value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string scheme_of(const std::string &url) {
  for (const char *scheme : {"postgresql://", "postgres://"}) {
    if (url.rfind(scheme, 0) == 0) return scheme;
  }
  return {};
}

tl::unexpected<Error> invalid(std::string detail) {
  return fail(ErrorKind::invalid, "invalid_database_url", std::move(detail));
}

} // namespace

Result<std::string> to_conninfo(const std::string &url, int default_connect_timeout_s) {
  const std::string scheme = scheme_of(url);
  if (scheme.empty()) return invalid("must start with postgresql:// or postgres://");
  std::string rest = url.substr(scheme.size());

  std::string query;
  if (const auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  std::string path;
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest.resize(slash);
  }
  // The password may contain '@' only percent-encoded; the last '@' ends
  // the user information either way.
  std::string userinfo;
  if (const auto at = rest.rfind('@'); at != std::string::npos) {
    userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  std::string user_raw = userinfo;
  std::optional<std::string> password_raw;
  if (const auto colon = userinfo.find(':'); colon != std::string::npos) {
    user_raw = userinfo.substr(0, colon);
    password_raw = userinfo.substr(colon + 1);
  }
  std::string host = rest;
  std::string port;
  if (!host.empty() && host.front() == '[') { // [IPv6]:port
    const auto close = host.find(']');
    if (close == std::string::npos) return invalid("has an unclosed '[' in the host");
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return invalid("has text after the IPv6 address");
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  if (!port.empty()) {
    for (char c : port) {
      if (std::isdigit(static_cast<unsigned char>(c)) == 0)
        return invalid("has a port that is not a number (characters such as / ? @ : in the "
                       "password must be percent-encoded)");
    }
    if (port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535)
      return invalid("has a port out of range (1 to 65535)");
  }

  std::vector<std::pair<std::string, std::string>> params;
  // Errors never echo the URL's text: a misplaced character may be part of
  // the password.
  const auto decoded = [&](const std::string &raw, const char *what) -> Result<std::string> {
    auto value = percent_decode(raw);
    if (!value) {
      return invalid(fmt::format("has a bad percent-escape in the {}", what));
    }
    return *value;
  };
  if (!host.empty()) {
    auto h = decoded(host, "host");
    if (!h) return tl::unexpected(h.error());
    params.emplace_back("host", *h);
  }
  if (!port.empty()) params.emplace_back("port", port);
  if (!user_raw.empty()) {
    auto u = decoded(user_raw, "user name");
    if (!u) return tl::unexpected(u.error());
    params.emplace_back("user", *u);
  }
  if (password_raw) {
    auto p = decoded(*password_raw, "password");
    if (!p) return tl::unexpected(p.error());
    params.emplace_back("password", *p);
  }
  if (!path.empty()) {
    auto d = decoded(path, "database name");
    if (!d) return tl::unexpected(d.error());
    params.emplace_back("dbname", *d);
  }
  bool has_connect_timeout = false;
  std::size_t start = 0;
  while (start < query.size()) {
    auto amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    const std::string piece = query.substr(start, amp - start);
    start = amp + 1;
    if (piece.empty()) continue;
    const auto eq = piece.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalid("has a query parameter without a value (write key=value)");
    const std::string key = piece.substr(0, eq);
    for (char c : key) {
      if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_')
        return invalid("has a query parameter whose name is not letters, digits and _");
    }
    auto value = decoded(piece.substr(eq + 1), "query parameter");
    if (!value) return tl::unexpected(value.error());
    if (key == "connect_timeout") has_connect_timeout = true;
    params.emplace_back(key, *value);
  }
  if (!has_connect_timeout && default_connect_timeout_s > 0)
    params.emplace_back("connect_timeout", std::to_string(default_connect_timeout_s));

  std::string conninfo;
  for (const auto &[key, value] : params) {
    if (!conninfo.empty()) conninfo += ' ';
    conninfo += key + "=" + quoted(value);
  }
  return conninfo;
}

std::string redacted(const std::string &url) {
  // Any scheme (a mistyped one too), and generous: everything from the first
  // ':' after "scheme://" to the last '@' goes, so a password holding an
  // unencoded '/', '?' or '@' is still hidden.
  const auto start = url.find("://");
  if (start == std::string::npos) return url;
  const auto user_start = start + 3;
  std::string out = url;
  const auto at = url.rfind('@');
  const auto colon = url.find(':', user_start);
  if (at != std::string::npos && at > user_start && colon != std::string::npos && colon < at)
    out.replace(colon + 1, at - colon - 1, "***");
  // password=... and sslpassword=... in the query.
  for (const char *key : {"?password=", "&password=", "?sslpassword=", "&sslpassword="}) {
    for (auto pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + 1)) {
      const auto value = pos + std::string(key).size();
      const auto end = out.find('&', value);
      out.replace(value, end == std::string::npos ? std::string::npos : end - value, "***");
    }
  }
  return out;
}

} // namespace usher::postgres_url
