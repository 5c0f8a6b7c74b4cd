// PostgreSQL LISTEN/NOTIFY without Redis (issue 12): a mode change reaches
// every instance within 2 s (SPEC §5) and a new job wakes the idle workers of
// every process. NOTIFY is transactional (sent when the transaction that
// issued it commits); LISTEN needs a session of its own that stays open,
// which a transaction-pooling proxy (PgBouncer in transaction mode) does not
// give (docs/operations.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <soci/soci.h>

#include <usher/store/database.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::store {

// The channels (per database: instances on other databases never hear them).
inline constexpr const char *k_mode_channel = "usher_mode";
inline constexpr const char *k_jobs_channel = "usher_jobs";

// PostgreSQL: NOTIFY `channel`, delivered when `sql`'s transaction commits
// (at once outside one). SQLite: nothing.
void notify(soci::session &sql, const char *channel);

// Sends NOTIFY `channel` through the writer with at most one such write
// waiting: a burst of intakes becomes one notification per batch. Copies
// share the pending flag.
class CoalescedNotify {
public:
  CoalescedNotify(WriteBatcher &writer, const char *channel)
      : m_writer(&writer), m_channel(channel), m_pending(std::make_shared<std::atomic<bool>>()) {}
  void operator()() const;

private:
  WriteBatcher *m_writer;
  const char *m_channel;
  std::shared_ptr<std::atomic<bool>> m_pending;
};

// A thread with its own session that LISTENs on `channels` and calls
// `on_notify(channel)` for each notification, and `on_reconnect()` each
// time it starts listening: the first time (what was announced between the
// process's start and then was missed) and after a lost connection came
// back (notifications sent meanwhile are lost): the caller reloads what it
// caches and looks for work once. Reconnects every k_retry while the
// database is away; pings every k_ping so that a server that vanished
// silently is noticed (StallWatchdog bounds the ping).
class PgListener {
public:
  using OnNotify = std::function<void(const std::string &channel)>;
  PgListener(const Database &db, std::vector<std::string> channels, OnNotify on_notify,
             std::function<void()> on_reconnect);
  ~PgListener();
  PgListener(const PgListener &) = delete;
  PgListener &operator=(const PgListener &) = delete;

  void start();
  void stop(); // idempotent

  static constexpr std::chrono::milliseconds k_retry{1000};
  static constexpr std::chrono::milliseconds k_ping{5000};

private:
  void run();
  bool pause(std::chrono::milliseconds how_long); // false when stopping

  const Database &m_db;
  std::vector<std::string> m_channels;
  OnNotify m_on_notify;
  std::function<void()> m_on_reconnect;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::atomic<bool> m_stopping{false};
  // Written by stop(): wakes the thread out of its poll() on the session's
  // socket at once, so a shutdown does not wait for the poll to time out.
  int m_stop_fd = -1;
  std::thread m_thread;
};

} // namespace usher::store
