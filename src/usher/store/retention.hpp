// Retention (docs/operations.md, "Retention"): what usher no longer needs is
// deleted in small batches, each in its own short transaction, so that the
// database stays flat under steady load and the writer is never held up.
//
// - attempts (the timeline rows) of succeeded jobs older than `jobs`; the
//   job row itself stays: it is what makes a second request for the same
//   email a 409 (SPEC §2), one row per account like the account itself;
// - health events older than `health_events` (an alert that points at one
//   keeps its text, its link is cleared);
// - sent and failed alerts, and sent and given-up outbound events
//   (webhook_outbox), older than `alerts`; pending ones stay;
// - idempotency keys older than `idempotency_keys` (at least 24 h, SPEC §3);
// - expired login sessions.
// Dead jobs and their attempts are kept until retried or deleted by an admin.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include <soci/soci.h>

#include <usher/store/database.hpp>
#include <usher/util/clock.hpp>

namespace usher::store {

struct RetentionSettings {
  std::chrono::hours jobs{24 * 30};
  std::chrono::hours health_events{24 * 30};
  std::chrono::hours alerts{24 * 30};
  std::chrono::hours idempotency_keys{24};
  // How often a pruning run starts.
  std::chrono::milliseconds interval{60000};
  // Rows per statement and transaction; a run repeats a kind until a batch
  // comes back short, at most `max_batches` times (the rest waits a run).
  std::size_t batch_size = 500;
  unsigned max_batches = 20;
};

// Rows deleted, by kind.
struct PruneCounts {
  long long job_attempts = 0;
  long long health_events = 0;
  long long alerts = 0;
  long long outbound_events = 0;
  long long idempotency_keys = 0;
  long long sessions = 0;

  long long total() const {
    return job_attempts + health_events + alerts + outbound_events + idempotency_keys + sessions;
  }
  PruneCounts &operator+=(const PruneCounts &other);
};

// The pruning schedule. Not thread-safe: one maintenance thread owns it.
class Retention {
public:
  Retention(RetentionSettings settings, Dialect dialect, const clock::Clock &clock);

  // Prunes when a run is due on `clock` (the first call always runs);
  // nullopt when not due. Throws soci::soci_error when the database fails
  // (the next call retries: a failed run is not counted as done).
  std::optional<PruneCounts> run_if_due(soci::session &sql);

private:
  // One batch of each kind at the wall time `now`, each kind in its own
  // transaction; `more` when some kind filled its batch.
  struct Batch {
    PruneCounts counts;
    bool more = false;
  };
  Batch prune_batch(soci::session &sql, clock::WallTime now);
  PruneCounts run(soci::session &sql);
  // Attempts deleted, and whether the batch of jobs looked at was full.
  std::pair<long long, bool> prune_job_attempts(soci::session &sql, const std::string &before);

  RetentionSettings m_settings;
  Dialect m_dialect;
  const clock::Clock &m_clock;
  std::optional<std::chrono::steady_clock::time_point> m_next_run;
  // Succeeded jobs whose attempts were pruned stay, so the scan resumes after
  // the last one done (updated_at, id) rather than from the start; a new
  // process starts over once.
  std::string m_jobs_done_until;
  long long m_jobs_done_id = 0;
};

} // namespace usher::store
