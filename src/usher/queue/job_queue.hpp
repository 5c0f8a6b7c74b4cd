// The job queue between intake and workers. The database row is the truth;
// a queue delivers job ids at least once, and a delivery is acknowledged
// only after the job's final database commit. Two implementations: the
// embedded one (the jobs table itself, the default) and Redis (later).
#pragma once

#include <chrono>
#include <cstdint>
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

class JobQueue {
public:
  virtual ~JobQueue() = default;

  // Announces a job whose queued row has committed. A failure means the
  // queue cannot take it now (the caller provisions inline instead).
  virtual Result<void> dispatch(std::int64_t job_id) = 0;

  // Up to `max` jobs leased to `owner` for `lease`; waits up to `wait` when
  // there are none. Every claim counts an attempt in the job row.
  virtual std::vector<jobs::ClaimedJob> claim(const std::string &owner, int max,
                                              std::chrono::milliseconds lease,
                                              std::chrono::milliseconds wait) = 0;

  // Called after the job's final commit (succeeded or dead).
  virtual void acknowledge(std::int64_t job_id) = 0;

  // Wakes waiting claimers (shutdown).
  virtual void interrupt() = 0;

  virtual QueueHealth health() const = 0;
};

} // namespace usher::queue
