#include <usher/auth/attempt_limiter.hpp>

#include <algorithm>

namespace usher::auth {

AttemptLimiter::AttemptLimiter(AttemptLimit limit, std::size_t max_keys, Clock clock)
    : m_limit(limit), m_max_keys(std::max<std::size_t>(1, max_keys)), m_clock(std::move(clock)) {}

std::optional<std::chrono::milliseconds> AttemptLimiter::attempt(const std::string &key) {
  const auto now = m_clock();
  std::lock_guard lock(m_mutex);
  auto found = m_entries.find(key);
  if (found != m_entries.end() && now - found->second.window_start >= m_limit.window) {
    // The window is over: start a new one, at the back of the order.
    found->second.count = 0;
    found->second.window_start = now;
    m_order.splice(m_order.end(), m_order, found->second.position);
  }
  if (found == m_entries.end()) {
    while (m_entries.size() >= m_max_keys) {
      m_entries.erase(m_order.front());
      m_order.pop_front();
    }
    m_order.push_back(key);
    found = m_entries.emplace(key, Entry{0, now, std::prev(m_order.end())}).first;
  }
  Entry &entry = found->second;
  if (entry.count >= m_limit.attempts) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(entry.window_start +
                                                                 m_limit.window - now);
  }
  ++entry.count;
  return std::nullopt;
}

std::size_t AttemptLimiter::size() const {
  std::lock_guard lock(m_mutex);
  return m_entries.size();
}

long long retry_after_seconds(std::chrono::milliseconds wait) {
  return std::max<long long>(1, (wait.count() + 999) / 1000);
}

} // namespace usher::auth
