// Group commit: one writer thread takes every pending write and runs them in
// one transaction, each inside its own savepoint, then commits once. A write
// that throws is rolled back alone; a failed COMMIT fails the whole batch.
// This is where usher's write throughput comes from (docs/architecture.md).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <soci/soci.h>

#include <usher/store/database.hpp>
#include <usher/util/error.hpp>

namespace usher::store {

// Thrown by a write to roll back its own changes and report `error` as its
// outcome (an expected failure such as a conflict, not a bug).
struct AbortWrite : std::exception {
  explicit AbortWrite(Error e) : error(std::move(e)) {}
  const char *what() const noexcept override { return error.detail.c_str(); }
  Error error;
};

class WriteBatcher {
public:
  // Runs inside the batch transaction; throw to roll back this write only.
  using Apply = std::function<void(soci::session &)>;
  // Called on the writer thread once the batch committed (an empty result)
  // or failed (the error); never called twice.
  using Done = std::function<void(const Result<void> &)>;

  WriteBatcher(const Database &db, std::size_t queue_limit, std::size_t max_batch = 512);
  ~WriteBatcher();
  WriteBatcher(const WriteBatcher &) = delete;
  WriteBatcher &operator=(const WriteBatcher &) = delete;

  // Queues a write; false when the queue is full or the batcher is stopping
  // (the caller answers 503), in which case neither function is called.
  bool submit(Apply apply, Done done);

  // Finishes every queued write, then stops the thread. Idempotent.
  void stop();

  std::size_t pending() const;

private:
  struct Item {
    Apply apply;
    Done done;
  };
  void run();
  void run_batch(std::deque<Item> &batch);

  const Database &m_db;
  const std::size_t m_queue_limit;
  const std::size_t m_max_batch;
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<Item> m_queue;
  bool m_stopping = false;
  std::unique_ptr<soci::session> m_sql;
  std::thread m_thread;
};

} // namespace usher::store
