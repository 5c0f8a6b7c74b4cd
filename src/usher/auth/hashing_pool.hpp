// Threads of their own for argon2id (password hashing and verification), so
// that a flood of logins costs CPU here and not the database reads on the
// BlockingPool. The queue is bounded: when it is full a request is refused
// at once (503 with Retry-After) instead of waiting behind the flood.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace usher::auth {

class HashingPool {
public:
  using Task = std::function<void()>;

  HashingPool(std::size_t threads, std::size_t queue_limit);
  ~HashingPool();
  HashingPool(const HashingPool &) = delete;
  HashingPool &operator=(const HashingPool &) = delete;

  // Queues `task`; false when `queue_limit` tasks wait already or the pool
  // is stopping (then `task` is not run). A task must not throw.
  bool submit(Task task);

  // Finishes queued tasks, then joins the threads. Idempotent.
  void stop();

private:
  void run();

  const std::size_t m_queue_limit;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<Task> m_queue;
  bool m_stopping = false;
  std::vector<std::thread> m_threads;
};

} // namespace usher::auth
