#include <usher/store/stall_watchdog.hpp>

#include <sys/socket.h>

#include <algorithm>

#include <soci/postgresql/soci-postgresql.h>
#include <spdlog/spdlog.h>

#include <usher/store/postgres_library.hpp>

namespace usher::store {

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

StallWatchdog::Guard::Guard(Guard &&other) noexcept
    : m_watchdog(other.m_watchdog), m_id(other.m_id), m_fired(other.m_fired) {
  other.m_watchdog = nullptr;
}

StallWatchdog::Guard &StallWatchdog::Guard::operator=(Guard &&other) noexcept {
  if (this != &other) {
    disarm();
    m_watchdog = other.m_watchdog;
    m_id = other.m_id;
    m_fired = other.m_fired;
    other.m_watchdog = nullptr;
  }
  return *this;
}

bool StallWatchdog::Guard::disarm() {
  if (m_watchdog != nullptr) {
    m_fired = m_watchdog->release(m_id);
    m_watchdog = nullptr;
  }
  return m_fired;
}

bool StallWatchdog::Guard::extend(std::chrono::milliseconds limit) {
  if (m_watchdog == nullptr) return !m_fired;
  return m_watchdog->extend(m_id, limit);
}

StallWatchdog::Guard StallWatchdog::arm(soci::session &sql, std::chrono::milliseconds limit) {
  // By name: SOCI's postgresql backend does not export its type's typeinfo.
  auto *base = sql.get_backend();
  if (base == nullptr || base->get_backend_name() != "postgresql") return {};
  auto *backend = static_cast<soci::postgresql_session_backend *>(base);
  // A PostgreSQL session exists: the library is loaded.
  const auto postgres = postgres_library();
  if (backend->conn_ == nullptr || !postgres) return {};
  return arm_socket((*postgres)->socket(backend->conn_), limit);
}

StallWatchdog::Guard StallWatchdog::arm_socket(int fd, std::chrono::milliseconds limit) {
  if (fd < 0) return {};
  std::uint64_t id = 0;
  {
    std::lock_guard lock(m_mutex);
    if (!m_thread.joinable()) m_thread = std::thread([this] { run(); });
    id = m_next_id++;
    m_armed.emplace(id, Entry{fd, m_clock.now() + limit});
  }
  m_wake.notify_one();
  return Guard(this, id);
}

bool StallWatchdog::release(std::uint64_t id) {
  std::lock_guard lock(m_mutex);
  const auto it = m_armed.find(id);
  if (it == m_armed.end()) return false;
  const bool fired = it->second.fired;
  m_armed.erase(it);
  return fired;
}

bool StallWatchdog::extend(std::uint64_t id, std::chrono::milliseconds limit) {
  bool sooner = false;
  {
    std::lock_guard lock(m_mutex);
    const auto it = m_armed.find(id);
    if (it == m_armed.end()) return true;
    if (it->second.fired) return false;
    const auto deadline = m_clock.now() + limit;
    sooner = deadline < it->second.deadline;
    it->second.deadline = deadline;
  }
  // Only a deadline brought forward may fall before the thread's next look;
  // the writer extends after every write, which must not wake it each time.
  if (sooner) m_wake.notify_one();
  return true;
}

std::size_t StallWatchdog::fire_expired() {
  std::lock_guard lock(m_mutex);
  auto next = m_clock.now();
  return fire_expired_locked(next);
}

std::size_t StallWatchdog::fire_expired_locked(std::chrono::steady_clock::time_point &next) {
  const auto now = m_clock.now();
  next = now + std::chrono::seconds(60);
  std::size_t fired = 0;
  for (auto &[id, entry] : m_armed) {
    if (entry.fired) continue;
    if (entry.deadline <= now) {
      // The fd stays open (its session owns it) until the guard is
      // released, which waits for this lock: no other file is hit.
      ::shutdown(entry.fd, SHUT_RDWR);
      entry.fired = true;
      ++fired;
      spdlog::error("the database did not answer in time: connection closed (it reconnects)");
    } else {
      next = std::min(next, entry.deadline);
    }
  }
  return fired;
}

void StallWatchdog::run() {
  std::unique_lock lock(m_mutex);
  while (!m_stopping) {
    auto next = m_clock.now();
    fire_expired_locked(next);
    // The clock's time may not be the system's (a test's): wait for as long
    // as it says, in real time, then look again.
    m_wake.wait_for(lock, next - m_clock.now());
  }
}

} // namespace usher::store
