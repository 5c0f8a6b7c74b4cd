// The alert outbox (alert_outbox): messages written in the same transaction
// as the event that causes them, then claimed, delivered and settled by the
// AlertSender. A claim is a lease (next_attempt_at moves past the send), so
// several processes may send from one database without sending twice, and a
// message whose sender died is taken again when its lease ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <soci/soci.h>

#include <usher/alerts/policy.hpp>

namespace usher::alerts {

// Writes one pending message per chat of `policy` in the caller's
// transaction; nothing when alerts are off or `kind` does not alert.
// `now` is ISO 8601 (the first attempt is due at once).
void enqueue(soci::session &sql, const AlertPolicy &policy, AlertKind kind,
             std::optional<std::int64_t> health_log_id, const std::string &text,
             const std::string &now);

struct OutboxMessage {
  std::int64_t id = 0;
  std::string chat_id;
  std::string kind;
  std::string text;
  int attempts = 0; // attempts made before this one
  std::string created_at;
};

// True when a pending message is due at `now` (a read; no lock taken). A
// message is due once its time has come and no earlier message to its chat is
// still pending: each chat gets its messages in the order they were written.
bool has_due(soci::session &sql, const std::string &now);

// Leases the oldest pending message due at `now` until `lease_until`;
// nullopt when none is due.
std::optional<OutboxMessage> claim_next(soci::session &sql, const std::string &now,
                                        const std::string &lease_until);

// Settles an attempt: delivered (to `chat_id`, which a migration may have
// changed), to be retried at `next_attempt_at`, or failed for good.
void mark_sent(soci::session &sql, std::int64_t id, const std::string &chat_id,
               const std::string &now);
void schedule_retry(soci::session &sql, std::int64_t id, const std::string &next_attempt_at,
                    const std::string &error);
void mark_failed(soci::session &sql, std::int64_t id, const std::string &error);

// Gives a claimed message back without counting an attempt (shutdown).
void release(soci::session &sql, std::int64_t id, const std::string &now);

// Messages waiting for delivery (pending, due or not), counted up to `limit`
// through the status index: the outbox-depth gauge's bounded query.
long long pending_count(soci::session &sql, long long limit);

// A group became a supergroup: every pending message for `from` goes to
// `to` instead. Returns the number of messages moved.
long long move_chat(soci::session &sql, const std::string &from, const std::string &to);

} // namespace usher::alerts
