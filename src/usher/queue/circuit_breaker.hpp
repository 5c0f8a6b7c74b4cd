// A circuit breaker in front of Redis. Closed: calls go through, and
// `failures_to_open` consecutive failures open it. Open: callers go inline
// at once without touching Redis. After `open_for`, one probe (the queue's
// monitor thread, never a request) may run: the breaker is half-open while
// it does; success closes it, failure opens it for another `open_for`.
// Thread-safe; state() is one atomic load.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string_view>

namespace usher::queue {

class CircuitBreaker {
public:
  using Clock = std::chrono::steady_clock;
  enum class State { closed, open, half_open };

  CircuitBreaker(unsigned failures_to_open, std::chrono::milliseconds open_for);

  State state() const { return m_state.load(std::memory_order_acquire); }
  bool closed() const { return state() == State::closed; }

  // A call succeeded: resets the count of consecutive failures.
  void record_success();
  // A call failed; true when this failure opened the circuit.
  bool record_failure(Clock::time_point now);

  // Open for long enough: becomes half-open and returns true (the caller
  // probes and reports with probe_succeeded / probe_failed).
  bool begin_probe(Clock::time_point now);
  void probe_succeeded();
  void probe_failed(Clock::time_point now);

private:
  const unsigned m_failures_to_open;
  const std::chrono::milliseconds m_open_for;
  std::atomic<State> m_state{State::closed};
  std::mutex m_mutex;
  unsigned m_consecutive_failures = 0;
  Clock::time_point m_opened_at{};
};

std::string_view to_string(CircuitBreaker::State state);

} // namespace usher::queue
