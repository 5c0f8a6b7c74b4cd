// One kind of event that may happen on every request (a fallback while the
// queue is down), recorded without a health-log write per occurrence:
// occurrences are counted in memory and written by at most one write in
// flight at a time, which takes everything counted until it runs. The first
// occurrence is written at once (its alert goes out at once); under load one
// write records hundreds (health::record with `occurrences`). Counts of a
// write that fails are logged and dropped: the event is a report, the
// request's own data was committed in its own transaction.
//
// With a `fold_window`, occurrences that keep coming (each within the window
// of the previous one) are added to the row the first one wrote, so a
// sustained condition is one row with a count however long it lasts.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include <usher/health/health_log.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::health {

class FoldedEvent {
public:
  FoldedEvent(store::WriteBatcher &writer, EventType type, std::string message,
              std::string instance, Alerting alerting,
              std::chrono::milliseconds fold_window = std::chrono::milliseconds(0));

  // One occurrence; `metadata` of the latest is the one written.
  void add(const nlohmann::json &metadata);

  long long pending() const;

private:
  void submit_locked();

  store::WriteBatcher &m_writer;
  const EventType m_type;
  const std::string m_message;
  const std::string m_instance;
  const Alerting m_alerting;
  const std::chrono::milliseconds m_fold_window;
  mutable std::mutex m_mutex;
  // With a fold window: the row of the current run of occurrences, and when
  // the latest occurrence was counted.
  std::optional<std::int64_t> m_row;
  std::chrono::steady_clock::time_point m_last_occurrence;
  long long m_pending = 0;
  nlohmann::json m_metadata;
  bool m_in_flight = false;
};

} // namespace usher::health
