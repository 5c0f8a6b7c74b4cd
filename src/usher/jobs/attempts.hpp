// The record of each worker attempt at a job (job_attempts, migration 4):
// written in the same transaction as the attempt's outcome, read by the
// timeline (SPEC §8).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <soci/soci.h>

namespace usher::jobs {

struct Attempt {
  std::int64_t job_id = 0;
  int number = 0;      // the job's attempt count when it was claimed (1, 2, ...)
  std::string worker;  // the lease owner: "INSTANCE:PID:RANDOM:THREAD"
  std::string outcome; // "succeeded", "failed" (queued again) or "dead"
  std::optional<std::string> error;
  std::string started_at;  // ISO 8601: when the worker took the job
  std::string finished_at; // ISO 8601: when the outcome was written
  long long duration_ms = 0;
};

// Writes `attempt` in the caller's transaction.
void record_attempt(soci::session &sql, const Attempt &attempt);

// The attempts at `job_id`, oldest first.
std::vector<Attempt> attempts_of(soci::session &sql, std::int64_t job_id);

} // namespace usher::jobs
