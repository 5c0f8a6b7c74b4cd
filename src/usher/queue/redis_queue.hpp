// The Redis job queue (REDIS_URL). The database row stays the truth; Redis
// carries job ids to workers in any number of processes (redis/job_stream).
//
// - dispatch: a dispatcher thread sends the ids of committed jobs in
//   pipelined batches; a failure or timeout fails the batch (the caller
//   provisions inline) and counts towards the circuit breaker.
// - claim: new and idle (dead worker's) entries; the job row is then
//   claimed only while it is queued and due, so a duplicate delivery is
//   dropped, never run twice. While the circuit is open, workers claim from
//   the database directly, so no accepted job waits for Redis.
// - a monitor thread probes Redis when the circuit has been open long
//   enough, and runs the sweeper: queued jobs Redis does not hold (flushed,
//   restarted, a dispatch that failed after the commit) are sent again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <usher/config/config.hpp>
#include <usher/queue/circuit_breaker.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/queue/job_queue.hpp>
#include <usher/redis/connection.hpp>
#include <usher/redis/job_stream.hpp>
#include <usher/store/database.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::queue {

struct RedisQueueSettings {
  config::RedisEndpoint endpoint;
  redis::Timeouts timeouts;
  std::string prefix = "usher:";
  unsigned breaker_failures = 3;
  std::chrono::milliseconds breaker_open{1000};
  std::chrono::milliseconds sweep_interval{5000};
  std::chrono::milliseconds sweep_grace{5000};
  // Entries unacknowledged this long are taken from their consumer (JOB_LEASE_MS).
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds poll_interval{500}; // database claims while the circuit is open
  std::size_t dispatch_queue_limit = 20000;
};

RedisQueueSettings redis_queue_settings(const config::Config &config);

// What the queue tells the rest of usher (health events, alerts).
struct QueueEvents {
  std::function<void(const std::string &detail)> unavailable; // the circuit opened
  std::function<void(const std::string &detail)> recovered;   // a probe closed it
};

class RedisQueue final : public JobQueue {
public:
  RedisQueue(RedisQueueSettings settings, store::WriteBatcher &writer, const store::Database &db,
             QueueEvents events);
  ~RedisQueue() override;
  RedisQueue(const RedisQueue &) = delete;
  RedisQueue &operator=(const RedisQueue &) = delete;

  // Starts the dispatcher and the monitor (probe, sweeper).
  void start();
  void stop() override;

  void dispatch(std::int64_t job_id, Dispatched done) override;
  bool accepting() const override { return m_breaker.closed(); }
  std::vector<jobs::ClaimedJob> claim(const std::string &owner, int max,
                                      std::chrono::milliseconds lease,
                                      std::chrono::milliseconds wait) override;
  void acknowledge(const std::vector<std::int64_t> &job_ids) override;
  void retry_at(std::int64_t job_id, std::chrono::system_clock::time_point when) override;
  void interrupt() override;
  QueueHealth health() const override;

  // One pass of the sweeper now; how many jobs it sent again (tests, and
  // after a recovery).
  Result<long long> sweep_once();

  // Stream entries of claimed jobs not yet acknowledged or rescheduled. An
  // entry whose job never comes back (its lease was lost, its completion's
  // write timed out) is forgotten two leases after its claim, by the monitor
  // thread: by then another consumer may hold it, and a late acknowledgement
  // without it only leaves the entry to be found finished and dropped.
  std::size_t tracked_entries() const;
  std::size_t forget_stale_entries(std::chrono::steady_clock::time_point now);

private:
  struct PendingDispatch {
    std::int64_t job_id = 0;
    Dispatched done;
  };
  struct TrackedEntry {
    std::string entry_id;
    std::chrono::steady_clock::time_point forget_after;
  };
  struct Borrowed {
    std::unique_ptr<redis::Connection> connection;
    std::uint64_t epoch = 0;
  };
  Borrowed borrow();
  void give_back(Borrowed borrowed);
  void failed(const Error &error);
  void run_dispatcher();
  void run_monitor();
  void probe();
  std::vector<jobs::ClaimedJob> settle(const std::string &owner,
                                       const std::vector<redis::Delivery> &deliveries,
                                       std::chrono::milliseconds lease, redis::Connection &redis);
  std::string take_entry(std::int64_t job_id);

  RedisQueueSettings m_settings;
  store::WriteBatcher &m_writer;
  const store::Database &m_db;
  QueueEvents m_events;
  redis::JobStream m_stream;
  CircuitBreaker m_breaker;
  EmbeddedQueue m_database_claims; // while the circuit is open

  std::mutex m_pool_mutex;
  std::vector<std::pair<std::unique_ptr<redis::Connection>, std::uint64_t>> m_pool; // + epoch

  mutable std::mutex m_entries_mutex;
  std::unordered_map<std::int64_t, TrackedEntry> m_entries; // claimed job -> stream entry

  std::mutex m_dispatch_mutex;
  std::condition_variable m_dispatch_wake;
  std::deque<PendingDispatch> m_dispatches;

  std::mutex m_monitor_mutex;
  std::condition_variable m_monitor_wake;

  std::atomic<bool> m_stopping{false};
  std::atomic<bool> m_interrupted{false};
  std::atomic<bool> m_last_call_ok{true};
  // Bumped when the circuit opens: connections made before are dropped (the
  // Redis they talked to may be gone), so none is used stale after recovery.
  std::atomic<std::uint64_t> m_epoch{0};
  std::atomic<std::int64_t> m_next_promote_ns{0};
  std::atomic<std::int64_t> m_next_reclaim_ns{0};
  std::atomic<std::int64_t> m_sweep_cursor{0};
  std::thread m_dispatcher;
  std::thread m_monitor;
};

} // namespace usher::queue
