// Fuzzes the configuration file: the bytes are a TOML file given by
// --config, read by config::load through toml++ (compiled header-only in
// the fuzz build, so the TOML parser is instrumented too). The file is an
// in-memory one (memfd) reached through /proc/self/fd, so nothing touches
// the disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <usher/config/config.hpp>

#include "fuzz_common.hpp"

namespace {

// The memfd, made once per process.
int config_fd() {
  static const int fd = [] {
    const int made = memfd_create("usher-fuzz-config", 0);
    if (made < 0) std::abort();
    return made;
  }();
  return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  // Every input, non-ASCII too: toml++ 3.3.0 (Debian 12) reaches
  // TOML_UNREACHABLE on some non-ASCII code points (marzer/tomlplusplus#295),
  // so config::load refuses any byte >= 0x80 before toml++ sees it. If that
  // guard ever lets one through, UBSan stops this target at once.
  const int fd = config_fd();
  if (ftruncate(fd, 0) != 0) std::abort();
  std::size_t written = 0;
  while (written < size) {
    const auto n = pwrite(fd, data + written, size - written, static_cast<off_t>(written));
    if (n <= 0) std::abort();
    written += static_cast<std::size_t>(n);
  }

  config::Sources sources;
  sources.file = "/proc/self/fd/" + std::to_string(fd);
  fuzz::answer(config::load(sources), [](const config::Config &config) {
    if (config.listen_host.empty()) __builtin_trap();
  });
  return 0;
}
