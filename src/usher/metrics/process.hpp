// The process's own metrics (resident memory, open file descriptors, threads,
// start time), read from /proc/self when a scrape asks for them.
#pragma once

#include <usher/metrics/registry.hpp>

namespace usher::metrics {

class ProcessMetrics {
public:
  // Registers process_* in `registry` and records the start time (now).
  explicit ProcessMetrics(Registry &registry);

  // Reads /proc/self into the gauges; a value that cannot be read keeps its
  // last one.
  void refresh();

private:
  Gauge &m_resident;
  Gauge &m_open_fds;
  Gauge &m_threads;
};

} // namespace usher::metrics
