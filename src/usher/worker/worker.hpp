// The worker: threads that claim leased jobs from the JobQueue and provision
// them through the WriteBatcher with the same code as the inline path, then
// acknowledge. Runs inside `usher serve` (START_WORKER) and as `usher worker`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <usher/jobs/job_store.hpp>
#include <usher/metrics/registry.hpp>
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
  // Where the user.provisioned and job.dead events go (null: nowhere).
  const webhooks::OutboundTargets *outbound = nullptr;
  // Called after each step of an attempt with its name (claim, account,
  // profile, before_complete, after_commit); empty in production. The crash
  // tests inject faults through it (fault_injector below); unit tests watch
  // or disturb the loop with it. account, profile and before_complete run
  // on the writer thread inside the job's transaction.
  std::function<void(const char *step)> checkpoint;
  // Attempts and their outcomes are recorded into it (null: not recorded).
  metrics::Registry *metrics = nullptr;
};

// Test-only fault injection (USHER_FAULT_AFTER, USHER_FAULT_MODE): a
// checkpoint that kills the process right after step `after`, or with
// `throws` fails the attempt there instead. Empty when `after` is.
std::function<void(const char *step)> fault_injector(std::string after, bool throws);

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
  // Null without a registry.
  metrics::CounterFamily *m_outcomes = nullptr;
  metrics::Counter *m_attempts = nullptr;
  metrics::Histogram *m_intake_to_success = nullptr;
  std::vector<std::thread> m_threads;
};

} // namespace usher::worker
