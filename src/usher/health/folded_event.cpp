#include <usher/health/folded_event.hpp>

#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

namespace usher::health {

FoldedEvent::FoldedEvent(store::WriteBatcher &writer, EventType type, std::string message,
                         std::string instance, Alerting alerting,
                         std::chrono::milliseconds fold_window)
    : m_writer(writer), m_type(type), m_message(std::move(message)),
      m_instance(std::move(instance)), m_alerting(std::move(alerting)), m_fold_window(fold_window) {
}

void FoldedEvent::add(const nlohmann::json &metadata) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(m_mutex);
  // A gap longer than the window ends the run: the next write starts a row.
  if (m_row && now - m_last_occurrence > m_fold_window) m_row.reset();
  m_last_occurrence = now;
  ++m_pending;
  m_metadata = metadata;
  if (!m_in_flight) submit_locked();
}

long long FoldedEvent::pending() const {
  std::lock_guard lock(m_mutex);
  return m_pending;
}

void FoldedEvent::submit_locked() {
  // What the write recorded, so that its completion knows.
  auto taken = std::make_shared<long long>(0);
  // The row this write created, remembered once it committed.
  auto created = std::make_shared<std::optional<std::int64_t>>();
  m_in_flight = m_writer.submit(
      [this, taken, created](soci::session &sql) {
        nlohmann::json metadata;
        std::optional<std::int64_t> row;
        {
          std::lock_guard lock(m_mutex);
          // +=: a run again after a rollback (WriteBatcher) records what the
          // undone run had taken too.
          *taken += std::exchange(m_pending, 0);
          metadata = m_metadata;
          row = m_row;
        }
        if (*taken == 0) return;
        if (row) {
          add_repeats(sql, *row, *taken);
        } else {
          *created = record(sql, m_type, m_message, metadata, m_instance, m_alerting, *taken);
        }
      },
      [this, taken, created](const Result<void> &written) {
        if (!written) {
          spdlog::warn("could not record {} occurrences of \"{}\": {}", *taken, m_message,
                       written.error().detail);
        }
        std::lock_guard lock(m_mutex);
        if (written && *created && m_fold_window.count() > 0) m_row = *created;
        m_in_flight = false;
        if (m_pending > 0) submit_locked();
      });
  // Not queued (the write queue is full): the count waits for the next add().
}

} // namespace usher::health
