// Pure formatting of Telegram alerts (see message.hpp for the contracts).
#include <usher/alerts/message.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include <fmt/format.h>

namespace usher::alerts {
namespace {

constexpr const char *k_redacted = "[redacted]";
constexpr const char *k_replacement_character = "\xEF\xBF\xBD";

// Key fragments that mark a value as secret (compared in lower case).
constexpr std::array<std::string_view, 10> k_secret_keys = {
    "token",   "password", "passwd", "secret",     "authorization",
    "api_key", "apikey",   "cookie", "credential", "private_key"};

// Shortest usher token (prefix included) and bot token secret that are
// redacted inside free text; shorter runs are ordinary words.
constexpr std::size_t k_min_usher_token = 26;
constexpr std::size_t k_min_bot_id_digits = 6;
constexpr std::size_t k_min_bot_secret = 30;

// Length of the well-formed UTF-8 sequence at `pos` and its code point;
// 0 when the bytes there are not one.
std::size_t utf8_sequence(std::string_view s, std::size_t pos, char32_t &cp) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  std::size_t len = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (pos + len > s.size()) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool starts_with_ascii_ci(std::string_view s, std::size_t pos, std::string_view prefix) {
  if (pos + prefix.size() > s.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[pos + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool is_secret_key(const std::string &key) {
  std::string lower = key;
  for (char &c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return std::any_of(k_secret_keys.begin(), k_secret_keys.end(), [&](std::string_view fragment) {
    return lower.find(fragment) != std::string::npos;
  });
}

// One unit of Telegram HTML: a tag, an entity, or one character of text.
struct Token {
  enum class Type { tag, entity, text } type = Type::text;
  std::size_t size = 0;  // bytes
  std::size_t units = 0; // visible UTF-16 code units
};

Token next_token(std::string_view html, std::size_t pos) {
  const char c = html[pos];
  if (c == '<') {
    const auto close = html.find('>', pos);
    const auto next_open = html.find('<', pos + 1);
    if (close != std::string_view::npos &&
        (next_open == std::string_view::npos || close < next_open)) {
      return Token{Token::Type::tag, close - pos + 1, 0};
    }
  } else if (c == '&') {
    const auto semicolon = html.find(';', pos);
    if (semicolon != std::string_view::npos && semicolon - pos >= 2 && semicolon - pos <= 10) {
      const auto body = html.substr(pos + 1, semicolon - pos - 1);
      const bool plausible = std::all_of(body.begin(), body.end(), [](char b) {
        return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
               b == '#';
      });
      if (plausible) return Token{Token::Type::entity, semicolon - pos + 1, 1};
    }
  }
  char32_t cp = 0;
  const std::size_t len = utf8_sequence(html, pos, cp);
  if (len == 0) return Token{Token::Type::text, 1, 1};
  return Token{Token::Type::text, len, cp >= 0x10000 ? 2u : 1u};
}

// "b" for "<b>", "</b>" or "<a href=…>".
std::string_view tag_name(std::string_view tag) {
  std::size_t start = 1;
  if (start < tag.size() && tag[start] == '/') ++start;
  std::size_t end = start;
  while (end < tag.size() && (is_token_char(tag[end]))) ++end;
  return tag.substr(start, end - start);
}

std::string pretty_details(const nlohmann::json &details) {
  return redact(details).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool has_details(const nlohmann::json &details) {
  return !details.is_null() && !details.is_discarded() && !(details.is_object() && details.empty());
}

// The common layout: a head line, body lines, the labelled fields, and the
// details block; every argument is plain text and escaped here.
struct Layout {
  std::string emoji;
  std::string title;
  std::string subtitle; // plain text after the title ("" for none)
  std::vector<std::string> body;
  std::vector<std::pair<std::string, std::string>> fields;
  nlohmann::json details;
};

std::string render(const Layout &layout) {
  std::string html = layout.emoji + " <b>" + escape_html(layout.title) + "</b>";
  if (!layout.subtitle.empty()) html += " " + escape_html(layout.subtitle);
  html += "\n";
  for (const auto &line : layout.body) html += escape_html(line) + "\n";
  html += "\n";
  for (const auto &[label, value] : layout.fields) {
    html += "<b>" + escape_html(label) + ":</b> " + escape_html(value) + "\n";
  }
  if (has_details(layout.details)) {
    html += "<b>Details:</b>\n<pre>" + escape_html(pretty_details(layout.details)) + "</pre>";
  }
  while (!html.empty() && html.back() == '\n') html.pop_back();
  const std::size_t total = visible_length(html);
  const std::string notice = escape_html(fmt::format(
      "\n\u2702\uFE0F truncated: the message had {} characters and Telegram shows at most {}; "
      "the health log has the whole event",
      total, k_message_limit));
  return truncate_html(html, k_message_limit, notice);
}

std::string event_field(std::int64_t id) { return id > 0 ? fmt::format("#{}", id) : ""; }

} // namespace

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else {
      char32_t cp = 0;
      const std::size_t len = utf8_sequence(text, pos, cp);
      if (len == 0) {
        out += k_replacement_character;
        ++pos;
        continue;
      }
      out.append(text.substr(pos, len));
      pos += len;
      continue;
    }
    ++pos;
  }
  return out;
}

nlohmann::json redact(const nlohmann::json &details) {
  if (details.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto &[key, value] : details.items()) {
      out[key] = is_secret_key(key) ? nlohmann::json(k_redacted) : redact(value);
    }
    return out;
  }
  if (details.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto &value : details) out.push_back(redact(value));
    return out;
  }
  if (details.is_string()) return scrub_secrets(details.get_ref<const std::string &>());
  return details;
}

std::string scrub_secrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  const auto run_of_token_chars = [&](std::size_t from) {
    std::size_t end = from;
    while (end < text.size() && is_token_char(text[end])) ++end;
    return end;
  };
  while (i < text.size()) {
    const bool word_start = i == 0 || !is_token_char(text[i - 1]);
    if (word_start && starts_with_ascii_ci(text, i, "bearer ")) {
      std::size_t j = i + 7;
      while (j < text.size() && text[j] == ' ') ++j;
      std::size_t end = j;
      while (end < text.size() &&
             (is_token_char(text[end]) || text[end] == '.' || text[end] == '~' ||
              text[end] == '+' || text[end] == '/' || text[end] == '=')) {
        ++end;
      }
      if (end > j) {
        out.append(text.substr(i, 7));
        out += k_redacted;
        i = end;
        continue;
      }
    }
    if (word_start && text.compare(i, 6, "usher_") == 0) {
      const std::size_t end = run_of_token_chars(i);
      if (end - i >= k_min_usher_token) {
        out += k_redacted;
        i = end;
        continue;
      }
    }
    if (word_start && is_digit(text[i])) {
      std::size_t digits = i;
      while (digits < text.size() && is_digit(text[digits])) ++digits;
      if (digits - i >= k_min_bot_id_digits && digits < text.size() && text[digits] == ':') {
        const std::size_t end = run_of_token_chars(digits + 1);
        if (end - (digits + 1) >= k_min_bot_secret) {
          out += k_redacted;
          i = end;
          continue;
        }
      }
      out.append(text.substr(i, digits - i));
      i = digits;
      continue;
    }
    out += text[i];
    ++i;
  }
  return out;
}

std::string mask(std::string_view text, std::string_view secret) {
  std::string out(text);
  if (secret.empty()) return out;
  for (auto pos = out.find(secret); pos != std::string::npos; pos = out.find(secret, pos + 3)) {
    out.replace(pos, secret.size(), "***");
  }
  return out;
}

std::size_t visible_length(std::string_view html) {
  std::size_t units = 0;
  for (std::size_t pos = 0; pos < html.size();) {
    const Token token = next_token(html, pos);
    units += token.units;
    pos += token.size;
  }
  return units;
}

std::string truncate_html(std::string_view html, std::size_t limit, std::string_view notice_html) {
  if (visible_length(html) <= limit) return std::string(html);
  const std::size_t notice_units = visible_length(notice_html);
  const std::size_t budget = limit > notice_units ? limit - notice_units : 0;

  struct Open {
    std::string name;
    std::size_t begin = 0; // where its start tag begins in `out`
    std::size_t end = 0;   // where its start tag ends in `out`
  };
  std::vector<Open> open;
  std::string out;
  std::size_t used = 0;
  for (std::size_t pos = 0; pos < html.size();) {
    const Token token = next_token(html, pos);
    const auto piece = html.substr(pos, token.size);
    if (token.type == Token::Type::tag) {
      const auto name = tag_name(piece);
      if (piece.size() > 1 && piece[1] == '/') {
        if (!open.empty() && open.back().name == name) open.pop_back();
        out.append(piece);
      } else {
        const std::size_t begin = out.size();
        out.append(piece);
        open.push_back(Open{std::string(name), begin, out.size()});
      }
    } else {
      if (used + token.units > budget) break;
      out.append(piece);
      used += token.units;
    }
    pos += token.size;
  }
  for (auto it = open.rbegin(); it != open.rend(); ++it) {
    if (out.size() == it->end) {
      out.resize(it->begin); // nothing inside: drop the empty element
    } else {
      out += "</" + it->name + ">";
    }
  }
  out.append(notice_html);
  return out;
}

std::string format_event(const EventAlert &alert) {
  Layout layout;
  layout.emoji = emoji(alert.kind);
  layout.title = to_string(alert.kind);
  layout.body = {alert.message};
  layout.fields = {{"Time", alert.time}, {"Instance", alert.instance}};
  if (alert.event_id > 0) layout.fields.emplace_back("Event", event_field(alert.event_id));
  layout.details = alert.details;
  // The request that caused it (X-Request-Id) gets a line of its own: the
  // id to search the logs and the API's answers for.
  if (layout.details.is_object()) {
    const auto request = layout.details.find("request_id");
    if (request != layout.details.end() && request->is_string()) {
      layout.fields.emplace_back("Request", request->get<std::string>());
      layout.details.erase(request);
    }
  }
  return render(layout);
}

std::string repeats_line(long long repeats, std::chrono::milliseconds window) {
  const std::string span =
      window < std::chrono::seconds(1)
          ? fmt::format("{} ms", window.count())
          : fmt::format("{} s", std::llround(static_cast<double>(window.count()) / 1000.0));
  return fmt::format("\u2026and {} more in the last {}", repeats, span);
}

std::string format_summary(const RepeatSummary &summary) {
  Layout layout;
  layout.emoji = emoji(summary.kind);
  layout.title = to_string(summary.kind);
  layout.subtitle = "(repeated)";
  layout.body = {repeats_line(summary.repeats, summary.window),
                 "Latest: " + summary.latest_message};
  layout.fields = {{"Time", summary.time}, {"Instance", summary.instance}};
  if (summary.event_id > 0) layout.fields.emplace_back("Event", event_field(summary.event_id));
  layout.details = summary.latest_details;
  return render(layout);
}

std::string format_resolved(const ResolvedNotice &notice) {
  Layout layout;
  layout.emoji = emoji(AlertKind::resolved);
  layout.title = to_string(AlertKind::resolved);
  layout.body = {notice.message};
  layout.fields = {{"Time", notice.time}, {"Instance", notice.instance}};
  if (!notice.critical_since.empty()) {
    layout.fields.emplace_back("CRITICAL since", notice.critical_since);
  }
  if (!notice.critical_message.empty()) layout.fields.emplace_back("Was", notice.critical_message);
  if (notice.event_id > 0) layout.fields.emplace_back("Event", event_field(notice.event_id));
  layout.details = notice.details;
  return render(layout);
}

std::string format_test(const std::string &time, const std::string &instance) {
  Layout layout;
  layout.emoji = "\U0001F9EA"; // test tube
  layout.title = "TEST";
  layout.body = {"usher alerts test: this chat receives usher's alerts."};
  layout.fields = {{"Time", time}, {"Instance", instance}};
  return render(layout);
}

} // namespace usher::alerts
