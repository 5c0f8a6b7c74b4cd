// Retention's batches (see retention.hpp). Each kind picks at most one
// batch of ids, then deletes exactly those rows in a short transaction.
#include <usher/store/retention.hpp>

#include <vector>

namespace usher::store {
namespace {

// Old succeeded jobs from where the last batch stopped, in (updated_at, id)
// order (index jobs_status_updated).
constexpr const char *k_old_succeeded_jobs =
    "SELECT id, updated_at FROM jobs WHERE status = 'succeeded' AND updated_at < :before "
    "AND (updated_at > :after OR (updated_at = :after2 AND id > :after_id)) "
    "ORDER BY updated_at, id LIMIT :n";
constexpr const char *k_delete_attempts_of_job = "DELETE FROM job_attempts WHERE job_id = :id";

// The old rows in id order. Without an index on their time these read the
// table once when nothing is old; the tables are small (bounded by this
// very pruning, storms folded into one row), and a row written with a
// clock in the future cannot hold the others back.
constexpr const char *k_old_health_events =
    "SELECT id FROM system_health_logs WHERE created_at < :before ORDER BY id LIMIT :n";
// The batch is every old event up to `last`: its alerts keep their text.
constexpr const char *k_unlink_alerts =
    "UPDATE alert_outbox SET health_log_id = NULL WHERE health_log_id <= :last AND EXISTS ("
    "SELECT 1 FROM system_health_logs h WHERE h.id = alert_outbox.health_log_id "
    "AND h.created_at < :before)";
constexpr const char *k_delete_health_events =
    "DELETE FROM system_health_logs WHERE id <= :last AND created_at < :before";

constexpr const char *k_old_alerts =
    "SELECT id FROM alert_outbox WHERE status IN ('sent', 'failed') AND created_at < :before "
    "ORDER BY id LIMIT :n";
constexpr const char *k_delete_alert = "DELETE FROM alert_outbox WHERE id = :id";

constexpr const char *k_old_outbound =
    "SELECT id FROM webhook_outbox WHERE status IN ('sent', 'failed') AND created_at < :before "
    "ORDER BY id LIMIT :n";
constexpr const char *k_delete_outbound = "DELETE FROM webhook_outbox WHERE id = :id";

// Index idempotency_keys_created_at.
constexpr const char *k_old_idempotency_keys =
    "SELECT id FROM idempotency_keys WHERE created_at < :before ORDER BY created_at LIMIT :n";
constexpr const char *k_delete_idempotency_key = "DELETE FROM idempotency_keys WHERE id = :id";

constexpr const char *k_expired_sessions =
    "SELECT id FROM sessions WHERE expires_at < :now ORDER BY id LIMIT :n";
constexpr const char *k_delete_session = "DELETE FROM sessions WHERE id = :id";

// One batch's transaction. SQLite: IMMEDIATE takes the write lock at BEGIN,
// waiting (busy timeout) for the writer instead of failing when a read
// transaction has to become a write one. Rolled back unless committed.
class BatchTransaction {
public:
  BatchTransaction(soci::session &sql, Dialect dialect) : m_sql(sql) {
    begin_write(m_sql, dialect);
  }
  ~BatchTransaction() {
    if (m_committed) return;
    try {
      m_sql.rollback();
    } catch (const std::exception &) {
      // The connection is gone; the caller sees the first error.
    }
  }
  BatchTransaction(const BatchTransaction &) = delete;
  BatchTransaction &operator=(const BatchTransaction &) = delete;

