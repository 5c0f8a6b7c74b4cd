// SQL of the alert outbox (see outbox.hpp).
#include <usher/alerts/outbox.hpp>

#include <usher/store/dialect.hpp>

namespace usher::alerts {
namespace {

constexpr const char *k_insert =
    "INSERT INTO alert_outbox (health_log_id, chat_id, kind, text, status, attempts, "
    "next_attempt_at, created_at) VALUES (:health_log_id, :chat_id, :kind, :text, 'pending', 0, "
    ":next_attempt_at, :created_at)";

// Messages to one chat go in the order they were written: a message is due
// only when no earlier message to its chat is still pending (waiting for a
// retry, or leased by a sender). Without it a RESOLVED could reach the chat
// before the CRITICAL it resolves, when the CRITICAL's first attempts failed
// (the Bot API unreachable) and it was still in its backoff when the
// RESOLVED was written.
#define USHER_OUTBOX_HEAD_OF_CHAT                                                                  \
  "o.status = 'pending' AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.chat_id = "           \
  "o.chat_id AND e.status = 'pending' AND e.id < o.id)"

constexpr const char *k_has_due =
    "SELECT COUNT(*) FROM (SELECT o.id FROM alert_outbox o WHERE " USHER_OUTBOX_HEAD_OF_CHAT
    " AND o.next_attempt_at <= :now LIMIT 1) due";

// The outer conditions repeat the inner ones so that, on PostgreSQL, a row
// another sender claimed meanwhile is not claimed twice; {SKIP_LOCKED} lets
// that other sender take the next row instead of waiting for this one (the
// next row of another chat: one of the same chat waits behind the first).
constexpr const char *k_claim =
    "UPDATE alert_outbox SET next_attempt_at = :lease_until "
    "WHERE id = (SELECT o.id FROM alert_outbox o WHERE " USHER_OUTBOX_HEAD_OF_CHAT
    " AND o.next_attempt_at <= :now ORDER BY o.id LIMIT 1{SKIP_LOCKED}) AND status = 'pending' "
    "AND next_attempt_at <= :now2 RETURNING id, chat_id, kind, text, attempts, created_at";

#undef USHER_OUTBOX_HEAD_OF_CHAT

constexpr const char *k_sent =
    "UPDATE alert_outbox SET status = 'sent', attempts = attempts + 1, sent_at = :now, "
    "chat_id = :chat_id, last_error = NULL WHERE id = :id";

constexpr const char *k_retry =
    "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = :next_attempt_at, "
    "last_error = :error WHERE id = :id AND status = 'pending'";

constexpr const char *k_failed =
    "UPDATE alert_outbox SET status = 'failed', attempts = attempts + 1, last_error = :error "
    "WHERE id = :id";

constexpr const char *k_release =
    "UPDATE alert_outbox SET next_attempt_at = :now WHERE id = :id AND status = 'pending'";

constexpr const char *k_move_chat =
    "UPDATE alert_outbox SET chat_id = :to WHERE status = 'pending' AND chat_id = :from";

} // namespace

void enqueue(soci::session &sql, const AlertPolicy &policy, AlertKind kind,
             std::optional<std::int64_t> health_log_id, const std::string &text,
             const std::string &now) {
  if (!policy.enabled() || !policy.alerts(kind)) return;
  long long log_id = health_log_id.value_or(0);
  soci::indicator log_indicator = health_log_id ? soci::i_ok : soci::i_null;
  const std::string kind_text = to_string(kind);
  for (const auto &chat : policy.chat_ids) {
    sql << k_insert, soci::use(log_id, log_indicator), soci::use(chat), soci::use(kind_text),
        soci::use(text), soci::use(now), soci::use(now);
  }
}

long long pending_count(soci::session &sql, long long limit) {
  long long count = 0;
  sql << "SELECT COUNT(*) FROM (SELECT id FROM alert_outbox WHERE status = 'pending' "
         "LIMIT :limit) waiting",
      soci::use(limit), soci::into(count);
  return count;
}

bool has_due(soci::session &sql, const std::string &now) {
  long long count = 0;
  sql << k_has_due, soci::use(now), soci::into(count);
  return count > 0;
}

std::optional<OutboxMessage> claim_next(soci::session &sql, const std::string &now,
                                        const std::string &lease_until) {
  OutboxMessage message;
  long long id = 0;
  sql << store::with_skip_locked(sql, k_claim), soci::use(lease_until), soci::use(now),
      soci::use(now), soci::into(id), soci::into(message.chat_id), soci::into(message.kind),
      soci::into(message.text), soci::into(message.attempts), soci::into(message.created_at);
  if (!sql.got_data()) return std::nullopt;
  message.id = id;
  return message;
}

void mark_sent(soci::session &sql, std::int64_t id, const std::string &chat_id,
               const std::string &now) {
  const long long key = id;
  sql << k_sent, soci::use(now), soci::use(chat_id), soci::use(key);
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

long long move_chat(soci::session &sql, const std::string &from, const std::string &to) {
  soci::statement st = (sql.prepare << k_move_chat, soci::use(to), soci::use(from));
  st.execute(true);
  return st.get_affected_rows();
}

} // namespace usher::alerts
