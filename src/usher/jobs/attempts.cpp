#include <usher/jobs/attempts.hpp>

namespace usher::jobs {
namespace {

constexpr const char *k_insert_attempt =
    "INSERT INTO job_attempts (job_id, attempt, worker, outcome, error, started_at, finished_at, "
    "duration_ms) VALUES (:job_id, :attempt, :worker, :outcome, :error, :started, :finished, "
    ":duration)";

constexpr const char *k_select_attempts =
    "SELECT attempt, worker, outcome, error, started_at, finished_at, duration_ms "
    "FROM job_attempts WHERE job_id = :job_id ORDER BY started_at, id";

} // namespace

AttemptRecorder::AttemptRecorder(soci::session &sql)
    : m_insert((sql.prepare << k_insert_attempt, soci::use(m_job_id), soci::use(m_row.number),
                soci::use(m_row.worker), soci::use(m_row.outcome),
                soci::use(m_error, m_error_indicator), soci::use(m_row.started_at),
                soci::use(m_row.finished_at), soci::use(m_row.duration_ms))) {}

void AttemptRecorder::record(const Attempt &attempt) {
  m_job_id = attempt.job_id;
  m_row = attempt;
  m_error = attempt.error.value_or("");
  m_error_indicator = attempt.error ? soci::i_ok : soci::i_null;
  m_insert.execute(true);
}

void record_attempt(soci::session &sql, const Attempt &attempt) {
  AttemptRecorder(sql).record(attempt);
}

std::vector<Attempt> attempts_of(soci::session &sql, std::int64_t job_id) {
  const long long id = job_id;
  Attempt row;
  row.job_id = job_id;
  std::string error;
  soci::indicator i_error = soci::i_null;
  soci::statement st =
      (sql.prepare << k_select_attempts, soci::use(id), soci::into(row.number),
       soci::into(row.worker), soci::into(row.outcome), soci::into(error, i_error),
       soci::into(row.started_at), soci::into(row.finished_at), soci::into(row.duration_ms));
  st.execute();
  std::vector<Attempt> found;
  while (st.fetch()) {
    Attempt attempt = row;
    if (i_error == soci::i_ok) attempt.error = error;
    found.push_back(std::move(attempt));
  }
  return found;
}

} // namespace usher::jobs
