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

// Writes attempts with one statement prepared once per connection
// (WriteContext::prepared<AttemptRecorder>()): the worker records one per
// job, and parsing the INSERT anew each time cost about a fifth of a drain's
// CPU (docs/benchmarks.md, "Where the time goes").
class AttemptRecorder {
public:
  explicit AttemptRecorder(soci::session &sql);

  // Writes `attempt` in the caller's transaction.
  void record(const Attempt &attempt);

private:
  // Bound parameters: the statement reads them when it executes.
  long long m_job_id = 0;
  Attempt m_row;
  std::string m_error;
  soci::indicator m_error_indicator = soci::i_null;
  soci::statement m_insert;
};

// Writes `attempt` in the caller's transaction (a statement prepared for
// this one call).
void record_attempt(soci::session &sql, const Attempt &attempt);

// The attempts at `job_id`, oldest first.
std::vector<Attempt> attempts_of(soci::session &sql, std::int64_t job_id);

} // namespace usher::jobs
