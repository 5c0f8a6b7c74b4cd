// Provisioning jobs in the database: the durable record of every request
// and, for the embedded queue, the queue itself. Every transition is guarded
// by the current state (and the lease owner), so a duplicate delivery or a
// late worker changes nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/provisioning/new_user.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/store/dialect.hpp>
#include <usher/util/error.hpp>
#include <usher/webhooks/outbox.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::jobs {

enum class JobStatus { queued, running, succeeded, dead };

// Why a transition guarded by the lease owner changed nothing.
enum class TransitionError {
  // `owner` does not hold the job's lease (any more): another worker or the
  // recovery has it; whatever the caller wrote must be rolled back.
  lease_lost,
};

const char *to_string(TransitionError error);

// The Error form of `error`, for a write that is aborted with it.
Error to_error(TransitionError error);

const char *to_string(JobStatus status);
std::optional<JobStatus> parse_status(std::string_view text);

struct Job {
  std::int64_t id = 0;
  std::string email;
  JobStatus status = JobStatus::queued;
  int attempts = 0;
  std::optional<std::string> last_error;
  std::optional<std::int64_t> user_id;
  std::optional<std::int64_t> created_by_token_id;
  std::string created_at;
  std::string updated_at;
  std::optional<std::string> request_id; // the request that made it (X-Request-Id)

  nlohmann::json to_json() const;
};

// A job a worker holds a lease on: everything needed to provision it.
struct ClaimedJob {
  std::int64_t id = 0;
  int attempts = 0; // including this one
  provisioning::NewUser user;
  provisioning::Creator creator;
  std::optional<std::string> activation_hash;
  std::optional<std::string> activation_expires_at;
  std::string created_at; // the intake (ISO 8601), for the intake-to-success time
};

struct QueuedJob {
  std::int64_t job_id = 0;
  std::string activation_token; // clear: returned once in the 202
};

// Durable intake, prepared once per writer connection.
class IntakeStatements {
public:
  explicit IntakeStatements(soci::session &sql);

  // Records a queued job in the caller's transaction; user_exists (409) when
  // the email already has a queued, running or succeeded job.
  Result<QueuedJob> enqueue(const provisioning::NewUser &user, const provisioning::Creator &creator,
                            std::chrono::hours activation_ttl);

private:
  std::string m_email;
  std::string m_payload;
  long long m_token_id = 0;
  std::string m_now;
  std::string m_activation_hash;
  std::string m_activation_expires_at;
  std::string m_request_id;
  soci::indicator m_request_id_indicator = soci::i_null;
  store::InsertWithId m_insert;
};

// Takes up to `max` runnable queued jobs (oldest first) for `owner` until
// `lease_until`, counting an attempt each.
std::vector<ClaimedJob> claim(soci::session &sql, const std::string &owner, int max,
                              const std::string &lease_until);

// Takes the given jobs for `owner` until `lease_until`, each only while it
// is queued and due (a queue's delivery of a job id is a hint; the row
// decides). Returns the jobs taken, in the order of `ids`.
std::vector<ClaimedJob> claim_ids(soci::session &sql, const std::vector<std::int64_t> &ids,
                                  const std::string &owner, const std::string &lease_until);

// Where a job stands, for a queue deciding what to do with a delivery it
// could not claim. nullopt: no such job.
struct JobState {
  JobStatus status = JobStatus::queued;
  std::string run_after; // ISO 8601
};
std::optional<JobState> state_of(soci::session &sql, std::int64_t id);

// Queued jobs last changed at or before `changed_before`, with ids above
// `after_id`, oldest id first: the candidates a sweeper re-sends to a queue
// that may have lost them.
struct QueuedRef {
  std::int64_t id = 0;
  std::string run_after; // ISO 8601
};
std::vector<QueuedRef> queued_since(soci::session &sql, const std::string &changed_before,
                                    std::int64_t after_id, int limit);

// Extends `owner`'s lease on `job_id`; lease_lost when `owner` no longer
// holds it.
tl::expected<void, TransitionError> extend_lease(soci::session &sql, std::int64_t job_id,
                                                 const std::string &owner,
                                                 const std::string &lease_until);

// Ends a failed attempt: queued again at `retry_at`, or dead after
// `max_attempts` (with an ERROR event, alerted through `alerts` when given,
// and the `job.dead` event for each of `outbound`'s URLs, in the same
// transaction).
// Returns the new status (queued or dead), or lease_lost when `owner` no
// longer held the lease (nothing changed).
tl::expected<JobStatus, TransitionError> fail_attempt(
    soci::session &sql, std::int64_t job_id, const std::string &owner, const std::string &error,
    const std::string &retry_at, int max_attempts, const std::string &instance,
    const alerts::AlertPolicy *alerts = nullptr,
    const webhooks::OutboundTargets *outbound = nullptr);

// Jobs whose lease expired (their worker died) go back to queued, or to
// dead when they used up their attempts (alerted, and their `job.dead`
// events written, like fail_attempt).
// Returns the ids put back; `died` (optional) is set to the number made dead.
std::vector<std::int64_t> recover_expired_leases(
    soci::session &sql, int max_attempts, const std::string &instance,
    const alerts::AlertPolicy *alerts = nullptr, std::size_t *died = nullptr,
    const webhooks::OutboundTargets *outbound = nullptr);

// Gives back `owner`'s leases at shutdown without counting the attempt.
int release_leases(soci::session &sql, const std::string &owner);

std::optional<Job> find(soci::session &sql, std::int64_t id);

struct ListFilter {
  std::optional<JobStatus> status;
  std::optional<std::int64_t> before_id;
  int limit = 50;
};
std::vector<Job> list(soci::session &sql, const ListFilter &filter);

// Re-queues a dead job: not_found, or conflict when it is not dead or when
// another request for the same email is active.
Result<Job> retry_dead(soci::session &sql, std::int64_t id, const std::string &actor,
                       const std::string &instance);

struct QueueStats {
  long long queued = 0;
  long long running = 0;
  long long succeeded = 0;
  long long dead = 0;
  std::optional<double> oldest_waiting_seconds;
  double jobs_per_second_last_minute = 0;

  nlohmann::json to_json() const;
};
QueueStats stats(soci::session &sql);

// The waiting jobs for the metrics, at a bounded cost: queued jobs counted
// up to `limit` (the count saturates there), and how long the job due the
// longest has been due (since its intake, or since the retry time its
// backoff set: a job waiting out a backoff is not late); nullopt when no
// queued job is due.
struct QueueDepth {
  long long queued = 0;
  std::optional<double> oldest_waiting_seconds;
};
QueueDepth queue_depth(soci::session &sql, long long limit);

} // namespace usher::jobs
