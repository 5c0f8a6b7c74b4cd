// The database's own outage, which the health log cannot record while it
// lasts (it lives in that database): a thread probes the database, and when
// every probe has failed for DB_OUTAGE_ALERT_MS it sends one CRITICAL
// message straight to Telegram from memory (alerts/direct.hpp); when a probe
// succeeds again it sends one RESOLVED and writes the outage (start, end,
// what failed) to the health log as a CRITICAL and an INFO event
// (docs/alerts.md, "Database outage").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <soci/soci.h>

#include <usher/alerts/direct.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/store/database.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/clock.hpp>

namespace usher::health {

// One outage as this instance saw it: from the first failed probe to the
// first probe that succeeded after it.
struct Outage {
  std::chrono::steady_clock::time_point began; // the first failed probe started
  clock::WallTime began_at{};
  clock::WallTime ended_at{};   // set once it is over
  clock::WallTime reached_at{}; // when it had lasted the threshold (if it did)
  std::string error;            // what the latest failed probe said
  long long failed_probes = 0;
  bool reached = false; // it lasted the threshold: an outage worth an alert
  bool alerted = false; // this instance took charge of its CRITICAL (mark_alerted)
};

// The threshold logic, without threads or I/O: fed the result of each probe,
// it says when the CRITICAL is due and when an outage that was due ended.
// Failures shorter than the threshold end silently (the 503s and the log
// show them).
class OutageTracker {
public:
  // `clock` must outlive the tracker.
  OutageTracker(std::chrono::milliseconds threshold, const clock::Clock &clock);

  struct Step {
    enum class Kind {
      none,
      alert_due, // failing for the threshold and nobody took charge yet: again on
                 // every failed probe until mark_alerted()
      resolved,  // an outage that reached the threshold is over (`outage`)
    };
    Kind kind = Kind::none;
    Outage outage; // the outage in progress, or the one that ended
  };

  // A probe that started at `started` failed with `error`.
  Step failed(std::chrono::steady_clock::time_point started, const std::string &error);
  // A probe succeeded.
  Step succeeded();
  // This instance sent (or tried to send) the CRITICAL of the outage in progress.
  void mark_alerted();

  // The outage in progress (nullopt while the database answers).
  const std::optional<Outage> &current() const { return m_current; }

private:
  std::chrono::milliseconds m_threshold;
  const clock::Clock &m_clock;
  std::optional<Outage> m_current;
};

// How instances that share one database agree on which of them alerts. Empty
// functions: every instance alerts on its own (without Redis).
struct OutageClaims {
  // True when this instance should send the CRITICAL (it took the claim, or
  // the claim could not be asked: better two messages than none). Called on
  // every failed probe past the threshold until it returns true.
  std::function<bool()> take;
  // Called on every failed probe while this instance holds the claim.
  std::function<void()> keep;
  // The outage this instance alerted is over.
  std::function<void()> release;
  // Who holds the claim, for the log and the health event.
  std::function<std::string()> holder;
};

struct DatabaseWatchSettings {
  std::chrono::milliseconds threshold{10000};  // DB_OUTAGE_ALERT_MS
  std::chrono::milliseconds interval{1000};    // between probes
  std::chrono::milliseconds probe_limit{5000}; // a probe's round trip (StallWatchdog)
  std::string instance;
  std::string database; // "postgresql" or "sqlite", for the message
};

class DatabaseWatch {
public:
  // `db`, `writer` and `policy` must outlive the watch. Messages go to
  // `policy`'s chats (none when alerts are off: the events are still written).
  DatabaseWatch(const store::Database &db, store::WriteBatcher &writer,
                const alerts::AlertPolicy &policy, alerts::DirectSettings direct,
                OutageClaims claims, DatabaseWatchSettings settings);
  ~DatabaseWatch();
  DatabaseWatch(const DatabaseWatch &) = delete;
  DatabaseWatch &operator=(const DatabaseWatch &) = delete;

  void start();
  // Aborts a message in flight (within about a second) and joins the thread;
  // call before the writer stops. Idempotent.
  void stop();

  // Outages that reached the threshold and ended, whose events were written.
  long long recorded() const { return m_recorded.load(); }

private:
  // An ended outage whose events wait for the writer.
  struct PendingRecord {
    Outage outage;
    std::string alert; // what became of its alert, for the event's metadata
    int attempts = 0;
  };

  void run();
  bool probe(std::string &error);
  void on_due(const Outage &outage);
  void on_resolved(const Outage &outage);
  void write_pending();
  bool pause(std::chrono::milliseconds duration);
  bool alerts_kind(alerts::AlertKind kind) const;

  const store::Database &m_db;
  store::WriteBatcher &m_writer;
  const alerts::AlertPolicy &m_policy;
  alerts::DirectAlerts m_direct;
  OutageClaims m_claims;
  DatabaseWatchSettings m_settings;
  OutageTracker m_tracker;
  std::unique_ptr<soci::session> m_sql;
  std::string m_alert;   // what became of the current outage's CRITICAL
  std::string m_left_to; // the holder another instance's claim named, last logged
  std::deque<PendingRecord> m_pending;
  std::atomic<long long> m_recorded{0};
  std::atomic<bool> m_stopping{false};
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::thread m_thread;
};

} // namespace usher::health
