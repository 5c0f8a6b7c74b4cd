// The worker: threads that claim leased jobs from the JobQueue and provision
// them through the WriteBatcher with the same code as the inline path, then
// acknowledge. Runs inside `usher serve` (START_WORKER) and as `usher worker`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <usher/jobs/job_store.hpp>
#include <usher/queue/job_queue.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::worker {

struct WorkerSettings {
  unsigned threads = 4;  // WORKER_CONCURRENCY
  int claim_batch = 256; // jobs one thread claims at once
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds backoff{1000};
  int max_attempts = 3;
  std::string instance;
  const alerts::AlertPolicy *alerts = nullptr; // dead jobs alert through it (null: logged only)
  // Test-only fault injection: the process kills itself right after this
  // step (claim, account, profile, before_complete, after_commit).
  std::string fault_after;
  bool fault_throws = false; // fail the attempt instead of killing the process
};

// Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped at one
// hour, with jitter in [50 %, 100 %].
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, int attempts,
                                        double jitter01);

class Worker {
public:
  Worker(queue::JobQueue &queue, store::WriteBatcher &writer, WorkerSettings settings);
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  void start();

  // Stops claiming, lets in-flight jobs finish, gives back unfinished leases.
  void stop();

  std::uint64_t succeeded() const { return m_succeeded.load(); }

private:
  void run(unsigned index);
  void process(const std::string &owner, std::vector<jobs::ClaimedJob> batch);
  void recover_expired();
  void checkpoint(const char *step) const;

  queue::JobQueue &m_queue;
  store::WriteBatcher &m_writer;
  WorkerSettings m_settings;
  std::string m_owner_prefix;
  std::atomic<bool> m_stopping{false};
  std::atomic<std::uint64_t> m_succeeded{0};
  std::vector<std::thread> m_threads;
};

} // namespace usher::worker