  void commit() {
    m_sql.commit();
    m_committed = true;
  }

private:
  soci::session &m_sql;
  bool m_committed = false;
};

// Deletes each of `ids` with `statement` (one prepared, bulk-bound statement).
long long delete_ids(soci::session &sql, const char *statement, std::vector<long long> &ids) {
  if (ids.empty()) return 0;
  sql << statement, soci::use(ids);
  return static_cast<long long>(ids.size());
}

int limit_of(std::size_t batch_size) { return static_cast<int>(batch_size); }

} // namespace

PruneCounts &PruneCounts::operator+=(const PruneCounts &other) {
  job_attempts += other.job_attempts;
  health_events += other.health_events;
  alerts += other.alerts;
  outbound_events += other.outbound_events;
  idempotency_keys += other.idempotency_keys;
  sessions += other.sessions;
  return *this;
}

Retention::Retention(RetentionSettings settings, Dialect dialect, const clock::Clock &clock)
    : m_settings(settings), m_dialect(dialect), m_clock(clock) {
  if (m_settings.batch_size == 0) m_settings.batch_size = 1;
  if (m_settings.max_batches == 0) m_settings.max_batches = 1;
}

std::optional<PruneCounts> Retention::run_if_due(soci::session &sql) {
  const auto now = m_clock.now();
  if (m_next_run && now < *m_next_run) return std::nullopt;
  PruneCounts counts = run(sql);
  m_next_run = now + m_settings.interval;
  return counts;
}

PruneCounts Retention::run(soci::session &sql) {
  PruneCounts total;
  for (unsigned round = 0; round < m_settings.max_batches; ++round) {
    const Batch batch = prune_batch(sql, m_clock.wall());
    total += batch.counts;
    if (!batch.more) break;
  }
  return total;
}

std::pair<long long, bool> Retention::prune_job_attempts(soci::session &sql,
                                                         const std::string &before) {
  std::vector<long long> ids(m_settings.batch_size);
  std::vector<std::string> updated(m_settings.batch_size);
  const int n = limit_of(m_settings.batch_size);
  sql << k_old_succeeded_jobs, soci::use(before), soci::use(m_jobs_done_until),
      soci::use(m_jobs_done_until), soci::use(m_jobs_done_id), soci::use(n), soci::into(ids),
      soci::into(updated);
  if (ids.empty()) return {0, false};
  long long deleted = 0;
  {
    BatchTransaction tr(sql, m_dialect);
    soci::statement st = (sql.prepare << k_delete_attempts_of_job, soci::use(ids));
    st.execute(true);
    deleted = st.get_affected_rows();
    tr.commit();
  }
  m_jobs_done_until = updated.back();
  m_jobs_done_id = ids.back();
  return {deleted, ids.size() == m_settings.batch_size};
}

Retention::Batch Retention::prune_batch(soci::session &sql, clock::WallTime now) {
  PruneCounts counts;
  const int n = limit_of(m_settings.batch_size);
  const auto full = static_cast<long long>(m_settings.batch_size);

  const auto [attempts, more_jobs] = prune_job_attempts(sql, clock::iso8601(now - m_settings.jobs));
  counts.job_attempts = attempts;

  {
    const std::string before = clock::iso8601(now - m_settings.health_events);
    std::vector<long long> ids(m_settings.batch_size);
    sql << k_old_health_events, soci::use(before), soci::use(n), soci::into(ids);
    if (!ids.empty()) {
      const long long last = ids.back();
      BatchTransaction tr(sql, m_dialect);
      sql << k_unlink_alerts, soci::use(last), soci::use(before);
      sql << k_delete_health_events, soci::use(last), soci::use(before);
      tr.commit();
      counts.health_events = static_cast<long long>(ids.size());
    }
  }

  {
    const std::string before = clock::iso8601(now - m_settings.alerts);
    std::vector<long long> ids(m_settings.batch_size);
    sql << k_old_alerts, soci::use(before), soci::use(n), soci::into(ids);
    if (!ids.empty()) {
      BatchTransaction tr(sql, m_dialect);
      counts.alerts = delete_ids(sql, k_delete_alert, ids);
      tr.commit();
    }
  }

  {
    // Outbound events age like alerts: delivered or given up, kept a while
    // for an enquiry, then deleted; pending ones stay.
    const std::string before = clock::iso8601(now - m_settings.alerts);
    std::vector<long long> ids(m_settings.batch_size);
    sql << k_old_outbound, soci::use(before), soci::use(n), soci::into(ids);
    if (!ids.empty()) {
      BatchTransaction tr(sql, m_dialect);
      counts.outbound_events = delete_ids(sql, k_delete_outbound, ids);
      tr.commit();
    }
  }

  {
    const std::string before = clock::iso8601(now - m_settings.idempotency_keys);
    std::vector<long long> ids(m_settings.batch_size);
    sql << k_old_idempotency_keys, soci::use(before), soci::use(n), soci::into(ids);
    if (!ids.empty()) {
      BatchTransaction tr(sql, m_dialect);
      counts.idempotency_keys = delete_ids(sql, k_delete_idempotency_key, ids);
      tr.commit();
    }
  }

  {
    const std::string now_text = clock::iso8601(now);
    std::vector<long long> ids(m_settings.batch_size);
    sql << k_expired_sessions, soci::use(now_text), soci::use(n), soci::into(ids);
    if (!ids.empty()) {
      BatchTransaction tr(sql, m_dialect);
      counts.sessions = delete_ids(sql, k_delete_session, ids);
      tr.commit();
    }
  }
  const bool more = more_jobs || counts.health_events == full || counts.alerts == full ||
                    counts.outbound_events == full || counts.idempotency_keys == full ||
                    counts.sessions == full;
  return {counts, more};
}

} // namespace usher::store
