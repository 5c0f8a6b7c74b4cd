#include <usher/health/folded_event.hpp>

#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

namespace usher::health {

FoldedEvent::FoldedEvent(store::WriteBatcher &writer, EventType type, std::string message,
                         std::string instance, Alerting alerting)
    : m_writer(writer), m_type(type), m_message(std::move(message)),
      m_instance(std::move(instance)), m_alerting(std::move(alerting)) {}

void FoldedEvent::add(const nlohmann::json &metadata) {
  std::lock_guard lock(m_mutex);
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
  m_in_flight = m_writer.submit(
      [this, taken](soci::session &sql) {
        nlohmann::json metadata;
        {
          std::lock_guard lock(m_mutex);
          *taken = std::exchange(m_pending, 0);
          metadata = m_metadata;
        }
        if (*taken > 0) record(sql, m_type, m_message, metadata, m_instance, m_alerting, *taken);
      },
      [this, taken](const Result<void> &written) {
        if (!written) {
          spdlog::warn("could not record {} occurrences of \"{}\": {}", *taken, m_message,
                       written.error().detail);
        }
        std::lock_guard lock(m_mutex);
        m_in_flight = false;
        if (m_pending > 0) submit_locked();
      });
  // Not queued (the write queue is full): the count waits for the next add().
}

} // namespace usher::health
