// Throttling of password attempts (login, activation): at most `attempts`
// per key in a fixed window, where a key is a normalised email, an activation
// token's digest or a client address. Memory is bounded: past `max_keys` the
// key whose window began longest ago is forgotten. Time comes from an
// injected clock, so tests advance it instead of sleeping.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace usher::auth {

struct AttemptLimit {
  unsigned attempts = 10;
  std::chrono::milliseconds window{300000};
};

class AttemptLimiter {
public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  AttemptLimiter(
      AttemptLimit limit, std::size_t max_keys,
      Clock clock = [] { return std::chrono::steady_clock::now(); });

  // Counts one attempt for `key`. nullopt: it may go ahead; otherwise the
  // time until the key's window ends (the attempt is refused and not counted).
  std::optional<std::chrono::milliseconds> attempt(const std::string &key);

  // Keys remembered now (at most max_keys).
  std::size_t size() const;

private:
  struct Entry {
    unsigned count = 0;
    std::chrono::steady_clock::time_point window_start;
    std::list<std::string>::iterator position; // in m_order
  };

  const AttemptLimit m_limit;
  const std::size_t m_max_keys;
  const Clock m_clock;
  mutable std::mutex m_mutex;
  std::unordered_map<std::string, Entry> m_entries;
  // Keys by the start of their window, oldest first: the first one is the
  // one to forget when the table is full (often expired already).
  std::list<std::string> m_order;
};

// Seconds for a Retry-After header: `wait` rounded up, at least 1.
long long retry_after_seconds(std::chrono::milliseconds wait);

} // namespace usher::auth
