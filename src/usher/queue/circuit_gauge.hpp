// usher_queue_circuit_state, the queue's circuit breaker as a metric: one
// definition for the API's /metrics and the worker's.
#pragma once

#include <string>

#include <usher/metrics/registry.hpp>
#include <usher/queue/job_queue.hpp>

namespace usher::queue {

class CircuitGauge {
public:
  // Registers the family in `registry` (once per registry).
  explicit CircuitGauge(metrics::Registry &registry)
      : m_family(registry.gauge("usher_queue_circuit_state",
                                "The Redis queue's circuit breaker: 1 for the current state "
                                "(closed, open, half_open); the embedded queue is always closed.",
                                {"state"})) {}

  // Sets the series from `queue`'s in-memory health (no Redis call).
  void refresh(const JobQueue &queue) {
    const std::string circuit = queue.health().circuit;
    for (const char *state : {"closed", "open", "half_open"}) {
      m_family.with({state}).set(circuit == state ? 1 : 0);
    }
  }

private:
  metrics::GaugeFamily &m_family;
};

} // namespace usher::queue
