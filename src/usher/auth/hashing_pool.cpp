#include <usher/auth/hashing_pool.hpp>

#include <spdlog/spdlog.h>

namespace usher::auth {

HashingPool::HashingPool(std::size_t threads, std::size_t queue_limit)
    : m_queue_limit(queue_limit) {
  for (std::size_t i = 0; i < threads; ++i) m_threads.emplace_back([this] { run(); });
}

HashingPool::~HashingPool() { stop(); }

bool HashingPool::submit(Task task) {
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping || m_queue.size() >= m_queue_limit) return false;
    m_queue.push_back(std::move(task));
  }
  m_wake.notify_one();
  return true;
}

void HashingPool::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  for (auto &thread : m_threads) {
    if (thread.joinable()) thread.join();
  }
}

void HashingPool::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) return;
      task = std::move(m_queue.front());
      m_queue.pop_front();
    }
    try {
      task();
    } catch (const std::exception &e) {
      // A bug in the task; the thread goes on with the next one.
      spdlog::error("hashing task failed: {}", e.what());
    }
  }
}

} // namespace usher::auth
