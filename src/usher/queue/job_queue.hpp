// The job queue between intake and workers. The database row is the truth;
// a queue delivers job ids at least once, and a delivery is acknowledged
// only after the job's final database commit. Two implementations: the
// embedded one (the jobs table itself, the default) and Redis.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <usher/jobs/job_store.hpp>
#include <usher/util/error.hpp>

namespace usher::queue {

struct QueueHealth {
  std::string backend; // "embedded" or "redis"
  bool healthy = true;
  std::string circuit = "closed"; // closed, open, half_open

  nlohmann::json to_json() const {
    return {{"backend", backend}, {"healthy", healthy}, {"circuit", circuit}};
  }
};

// The CRITICAL event of a queue that cannot take jobs (SPEC §2): one
// condition and message for the circuit opening and for every fallback, so
// that they fold into one health-log row and one alert.
inline constexpr const char *k_unavailable_condition = "queue_unavailable";
inline constexpr const char *k_unavailable_message =
    "job queue unavailable: requests are provisioned inline";

class JobQueue {
public:
  virtual ~JobQueue() = default;

  using Dispatched = std::function<void(const Result<void> &)>;

  // Hands over a job whose queued row has committed. `done` (may be empty)
  // runs exactly once, on any thread, possibly before dispatch returns; a
  // failure means the queue cannot take the job now (the caller provisions
  // it inline, or leaves it to the queue's recovery). Never blocks on I/O.
  virtual void dispatch(std::int64_t job_id, Dispatched done) = 0;

  // False while the queue is known to be down (its circuit is open): the
  // caller provisions inline at once instead of recording a job.
  virtual bool accepting() const { return true; }

  // Up to `max` jobs leased to `owner` for `lease`; waits up to `wait` when
  // there are none. Every claim counts an attempt in the job row.
  virtual std::vector<jobs::ClaimedJob> claim(const std::string &owner, int max,
                                              std::chrono::milliseconds lease,
                                              std::chrono::milliseconds wait) = 0;

  // Called after the jobs' final commit (succeeded or dead), with every
  // job of a batch at once.
  virtual void acknowledge(const std::vector<std::int64_t> &job_ids) = 0;

  // Called after a failed attempt put the job back as queued until `when`.
  virtual void retry_at(std::int64_t job_id, std::chrono::system_clock::time_point when) {
    (void)when;
    acknowledge({job_id});
  }

  // Wakes waiting claimers (shutdown).
  virtual void interrupt() = 0;

  // Stops the queue's own threads (after the workers have stopped).
  virtual void stop() {}

  virtual QueueHealth health() const = 0;
};

} // namespace usher::queue
