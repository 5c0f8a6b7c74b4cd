// Outbound events (SPEC §9): `user.provisioned` and `job.dead`, written to
// the webhook outbox (webhook_outbox) in the same transaction as the job's
// final transition, one row per receiving URL, then claimed, POSTed and
// settled by the OutboundSender. Event ids are deterministic, so a row is
// written at most once per event and URL, and receivers de-duplicate the
// at-least-once delivery on `id`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

namespace usher::webhooks {

// Where events go (WEBHOOK_URLS), decided once at start-up and passed to
// the code that ends jobs. Empty (or a null pointer to it): nothing is
// written and no statement runs.
struct OutboundTargets {
  std::vector<std::string> urls;
  bool enabled() const { return !urls.empty(); }
};

inline constexpr const char *k_user_provisioned = "user.provisioned";
inline constexpr const char *k_job_dead = "job.dead";

// `evt_user_provisioned_<job id>`: one per job, whichever path provisioned it.
std::string user_provisioned_id(std::int64_t job_id);
// `evt_job_dead_<job id>_<attempts>` for the job's first death; a dead job
// retried (its attempts start again) and dead again is a new event:
// `evt_job_dead_<job id>_<attempts>_<death>` from its second death on.
std::string job_dead_id(std::int64_t job_id, int attempts, int death = 1);

// The event's body, `{"id","type","created_at","data":{…}}`, as POSTed.
std::string event_body(const std::string &id, const std::string &type,
                       const std::string &created_at, const nlohmann::json &data);

struct ProvisionedUser {
  std::int64_t user_id = 0;
  std::int64_t job_id = 0;
  std::string email;
  std::string full_name;
  std::optional<std::string> product;
  std::string created_by; // the actor, "NAME (token ID)"
};

struct DeadJob {
  std::int64_t job_id = 0;
  std::string email;
  int attempts = 0;
  std::string last_error;
  int death = 1; // the job's how-manyth dead transition (jobs.deaths)
};

// Write the event for each URL of `targets` in the caller's transaction
// (nothing when `targets` is null or empty); `now` is ISO 8601. A row that
// exists already (same event id and URL) is left as it is.
void enqueue_user_provisioned(soci::session &sql, const OutboundTargets *targets,
                              const ProvisionedUser &user, const std::string &now);
void enqueue_job_dead(soci::session &sql, const OutboundTargets *targets, const DeadJob &job,
                      const std::string &now);

struct OutboundMessage {
  std::int64_t id = 0;
  std::string event_id;
  std::string url;
  std::string body;
  int attempts = 0; // attempts made before this one
  std::string created_at;
};

// True when a pending message is due at `now` (a read; no lock taken).
bool has_due(soci::session &sql, const std::string &now);

// Leases the oldest pending message due at `now` until `lease_until`
// (SKIP LOCKED on PostgreSQL); nullopt when none is due.
std::optional<OutboundMessage> claim_next(soci::session &sql, const std::string &now,
                                          const std::string &lease_until);

// Settles an attempt: delivered, retried at `next_attempt_at`, or given up.
void mark_sent(soci::session &sql, std::int64_t id, const std::string &now);
void schedule_retry(soci::session &sql, std::int64_t id, const std::string &next_attempt_at,
                    const std::string &error);
void mark_failed(soci::session &sql, std::int64_t id, const std::string &error);
// Gives a claimed message back without counting an attempt (shutdown).
void release(soci::session &sql, std::int64_t id, const std::string &now);

} // namespace usher::webhooks
