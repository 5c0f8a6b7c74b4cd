// The Telegram Bot API client: sendMessage over libcurl with one reused
// handle (keep-alive, one TLS handshake), connect and total timeouts, and
// the interpretation of the Bot API's answers. One client per thread.
// libcurl is loaded by the first send (util/curl_library.hpp), not by the
// client's construction.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

struct curl_slist;

namespace usher::curl {
struct Library;
} // namespace usher::curl

namespace usher::alerts {

struct TelegramSettings {
  std::string api_url; // TELEGRAM_API_URL, without a trailing slash
  std::string bot_token;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds timeout{5000};
};

// What one sendMessage came to.
struct SendResult {
  enum class Outcome {
    delivered,    // 200 ok
    rate_limited, // 429: wait retry_after
    migrated,     // the group became the supergroup migrate_to_chat_id
    rejected,     // 400, 401, 403, 404: retrying cannot help
    failed,       // network error, timeout, 5xx or an unreadable answer: retry
    aborted,      // the caller asked to stop mid-request
  };
  Outcome outcome = Outcome::failed;
  long http_status = 0;    // 0 when no answer arrived
  std::string description; // Telegram's description, or what went wrong
  std::chrono::seconds retry_after{0};
  std::string migrate_to_chat_id;
};

const char *to_string(SendResult::Outcome outcome);

namespace detail {
// What libcurl's callbacks see of the request in progress.
struct Transfer {
  std::string answer;
  const std::atomic<bool> *abort = nullptr;
};
} // namespace detail

// Reads a Bot API answer: `http_status` and its JSON `body`.
SendResult interpret_response(long http_status, std::string_view body);

// The sendMessage request body for `chat_id` (a number is sent as a JSON
// number, @channel as a string) with `html` in parse_mode HTML.
std::string send_message_body(const std::string &chat_id, const std::string &html);

class TelegramClient {
public:
  explicit TelegramClient(TelegramSettings settings);
  ~TelegramClient();
  TelegramClient(const TelegramClient &) = delete;
  TelegramClient &operator=(const TelegramClient &) = delete;

  // Sends `html` to `chat_id`. Never throws for network or API failures and
  // never takes longer than the total timeout; returns `aborted` within
  // about a second once `*abort` becomes true, and `failed` when libcurl
  // cannot be loaded.
  SendResult send_message(const std::string &chat_id, const std::string &html,
                          const std::atomic<bool> *abort = nullptr);

  // The sendMessage URL with the token masked, for logs.
  std::string masked_url() const;

private:
  // Makes the handle on first use; false when libcurl is unavailable, with
  // why in `error`.
  bool open_handle(std::string &error);

  TelegramSettings m_settings;
  std::string m_url;
  const curl::Library *m_library = nullptr; // set with m_curl
  void *m_curl = nullptr;                   // CURL*, one per client, reused for every request
  curl_slist *m_headers = nullptr;
  detail::Transfer m_transfer;
};

} // namespace usher::alerts
