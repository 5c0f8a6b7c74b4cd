#include <usher/queue/circuit_breaker.hpp>

namespace usher::queue {

CircuitBreaker::CircuitBreaker(unsigned failures_to_open, std::chrono::milliseconds open_for)
    : m_failures_to_open(failures_to_open == 0 ? 1 : failures_to_open), m_open_for(open_for) {}

void CircuitBreaker::record_success() {
  std::lock_guard lock(m_mutex);
  if (m_state.load() == State::closed) m_consecutive_failures = 0;
}

bool CircuitBreaker::record_failure(Clock::time_point now) {
  std::lock_guard lock(m_mutex);
  if (m_state.load() != State::closed) return false;
  if (++m_consecutive_failures < m_failures_to_open) return false;
  m_opened_at = now;
  m_state.store(State::open, std::memory_order_release);
  return true;
}

bool CircuitBreaker::begin_probe(Clock::time_point now) {
  std::lock_guard lock(m_mutex);
  if (m_state.load() != State::open || now - m_opened_at < m_open_for) return false;
  m_state.store(State::half_open, std::memory_order_release);
  return true;
}

void CircuitBreaker::probe_succeeded() {
  std::lock_guard lock(m_mutex);
  if (m_state.load() != State::half_open) return;
  m_consecutive_failures = 0;
  m_state.store(State::closed, std::memory_order_release);
}

void CircuitBreaker::probe_failed(Clock::time_point now) {
  std::lock_guard lock(m_mutex);
  if (m_state.load() != State::half_open) return;
  m_opened_at = now;
  m_state.store(State::open, std::memory_order_release);
}

std::string_view to_string(CircuitBreaker::State state) {
  switch (state) {
  case CircuitBreaker::State::closed: return "closed";
  case CircuitBreaker::State::open: return "open";
  case CircuitBreaker::State::half_open: return "half_open";
  }
  return "closed";
}

} // namespace usher::queue
