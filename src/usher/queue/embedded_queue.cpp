#include <usher/queue/embedded_queue.hpp>

#include <memory>

#include <spdlog/spdlog.h>

#include <usher/util/clock.hpp>

namespace usher::queue {
namespace {
constexpr auto k_claim_timeout = std::chrono::seconds(30);
} // namespace

EmbeddedQueue::EmbeddedQueue(store::WriteBatcher &writer, std::chrono::milliseconds poll_interval,
                             std::function<void()> announce)
    : m_writer(writer), m_poll_interval(poll_interval), m_announce(std::move(announce)) {}

void EmbeddedQueue::dispatch(std::int64_t, Dispatched done) {
  {
    std::lock_guard lock(m_mutex);
    ++m_dispatched;
  }
  m_wake.notify_one();
  if (m_announce) m_announce();
  if (done) done(Result<void>{});
}

void EmbeddedQueue::wake() {
  {
    std::lock_guard lock(m_mutex);
    ++m_dispatched;
  }
  m_wake.notify_all();
}

void EmbeddedQueue::interrupt() {
  {
    std::lock_guard lock(m_mutex);
    m_interrupted = true;
  }
  m_wake.notify_all();
}

std::vector<jobs::ClaimedJob> EmbeddedQueue::claim(const std::string &owner, int max,
                                                   std::chrono::milliseconds lease,
                                                   std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(m_mutex);
      if (m_interrupted) return {};
      seen = m_dispatched;
    }
    auto claimed = std::make_shared<std::vector<jobs::ClaimedJob>>();
    const std::string lease_until = clock::iso8601(std::chrono::system_clock::now() + lease);
    if (m_writer.submit_and_wait(
            [claimed, owner, max, lease_until](store::WriteContext &context) {
              *claimed = jobs::claim(context.sql(), owner, max, lease_until);
            },
            k_claim_timeout) &&
        !claimed->empty()) {
      return std::move(*claimed);
    }
    // Nothing to do: sleep until a dispatch, the poll interval or the deadline.
    std::unique_lock lock(m_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return {};
    const auto until = std::min(deadline, now + m_poll_interval);
    m_wake.wait_until(lock, until, [&] { return m_interrupted || m_dispatched != seen; });
    if (m_interrupted) return {};
  }
}

} // namespace usher::queue
