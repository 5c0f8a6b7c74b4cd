// Direct Telegram sending with bounded retries (see direct.hpp).
#include <usher/alerts/direct.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/alerts/message.hpp>

namespace usher::alerts {

DirectAlerts::DirectAlerts(std::vector<std::string> chat_ids, DirectSettings settings,
                           const clock::Clock &clock)
    : m_chat_ids(std::move(chat_ids)), m_settings(std::move(settings)), m_clock(clock) {}

DirectAlerts::~DirectAlerts() = default;

int DirectAlerts::send(const std::string &html, const std::atomic<bool> &stopping,
                       const Pause &pause) {
  if (!m_client) m_client = std::make_unique<TelegramClient>(m_settings.telegram);
  const std::string &token = m_settings.telegram.bot_token;
  const auto started = m_clock.wall();
  int delivered = 0;
  for (const auto &chat_id : m_chat_ids) {
    std::string chat = chat_id;
    if (const auto moved = m_moved_chats.find(chat); moved != m_moved_chats.end()) {
      chat = moved->second;
    }
    for (int attempt = 1; attempt <= m_settings.max_attempts; ++attempt) {
      if (stopping.load()) return delivered;
      const SendResult result = m_client->send_message(chat, html, &stopping);
      std::uniform_real_distribution<double> jitter(0.0, 1.0);
      const auto now = m_clock.wall();
      const Decision decision =
          decide(result, attempt, started, now, m_settings.retry, jitter(m_random));
      const std::string error = mask(decision.error, token);
      if (decision.action == Decision::Action::sent) {
        ++delivered;
        spdlog::info("alerts: direct alert delivered to chat {} (attempt {})", chat, attempt);
        break;
      }
      if (decision.action == Decision::Action::release) return delivered;
      if (decision.action == Decision::Action::reject ||
          decision.action == Decision::Action::give_up) {
        spdlog::warn("alerts: direct alert to chat {} not delivered after {} attempt(s): {}", chat,
                     attempt, error);
        break;
      }
      if (decision.action == Decision::Action::migrate) {
        spdlog::warn("alerts: chat {} migrated to {}; following it", chat,
                     result.migrate_to_chat_id);
        m_moved_chats[chat_id] = result.migrate_to_chat_id;
        chat = result.migrate_to_chat_id;
        continue;
      }
      // retry: wait as decided, unless that passes the bound on this message.
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(decision.next_attempt_at - now);
      if (attempt == m_settings.max_attempts || now + wait > started + m_settings.retry.give_up) {
        spdlog::warn("alerts: direct alert to chat {} not delivered after {} attempt(s): {}", chat,
                     attempt, error);
        break;
      }
      spdlog::warn("alerts: direct alert to chat {} failed (attempt {}): {}; retrying in {} ms",
                   chat, attempt, error, wait.count());
      if (!pause(std::max(wait, std::chrono::milliseconds(0)))) return delivered;
    }
  }
  return delivered;
}

} // namespace usher::alerts
