// The alert sender's loop (see sender.hpp).
#include <usher/alerts/sender.hpp>

#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/alerts/conditions.hpp>
#include <usher/alerts/message.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/log_fields.hpp>

namespace usher::alerts {
namespace {

// How long a write of the sender may wait for the writer.
constexpr auto k_write_timeout = std::chrono::seconds(30);
// Summaries closed per poll at most.
constexpr int k_summary_batch = 50;
// A failed database read is retried after this.
constexpr auto k_database_retry = std::chrono::seconds(1);

std::string kind_of_key(const std::string &key) { return key.substr(0, key.find(':')); }

} // namespace

SenderSettings sender_settings(const config::Config &config) {
  SenderSettings settings;
  settings.telegram.api_url = config.telegram_api_url;
  settings.telegram.bot_token = config.telegram_bot_token;
  settings.telegram.connect_timeout = config.telegram_connect_timeout;
  settings.telegram.timeout = config.telegram_timeout;
  settings.retry.backoff = config.alert_backoff;
  settings.retry.give_up = config.alert_give_up;
  settings.poll_interval = config.alert_poll_interval;
  return settings;
}

AlertSender::AlertSender(const store::Database &db, store::WriteBatcher &writer,
                         const AlertPolicy &policy, SenderSettings settings,
                         RecordWarning record_warning)
    : m_db(db), m_writer(writer), m_policy(policy), m_settings(std::move(settings)),
      m_record_warning(std::move(record_warning)),
      // A claim outlives the longest request with room to settle it; a
      // message whose sender died is taken again after this.
      m_lease(2 * m_settings.telegram.timeout + std::chrono::seconds(5)) {}

AlertSender::~AlertSender() { stop(); }

void AlertSender::start() {
  if (m_thread.joinable()) return;
  m_thread = std::thread([this] { run(); });
}

void AlertSender::stop() {
  m_stopping.store(true);
  { std::lock_guard lock(m_mutex); }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void AlertSender::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(m_mutex);
  m_wake.wait_for(lock, duration, [this] { return m_stopping.load(); });
}

bool AlertSender::write(store::WriteBatcher::Apply apply) {
  // Deliveries are background work: requests go first (store/write_batcher.hpp).
  return m_writer.submit_and_wait(std::move(apply), k_write_timeout, store::Priority::background);
}

void AlertSender::run() {
  // libcurl is loaded by the first send: a sender with nothing due never
  // maps it. Without it every send fails and is retried like a network error.
  TelegramClient client(m_settings.telegram);
  spdlog::info("alerts: delivering to {} Telegram chat(s) through {}", m_policy.chat_ids.size(),
               client.masked_url());
  std::unique_ptr<soci::session> read;
  while (!m_stopping.load()) {
    try {
      if (!read) read = m_db.connect();
      auto stall = m_db.guard(*read, m_db.background_stall_limit());
      close_due_windows(*read);
      for (int sent = 0; sent < m_settings.batch && !m_stopping.load(); ++sent) {
        const std::string now = clock::iso8601(m_policy.clock->wall());
        if (!has_due(*read, now)) break;
        auto claimed = std::make_shared<std::optional<OutboxMessage>>();
        const std::string lease_until = clock::iso8601(m_policy.clock->wall() + m_lease);
        if (!write([claimed, now, lease_until](store::WriteContext &context) {
              *claimed = claim_next(context.sql(), now, lease_until);
            })) {
          spdlog::warn("alerts: could not claim a message from the outbox; retrying");
          break;
        }
        if (!claimed->has_value()) break; // another sender took it
        const OutboxMessage &message = **claimed;
        std::string chat = message.chat_id;
        if (auto moved = m_moved_chats.find(chat); moved != m_moved_chats.end())
          chat = moved->second;
        const SendResult result = client.send_message(chat, message.text, &m_stopping);
        std::uniform_real_distribution<double> jitter(0.0, 1.0);
        const auto answered_at = m_policy.clock->wall();
        const auto created = clock::parse_iso8601(message.created_at).value_or(answered_at);
        const Decision decision = decide(result, message.attempts + 1, created, answered_at,
                                         m_settings.retry, jitter(m_random));
        settle(message, chat, result, decision);
      }
    } catch (const std::exception &e) {
      // The outbox stays as it is; the next poll tries again.
      spdlog::warn("alerts: sender failed: {}", mask(e.what(), m_settings.telegram.bot_token));
      read.reset();
      pause(k_database_retry);
      continue;
    }
    pause(m_settings.poll_interval);
  }
}

void AlertSender::close_due_windows(soci::session &read) {
  const auto keys = due_summaries(read, clock::iso8601(m_policy.clock->wall()), k_summary_batch);
  for (const auto &key : keys) {
    const auto kind = parse_alert_kind(kind_of_key(key));
    if (!kind) continue;
    const AlertPolicy &policy = m_policy;
    write([&policy, key, kind = *kind](store::WriteContext &context) {
      const auto now = policy.clock->wall();
      auto state = lock_condition(context.sql(), key, kind, clock::iso8601(now));
      const long long repeats = state.suppressed;
      if (close_window(context.sql(), policy, state, now)) {
        spdlog::info("alerts: summary of {} repeats of {} queued", repeats, key);
      }
    });
  }
}

void AlertSender::settle(const OutboxMessage &message, const std::string &chat,
                         const SendResult &result, const Decision &decision) {
  const auto id = message.id;
  const int attempts = message.attempts + 1;
  const std::string now = clock::iso8601(m_policy.clock->wall());
  const std::string error = mask(decision.error, m_settings.telegram.bot_token);
  const std::string kind = message.kind;
  bool written = false;
  if (m_settings.outcomes != nullptr) {
    const char *outcome = nullptr;
    switch (decision.action) {
    case Decision::Action::sent: outcome = "sent"; break;
    case Decision::Action::retry:
    case Decision::Action::migrate: outcome = "failed"; break;
    case Decision::Action::reject: outcome = "rejected"; break;
    case Decision::Action::give_up: outcome = "given_up"; break;
    case Decision::Action::release: break;
    }
    if (outcome != nullptr) m_settings.outcomes->with({outcome}).inc();
  }
  switch (decision.action) {
  case Decision::Action::sent:
    written = write(
        [id, chat, now](store::WriteContext &context) { mark_sent(context.sql(), id, chat, now); });
    log::with_fields(spdlog::level::info,
                     fmt::format("alerts: {} alert {} delivered to chat {} (attempt {})", kind, id,
                                 chat, attempts),
                     {{"outbox_id", id}, {"chat_id", chat}, {"kind", kind}, {"attempt", attempts}});
    break;
  case Decision::Action::release:
    written = write([id, now](store::WriteContext &context) { release(context.sql(), id, now); });
    break;
  case Decision::Action::retry: {
    const std::string next = clock::iso8601(decision.next_attempt_at);
    written = write([id, next, error](store::WriteContext &context) {
      schedule_retry(context.sql(), id, next, error);
    });
    log::with_fields(
        spdlog::level::warn,
        fmt::format("alerts: {} alert {} to chat {} failed (attempt {}): {}; next attempt at {}",
                    kind, id, chat, attempts, error, next),
        {{"outbox_id", id},
         {"chat_id", chat},
         {"kind", kind},
         {"attempt", attempts},
         {"error", error},
         {"next_attempt_at", next}});
    break;
  }
  case Decision::Action::migrate: {
    const std::string to = result.migrate_to_chat_id;
    const bool first_time = m_moved_chats.find(message.chat_id) == m_moved_chats.end();
    m_moved_chats[message.chat_id] = to;
    const std::string from = message.chat_id;
    written = write([this, id, now, error, from, to, first_time](store::WriteContext &context) {
      schedule_retry(context.sql(), id, now, error);
      move_chat(context.sql(), from, to);
      if (first_time) {
        // Logged only: a WARNING never alerts, and a failed delivery never does.
        m_record_warning(context.sql(),
                         fmt::format("Telegram chat {} was upgraded to the supergroup {}; alerts "
                                     "now go there: set TELEGRAM_ADMIN_CHAT_ID to {}",
                                     from, to, to),
                         {{"outbox_id", id}, {"chat_id", from}, {"migrate_to_chat_id", to}});
      }
    });
    log::with_fields(spdlog::level::warn,
                     fmt::format("alerts: chat {} migrated to {}; following it", from, to),
                     {{"outbox_id", id}, {"chat_id", from}, {"migrate_to_chat_id", to}});
    break;
  }
  case Decision::Action::reject:
  case Decision::Action::give_up: {
    const bool rejected = decision.action == Decision::Action::reject;
    const auto settled_at = m_policy.clock->wall();
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(
        settled_at - clock::parse_iso8601(message.created_at).value_or(settled_at));
    const std::string text =
        rejected ? fmt::format("Telegram rejected {} alert {} for chat {}: {}", kind, id, chat,
                               mask(result.description, m_settings.telegram.bot_token))
                 : fmt::format("gave up delivering {} alert {} to chat {} after {} attempts in "
                               "{} s: {}",
                               kind, id, chat, attempts, age.count(), error);
    nlohmann::json metadata = {{"outbox_id", id},
                               {"chat_id", chat},
                               {"kind", kind},
                               {"attempts", attempts},
                               {"http_status", result.http_status},
                               {"error", error}};
    if (rejected) metadata["description"] = mask(result.description, m_settings.telegram.bot_token);
    written = write([this, id, error, text, metadata](store::WriteContext &context) {
      mark_failed(context.sql(), id, error);
      m_record_warning(context.sql(), text, metadata);
    });
    log::with_fields(spdlog::level::warn, "alerts: " + text, metadata);
    break;
  }
  }
  if (!written) {
    // The lease runs out and the message is tried again: at least once.
    spdlog::warn("alerts: could not record the outcome of alert {} ({})", id,
                 to_string(decision.action));
  }
}

} // namespace usher::alerts
