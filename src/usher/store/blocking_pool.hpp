// Threads for blocking work that must stay off the HTTP I/O threads:
// database reads and password hashing. Each thread owns one database session.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <soci/soci.h>

#include <usher/store/database.hpp>

namespace usher::store {

class BlockingPool {
public:
  // Runs on a pool thread with that thread's session. A task that throws
  // must not have answered its caller: `on_failure` answers instead.
  using Task = std::function<void(soci::session &)>;

  BlockingPool(const Database &db, std::size_t threads, std::size_t queue_limit);
  ~BlockingPool();
  BlockingPool(const BlockingPool &) = delete;
  BlockingPool &operator=(const BlockingPool &) = delete;

  // Queues `task`; false when the queue is full or the pool is stopping.
  // `on_failure` runs when the session cannot be opened or the task throws.
  bool submit(Task task, std::function<void()> on_failure);

  // Finishes queued tasks, then joins the threads. Idempotent.
  void stop();

private:
  struct Item {
    Task task;
    std::function<void()> on_failure;
  };
  void run();

  const Database &m_db;
  const std::size_t m_queue_limit;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<Item> m_queue;
  bool m_stopping = false;
  std::vector<std::thread> m_threads;
};

} // namespace usher::store
