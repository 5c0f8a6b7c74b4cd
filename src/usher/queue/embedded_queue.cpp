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
    // Look at the table when something was dispatched since this owner last
    // looked, when its last look found work (there may be more), or once per
    // poll interval; otherwise wait. A caller that comes back every `wait`
    // does not make every call a query.
    std::uint64_t seen = 0;
    {
      std::unique_lock lock(m_mutex);
      if (m_interrupted) return {};
      auto &state = m_owners[owner];
      const auto now = std::chrono::steady_clock::now();
      if (state.seen == m_dispatched && !state.found_work && now < state.next_poll) {
        m_wake.wait_until(lock, std::min(deadline, state.next_poll),
                          [&] { return m_interrupted || m_dispatched != state.seen; });
        if (m_interrupted) return {};
        if (m_dispatched == state.seen && std::chrono::steady_clock::now() >= deadline) return {};
        continue;
      }
      seen = m_dispatched;
      state.seen = seen;
      state.next_poll = now + m_poll_interval;
    }
    auto claimed = std::make_shared<std::vector<jobs::ClaimedJob>>();
    const std::string lease_until = clock::iso8601(std::chrono::system_clock::now() + lease);
    const bool ran = m_writer.submit_and_wait(
        [claimed, owner, max, lease_until](store::WriteContext &context) {
          *claimed = jobs::claim(context.sql(), owner, max, lease_until);
        },
        k_claim_timeout, store::Priority::background);
    {
      std::lock_guard lock(m_mutex);
      m_owners[owner].found_work = ran && !claimed->empty();
    }
    if (ran && !claimed->empty()) return std::move(*claimed);
    // Nothing (or the database failed): the next round waits for a
    // dispatch or the next poll.
    if (std::chrono::steady_clock::now() >= deadline) return {};
  }
}

} // namespace usher::queue
