// Fuzzes configuration from the environment: the bytes are lines of
// NAME=VALUE (as `env` prints them), served to config::load by a getenv-like
// function. Values may hold any byte but NUL and newline, as real ones can.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <usher/config/config.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  std::map<std::string, std::string, std::less<>> environment;
  std::string_view rest = fuzz::as_text(data, size);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    const auto equals = line.find('=');
    if (equals == std::string_view::npos || line.find('\0') != std::string_view::npos) continue;
    environment.insert_or_assign(std::string(line.substr(0, equals)),
                                 std::string(line.substr(equals + 1)));
  }

  config::Sources sources;
  sources.env = [&environment](const char *name) -> const char * {
    const auto found = environment.find(std::string_view(name));
    return found == environment.end() ? nullptr : found->second.c_str();
  };
  fuzz::answer(config::load(sources), [](const config::Config &config) {
    if (config.listen_host.empty()) __builtin_trap();
  });
  return 0;
}
