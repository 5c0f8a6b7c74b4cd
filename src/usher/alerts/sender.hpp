// The AlertSender: one thread with its own database session (reads) and its
// own TelegramClient (one reused curl handle) that delivers the outbox and
// sends the summaries of throttling windows that ended. Its writes (claims,
// outcomes, WARNING events) go through the WriteBatcher like every other
// write, so SQLite keeps one writer per process, and the writer never waits
// on Telegram: the request runs between two small writes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/alerts/delivery.hpp>
#include <usher/alerts/outbox.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/alerts/telegram.hpp>
#include <usher/config/config.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/store/database.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::alerts {

struct SenderSettings {
  TelegramSettings telegram;
  RetrySettings retry;
  std::chrono::milliseconds poll_interval{200}; // ALERT_POLL_MS
  int batch = 20;                               // messages sent per poll at most
  // Delivery outcomes are counted into it (null: not recorded).
  metrics::CounterFamily *outcomes = nullptr;
};

// The sender's settings as `config` gives them.
SenderSettings sender_settings(const config::Config &config);

// Records a WARNING about delivery (a rejected or given-up alert, a moved
// chat) in the caller's transaction: the health log, wired by the
// composition root so that alerts/ does not depend on health/ (which
// depends on alerts/). A failed delivery never alerts.
using RecordWarning = std::function<void(soci::session &sql, const std::string &message,
                                         const nlohmann::json &metadata)>;

class AlertSender {
public:
  // Delivers what `policy`'s events wrote to the outbox of `db`; `writer`
  // and `policy` must outlive the sender.
  AlertSender(const store::Database &db, store::WriteBatcher &writer, const AlertPolicy &policy,
              SenderSettings settings, RecordWarning record_warning);
  ~AlertSender();
  AlertSender(const AlertSender &) = delete;
  AlertSender &operator=(const AlertSender &) = delete;

  void start();

  // Aborts a request in flight (within about a second), gives its message
  // back to the outbox and joins the thread. Call before the writer stops.
  // Idempotent.
  void stop();

private:
  void run();
  // Sends the summaries of windows that ended.
  void close_due_windows(soci::session &read);
  // Claims, sends and settles one due message; false when none was due.
  bool deliver_next(soci::session &read);
  void settle(const OutboxMessage &message, const std::string &chat, const SendResult &result,
              const Decision &decision);
  // Runs `apply` on the writer and waits for its commit; false on failure.
  bool write(store::WriteBatcher::Apply apply);
  void pause(std::chrono::milliseconds duration);

  const store::Database &m_db;
  store::WriteBatcher &m_writer;
  const AlertPolicy &m_policy;
  SenderSettings m_settings;
  RecordWarning m_record_warning;
  std::chrono::milliseconds m_lease;
  std::mt19937_64 m_random{std::random_device{}()};
  // Chats Telegram told us moved (old id -> supergroup id), for this process.
  std::map<std::string, std::string> m_moved_chats;
  std::atomic<bool> m_stopping{false};
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::thread m_thread;
};

} // namespace usher::alerts
