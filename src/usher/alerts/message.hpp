// The text of Telegram alerts, as pure functions: HTML escaping, redaction
// of secrets, Telegram's length after entity parsing, truncation that never
// cuts a tag or an entity, and the message of each kind of alert.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <usher/alerts/policy.hpp>

namespace usher::alerts {

// Telegram's limit for a message, in characters after entity parsing.
inline constexpr std::size_t k_message_limit = 4096;

// `text` for Telegram's HTML parse mode: <, > and & become entities and
// invalid UTF-8 becomes U+FFFD, so any input is safe between tags.
std::string escape_html(std::string_view text);

// `details` with the value of every key that names a secret (token,
// password, secret, authorization, api key, cookie, credential; any case,
// anywhere in the key) replaced by "[redacted]", at any depth, and with
// scrub_secrets() applied to every string.
nlohmann::json redact(const nlohmann::json &details);

// `text` with bearer credentials, usher tokens (usher_…) and Telegram bot
// tokens (digits:secret) replaced by "[redacted]".
std::string scrub_secrets(std::string_view text);

// `text` with every occurrence of `secret` replaced by "***" (for log lines
// that might carry the bot token, such as a URL). `secret` empty: unchanged.
std::string mask(std::string_view text, std::string_view secret);

// The length Telegram counts for `html` after entity parsing: tags count
// nothing, an entity one character, text its UTF-16 code units (an emoji
// outside the BMP counts two, as Telegram does).
std::size_t visible_length(std::string_view html);

// `html` unchanged when visible_length(html) <= `limit`; otherwise cut so
// that the result, `notice_html` included, is at most `limit` characters:
// never inside a tag, an entity or a UTF-8 sequence, every tag still open
// at the cut closed (an element left empty is dropped), then `notice_html`
// appended.
std::string truncate_html(std::string_view html, std::size_t limit, std::string_view notice_html);

// An alert for one event.
struct EventAlert {
  AlertKind kind = AlertKind::critical;
  std::string message;
  std::string time; // ISO 8601 UTC, as stored in the health log
  std::string instance;
  nlohmann::json details;    // metadata of the event; redacted here
  std::int64_t event_id = 0; // health log id (0: none)
};

// 🚨 CRITICAL / 🔀 SWITCH / ❌ ERROR message: kind, message, time,
// instance, event id and the details as pretty JSON in <pre>; at most
// k_message_limit characters, truncated with a notice when longer.
std::string format_event(const EventAlert &alert);

// "…and 57 more in the last 60 s" (under a second: "in the last 500 ms").
std::string repeats_line(long long repeats, std::chrono::milliseconds window);

// The summary sent when a throttling window ends with `repeats` folded
// repeats; names the latest of them.
struct RepeatSummary {
  AlertKind kind = AlertKind::critical;
  long long repeats = 0;
  std::chrono::milliseconds window{0};
  std::string latest_message;
  nlohmann::json latest_details;
  std::string time; // when the window ended
  std::string instance;
  std::int64_t event_id = 0; // the health log row of the latest repeat (0: none)
};
std::string format_summary(const RepeatSummary &summary);

// ✅ RESOLVED notice for a CRITICAL condition that cleared.
struct ResolvedNotice {
  std::string message;
  std::string time;
  std::string instance;
  nlohmann::json details;
  std::string critical_since;   // when the condition was first alerted
  std::string critical_message; // the latest CRITICAL message
  std::int64_t event_id = 0;
};
std::string format_resolved(const ResolvedNotice &notice);

// The message of `usher alerts test`.
std::string format_test(const std::string &time, const std::string &instance);

} // namespace usher::alerts
