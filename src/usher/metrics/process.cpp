#include <usher/metrics/process.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <unistd.h>

namespace usher::metrics {
namespace {

// A field of /proc/self/status ("VmRSS:   1234 kB" -> 1234), or -1.
long long status_field(const std::string &name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(name + ":", 0) != 0) continue;
    try {
      return std::stoll(line.substr(name.size() + 1));
    } catch (const std::exception &) {
      return -1;
    }
  }
  return -1;
}

} // namespace

ProcessMetrics::ProcessMetrics(Registry &registry)
    : m_resident(
          registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").with()),
      m_open_fds(registry.gauge("process_open_fds", "Number of open file descriptors.").with()),
      m_threads(registry.gauge("process_threads", "Number of OS threads in the process.").with()) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  registry.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.")
      .with()
      .set(std::chrono::duration<double>(now).count());
  refresh();
}

void ProcessMetrics::refresh() {
  if (const auto rss_kib = status_field("VmRSS"); rss_kib >= 0) {
    m_resident.set(static_cast<double>(rss_kib) * 1024.0);
  }
  if (const auto threads = status_field("Threads"); threads >= 0) {
    m_threads.set(static_cast<double>(threads));
  }
  std::error_code error;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++fds;
  }
  // The directory's own descriptor, open while it was read, is not counted.
  if (!error && fds > 0) m_open_fds.set(static_cast<double>(fds - 1));
}

} // namespace usher::metrics
