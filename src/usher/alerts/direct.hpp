// Telegram messages sent at once from memory, bypassing the outbox: for the
// one alert that cannot be written to the database because the database is
// what failed (health/database_watch.hpp). The same client, the same retry
// decisions as the sender (delivery.hpp), with a bound on attempts and on
// time so that the caller is never held for long.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <usher/alerts/delivery.hpp>
#include <usher/alerts/telegram.hpp>
#include <usher/util/clock.hpp>

namespace usher::alerts {

struct DirectSettings {
  TelegramSettings telegram;
  // backoff from ALERT_BACKOFF_MS; give_up bounds the time spent on one
  // message, from its first attempt (a 429's retry_after that would pass it
  // gives up instead of waiting).
  RetrySettings retry{std::chrono::milliseconds(1000), std::chrono::milliseconds(30000),
                      std::chrono::milliseconds(120000)};
  int max_attempts = 5; // per chat
};

// Waits up to `duration`; false when the caller is stopping (then sending ends).
using Pause = std::function<bool(std::chrono::milliseconds duration)>;

class DirectAlerts {
public:
  // Sends to `chat_ids`; `clock` (retry deadlines) must outlive this.
  DirectAlerts(std::vector<std::string> chat_ids, DirectSettings settings,
               const clock::Clock &clock);
  ~DirectAlerts();
  DirectAlerts(const DirectAlerts &) = delete;
  DirectAlerts &operator=(const DirectAlerts &) = delete;

  // Sends `html` to every chat, each with at most max_attempts attempts
  // within retry.give_up (429: waits retry_after; a moved chat is followed;
  // 400/401/403/404 end that chat at once). A request in flight ends within
  // about a second once `stopping` is true. Returns the chats that got it.
  // Call from one thread at a time (one reused curl handle).
  int send(const std::string &html, const std::atomic<bool> &stopping, const Pause &pause);

private:
  std::vector<std::string> m_chat_ids;
  DirectSettings m_settings;
  const clock::Clock &m_clock;
  std::unique_ptr<TelegramClient> m_client; // made on first use, on the sending thread
  std::map<std::string, std::string> m_moved_chats;
  std::mt19937_64 m_random{std::random_device{}()};
};

} // namespace usher::alerts
