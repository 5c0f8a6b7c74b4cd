#include <usher/store/blocking_pool.hpp>

#include <memory>

#include <spdlog/spdlog.h>

namespace usher::store {

BlockingPool::BlockingPool(const Database &db, std::size_t threads, std::size_t queue_limit)
    : m_db(db), m_queue_limit(queue_limit) {
  for (std::size_t i = 0; i < threads; ++i) m_threads.emplace_back([this] { run(); });
}

BlockingPool::~BlockingPool() { stop(); }

bool BlockingPool::submit(Task task, std::function<void()> on_failure) {
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping || m_queue.size() >= m_queue_limit) return false;
    m_queue.push_back(Item{std::move(task), std::move(on_failure)});
  }
  m_wake.notify_one();
  return true;
}

void BlockingPool::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  for (auto &t : m_threads) {
    if (t.joinable()) t.join();
  }
}

void BlockingPool::run() {
  std::unique_ptr<soci::session> sql;
  for (;;) {
    Item item;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) return;
      item = std::move(m_queue.front());
      m_queue.pop_front();
    }
    try {
      if (!sql) sql = m_db.connect();
    } catch (const std::exception &e) {
      spdlog::error("database connection failed: {}", e.what());
      if (item.on_failure) item.on_failure();
      continue;
    }
    try {
      // A server that stops answering fails the task (503) instead of
      // holding this thread.
      auto stall = m_db.guard(*sql, m_db.request_stall_limit());
      item.task(*sql);
    } catch (const soci::soci_error &e) {
      // A broken connection is dropped so the next task reconnects.
      spdlog::error("database task failed: {}", e.what());
      sql.reset();
      if (item.on_failure) item.on_failure();
    } catch (const std::exception &e) {
      spdlog::error("blocking task failed: {}", e.what());
      if (item.on_failure) item.on_failure();
    }
  }
}

} // namespace usher::store
