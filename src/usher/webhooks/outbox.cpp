// SQL of the webhook outbox (see outbox.hpp).
#include <usher/webhooks/outbox.hpp>

#include <fmt/format.h>

#include <usher/store/dialect.hpp>

namespace usher::webhooks {
namespace {

constexpr const char *k_insert =
    "INSERT INTO webhook_outbox (event_id, event_type, url, body, status, attempts, "
    "next_attempt_at, created_at) VALUES (:event_id, :event_type, :url, :body, 'pending', 0, "
    ":next_attempt_at, :created_at) ON CONFLICT DO NOTHING";

constexpr const char *k_has_due =
    "SELECT COUNT(*) FROM (SELECT id FROM webhook_outbox WHERE status = 'pending' "
    "AND next_attempt_at <= :now LIMIT 1) due";

// The outer conditions repeat the inner ones so that, on PostgreSQL, a row
// another sender claimed meanwhile is not claimed twice; {SKIP_LOCKED} lets
// that other sender take the next row instead of waiting for this one.
constexpr const char *k_claim =
    "UPDATE webhook_outbox SET next_attempt_at = :lease_until "
    "WHERE id = (SELECT id FROM webhook_outbox WHERE status = 'pending' AND next_attempt_at <= "
    ":now ORDER BY id LIMIT 1{SKIP_LOCKED}) AND status = 'pending' AND next_attempt_at <= :now2 "
    "RETURNING id, event_id, url, body, attempts, created_at";

constexpr const char *k_sent =
    "UPDATE webhook_outbox SET status = 'sent', attempts = attempts + 1, sent_at = :now, "
    "last_error = NULL WHERE id = :id";

constexpr const char *k_retry =
    "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = :next_attempt_at, "
    "last_error = :error WHERE id = :id AND status = 'pending'";

constexpr const char *k_failed =
    "UPDATE webhook_outbox SET status = 'failed', attempts = attempts + 1, last_error = :error "
    "WHERE id = :id";

constexpr const char *k_release =
    "UPDATE webhook_outbox SET next_attempt_at = :now WHERE id = :id AND status = 'pending'";

void enqueue(soci::session &sql, const OutboundTargets &targets, const std::string &id,
             const std::string &type, const std::string &now, const nlohmann::json &data) {
  const std::string body = event_body(id, type, now, data);
  for (const auto &url : targets.urls) {
    sql << k_insert, soci::use(id), soci::use(type), soci::use(url), soci::use(body),
        soci::use(now), soci::use(now);
  }
}

} // namespace

std::string user_provisioned_id(std::int64_t job_id) {
  return fmt::format("evt_user_provisioned_{}", job_id);
}

std::string job_dead_id(std::int64_t job_id, int attempts, int death) {
  if (death <= 1) return fmt::format("evt_job_dead_{}_{}", job_id, attempts);
  return fmt::format("evt_job_dead_{}_{}_{}", job_id, attempts, death);
}

std::string event_body(const std::string &id, const std::string &type,
                       const std::string &created_at, const nlohmann::json &data) {
  return nlohmann::json{{"id", id}, {"type", type}, {"created_at", created_at}, {"data", data}}
      .dump();
}

void enqueue_user_provisioned(soci::session &sql, const OutboundTargets *targets,
                              const ProvisionedUser &user, const std::string &now) {
  if (targets == nullptr || !targets->enabled()) return;
  const nlohmann::json data = {
      {"user_id", user.user_id},
      {"email", user.email},
      {"job_id", user.job_id},
      {"full_name", user.full_name},
      {"product", user.product ? nlohmann::json(*user.product) : nlohmann::json(nullptr)},
      {"created_by", user.created_by}};
  enqueue(sql, *targets, user_provisioned_id(user.job_id), k_user_provisioned, now, data);
}

void enqueue_job_dead(soci::session &sql, const OutboundTargets *targets, const DeadJob &job,
                      const std::string &now) {
  if (targets == nullptr || !targets->enabled()) return;
  const nlohmann::json data = {{"job_id", job.job_id},
                               {"email", job.email},
                               {"attempts", job.attempts},
                               {"last_error", job.last_error}};
  enqueue(sql, *targets, job_dead_id(job.job_id, job.attempts, job.death), k_job_dead, now, data);
}

bool has_due(soci::session &sql, const std::string &now) {
  long long due = 0;
  sql << k_has_due, soci::use(now), soci::into(due);
  return due > 0;
}

std::optional<OutboundMessage> claim_next(soci::session &sql, const std::string &now,
                                          const std::string &lease_until) {
  OutboundMessage message;
  long long id = 0;
  sql << store::with_skip_locked(sql, k_claim), soci::use(lease_until), soci::use(now),
      soci::use(now), soci::into(id), soci::into(message.event_id), soci::into(message.url),
      soci::into(message.body), soci::into(message.attempts), soci::into(message.created_at);
  if (!sql.got_data()) return std::nullopt;
  message.id = id;
  return message;
}

void mark_sent(soci::session &sql, std::int64_t id, const std::string &now) {
  const long long key = id;
  sql << k_sent, soci::use(now), soci::use(key);
}

void schedule_retry(soci::session &sql, std::int64_t id, const std::string &next_attempt_at,
                    const std::string &error) {
  const long long key = id;
  sql << k_retry, soci::use(next_attempt_at), soci::use(error), soci::use(key);
}

void mark_failed(soci::session &sql, std::int64_t id, const std::string &error) {
  const long long key = id;
  sql << k_failed, soci::use(error), soci::use(key);
}

void release(soci::session &sql, std::int64_t id, const std::string &now) {
  const long long key = id;
  sql << k_release, soci::use(now), soci::use(key);
}

} // namespace usher::webhooks
