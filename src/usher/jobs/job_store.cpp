#include <usher/jobs/job_store.hpp>

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include <usher/auth/activation.hpp>
#include <usher/health/health_log.hpp>
#include <usher/store/dialect.hpp>
#include <usher/util/clock.hpp>

namespace usher::jobs {
namespace {

// active_email: the email while the job is not dead (migration 11): its
// unique index refuses a second active job for one email.
constexpr const char *k_insert_queued =
    "INSERT INTO jobs (email, email_normalized, active_email, payload, status, attempts, "
    "created_by_token_id, run_after, created_at, updated_at, activation_token_hash, "
    "activation_expires_at, request_id) "
    "VALUES (:email, :norm, :active, :payload, 'queued', 0, :token_id, :now, :now2, :now3, :hash, "
    ":exp, :request_id) "
    "ON CONFLICT DO NOTHING";

// The claim's rows: the oldest runnable jobs. {SKIP_LOCKED} (PostgreSQL)
// lets claimers in other processes take the next rows instead of waiting
// for these (store::skip_locked).
constexpr const char *k_claim =
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = :owner, "
    "lease_expires_at = :lease, updated_at = :now "
    "WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= :now2 "
    "ORDER BY run_after LIMIT :max{SKIP_LOCKED}) "
    "RETURNING id, attempts, payload, created_by_token_id, activation_token_hash, "
    "activation_expires_at, created_at, request_id";

// The claim of given ids (a queue's deliveries): every row guarded by its
// own state (queued and due), so a duplicate or late delivery takes nothing;
// one statement for up to k_claim_ids_per_statement ids, {IDS} replaced by
// that many bound parameters.
constexpr const char *k_claim_ids =
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = :owner, "
    "lease_expires_at = :lease, updated_at = :now "
    "WHERE id IN ({IDS}) AND status = 'queued' AND run_after <= :now2 "
    "RETURNING id, attempts, payload, created_by_token_id, activation_token_hash, "
    "activation_expires_at, created_at, request_id";

// Far below the bound parameters either database accepts in one statement
// (SQLite 32,766, PostgreSQL 65,535) and above any claim batch.
constexpr std::size_t k_claim_ids_per_statement = 512;

constexpr const char *k_extend =
    "UPDATE jobs SET lease_expires_at = :lease WHERE id = :id AND status = 'running' "
    "AND lease_owner = :owner";

// `deaths` counts the job's dead transitions: the job.dead event's id. A
// dead job leaves the unique index of active emails (active_email NULL).
constexpr const char *k_fail =
    "UPDATE jobs SET status = CASE WHEN attempts >= :max THEN 'dead' ELSE 'queued' END, "
    "deaths = deaths + CASE WHEN attempts >= :max2 THEN 1 ELSE 0 END, "
    "active_email = CASE WHEN attempts >= :max3 THEN NULL ELSE active_email END, "
    "last_error = :error, run_after = :retry_at, lease_owner = NULL, lease_expires_at = NULL, "
    "updated_at = :now WHERE id = :id AND status = 'running' AND lease_owner = :owner "
    "RETURNING status, email, attempts, deaths, request_id";

constexpr const char *k_recover =
    "UPDATE jobs SET status = CASE WHEN attempts >= :max THEN 'dead' ELSE 'queued' END, "
    "deaths = deaths + CASE WHEN attempts >= :max2 THEN 1 ELSE 0 END, "
    "active_email = CASE WHEN attempts >= :max3 THEN NULL ELSE active_email END, "
    "last_error = 'the worker holding the lease stopped or crashed', run_after = :now, "
    "lease_owner = NULL, lease_expires_at = NULL, updated_at = :now2 "
    "WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < :now3"
    "{SKIP_LOCKED}) "
    "RETURNING id, status, email, attempts, deaths, request_id";

constexpr const char *k_release =
    "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, "
    "lease_expires_at = NULL, updated_at = :now WHERE status = 'running' AND lease_owner = :owner";

constexpr const char *k_select_job =
    "SELECT id, email, status, attempts, last_error, user_id, created_by_token_id, created_at, "
    "updated_at, request_id FROM jobs ";

constexpr const char *k_retry =
    "UPDATE jobs SET status = 'queued', active_email = email_normalized, attempts = 0, "
    "run_after = :now, last_error = NULL, updated_at = :now2 WHERE id = :id AND status = 'dead' "
    "AND NOT EXISTS (SELECT 1 FROM jobs other WHERE other.active_email = jobs.email_normalized)";

// The request id a job row holds (NULL when its request had none).
std::string request_id_of(soci::indicator indicator, const std::string &value) {
  return indicator == soci::i_ok ? value : std::string();
}

void record_dead(soci::session &sql, long long id, const std::string &email, int attempts,
                 int deaths, const std::string &error, const std::string &request_id,
                 const std::string &instance, const alerts::AlertPolicy *alerts,
                 const webhooks::OutboundTargets *outbound, const std::string &now) {
  nlohmann::json metadata = {
      {"job_id", id}, {"email", email}, {"attempts", attempts}, {"last_error", error}};
  if (!request_id.empty()) metadata["request_id"] = request_id;
  webhooks::enqueue_job_dead(sql, outbound, {id, email, attempts, error, deaths}, now);
  health::record(sql, health::EventType::error,
                 fmt::format("job {} for {} is dead after {} attempts: the customer has no account",
                             id, email, attempts),
                 metadata, instance, {alerts, "job_dead"});
}

// Reads the rows of a prepared k_select_job statement.
struct JobRow {
  long long id = 0;
  std::string email, status, last_error, created_at, updated_at, request_id;
  int attempts = 0;
  long long user_id = 0, token_id = 0;
  soci::indicator i_error = soci::i_null, i_user = soci::i_null, i_token = soci::i_null,
                  i_request = soci::i_null;

  template <typename Statement>
  void bind(Statement &st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(email));
    st.exchange(soci::into(status));
    st.exchange(soci::into(attempts));
    st.exchange(soci::into(last_error, i_error));
    st.exchange(soci::into(user_id, i_user));
    st.exchange(soci::into(token_id, i_token));
    st.exchange(soci::into(created_at));
    st.exchange(soci::into(updated_at));
    st.exchange(soci::into(request_id, i_request));
  }

  Job job() const {
    Job j;
    j.id = id;
    j.email = email;
    j.status = parse_status(status).value_or(JobStatus::queued);
    j.attempts = attempts;
    if (i_error == soci::i_ok) j.last_error = last_error;
    if (i_user == soci::i_ok) j.user_id = user_id;
    if (i_token == soci::i_ok) j.created_by_token_id = token_id;
    j.created_at = created_at;
    j.updated_at = updated_at;
    if (i_request == soci::i_ok) j.request_id = request_id;
    return j;
  }
};

} // namespace

const char *to_string(JobStatus status) {
  switch (status) {
  case JobStatus::queued: return "queued";
  case JobStatus::running: return "running";
  case JobStatus::succeeded: return "succeeded";
  case JobStatus::dead: return "dead";
  }
  return "queued";
}

std::optional<JobStatus> parse_status(std::string_view text) {
  for (auto s : {JobStatus::queued, JobStatus::running, JobStatus::succeeded, JobStatus::dead}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

const char *to_string(TransitionError error) {
  switch (error) {
  case TransitionError::lease_lost: return "lease_lost";
  }
  return "lease_lost";
}

Error to_error(TransitionError error) {
  switch (error) {
  case TransitionError::lease_lost:
    return Error{ErrorKind::conflict, to_string(error),
                 "another worker holds this job now; its work is rolled back", ""};
  }
  return Error{ErrorKind::internal, to_string(error), "", ""};
}

nlohmann::json Job::to_json() const {
  return {{"id", id},
          {"email", email},
          {"status", to_string(status)},
          {"attempts", attempts},
          {"last_error", last_error ? nlohmann::json(*last_error) : nlohmann::json(nullptr)},
          {"user_id", user_id ? nlohmann::json(*user_id) : nlohmann::json(nullptr)},
          {"created_at", created_at},
          {"updated_at", updated_at},
          {"request_id", request_id ? nlohmann::json(*request_id) : nlohmann::json(nullptr)}};
}

IntakeStatements::IntakeStatements(soci::session &sql) : m_insert(sql) {
  auto &insert = m_insert.statement();
  insert.exchange(soci::use(m_email)); // :email
  insert.exchange(soci::use(m_email)); // :norm
  insert.exchange(soci::use(m_email)); // :active
  insert.exchange(soci::use(m_payload));
  insert.exchange(soci::use(m_token_id));
  insert.exchange(soci::use(m_now)); // run_after
  insert.exchange(soci::use(m_now)); // created_at
  insert.exchange(soci::use(m_now)); // updated_at
  insert.exchange(soci::use(m_activation_hash));
  insert.exchange(soci::use(m_activation_expires_at));
  insert.exchange(soci::use(m_request_id, m_request_id_indicator));
  m_insert.prepare(k_insert_queued);
}

Result<QueuedJob> IntakeStatements::enqueue(const provisioning::NewUser &user,
                                            const provisioning::Creator &creator,
                                            std::chrono::hours activation_ttl) {
  const auto now = std::chrono::system_clock::now();
  m_now = clock::iso8601(now);
  m_email = user.email;
  auto payload = user.to_json();
  payload["created_by"] = creator.actor;
  m_payload = payload.dump();
  m_token_id = creator.token_id;
  m_request_id = creator.request_id;
  m_request_id_indicator = creator.request_id.empty() ? soci::i_null : soci::i_ok;
  auto secret = auth::issue_activation_token(now);
  m_activation_hash = std::move(secret.hash);
  m_activation_expires_at = clock::iso8601(now + activation_ttl);
  // The unique index on active_email (the normalised email of every job not
  // dead) decides: no row inserted is a conflict.
  const auto job_id = m_insert.run();
  if (!job_id) {
    return fail(ErrorKind::conflict, "user_exists",
                "an account or a pending request already exists for " + user.email, "email");
  }
  return QueuedJob{*job_id, std::move(secret.token)};
}

namespace {
ClaimedJob claimed_job(long long id, int attempts, const std::string &payload, long long token_id,
                       soci::indicator i_token, const std::string &hash, soci::indicator i_hash,
                       const std::string &expires, soci::indicator i_expires,
                       const std::string &created_at, const std::string &request_id,
                       soci::indicator i_request) {
  ClaimedJob job;
  job.id = id;
  job.created_at = created_at;
  job.attempts = attempts;
  const auto body = nlohmann::json::parse(payload, nullptr, false);
  if (body.is_object()) {
    job.user.email = body.value("email", "");
    job.user.full_name = body.value("full_name", "");
    if (body.contains("phone")) job.user.phone = body.value("phone", "");
    if (body.contains("product")) job.user.product = body.value("product", "");
    job.creator.actor = body.value("created_by", "");
  }
  if (i_token == soci::i_ok) job.creator.token_id = token_id;
  if (i_hash == soci::i_ok) job.activation_hash = hash;
  if (i_expires == soci::i_ok) job.activation_expires_at = expires;
  job.creator.request_id = request_id_of(i_request, request_id);
  return job;
}
} // namespace

namespace {
// `count` bound parameters for an IN list: ":id0, :id1, ...".
std::string id_parameters(std::size_t count) {
  std::string list;
  for (std::size_t i = 0; i < count; ++i) list += fmt::format("{}:id{}", i == 0 ? "" : ", ", i);
  return list;
}

// One k_claim_ids statement for `ids` (at most k_claim_ids_per_statement):
// the jobs taken, by id.
void claim_ids_once(soci::session &sql, const std::vector<long long> &ids, const std::string &owner,
                    const std::string &lease_until, const std::string &now,
                    std::unordered_map<std::int64_t, ClaimedJob> &taken) {
  std::string text = k_claim_ids;
  const std::string marker = "{IDS}";
  text.replace(text.find(marker), marker.size(), id_parameters(ids.size()));
  long long id = 0, token_id = 0;
  int attempts = 0;
  std::string payload, hash, expires, created_at, request_id;
  soci::indicator i_token = soci::i_null, i_hash = soci::i_null, i_expires = soci::i_null,
                  i_request = soci::i_null;
  soci::statement st(sql);
  st.exchange(soci::use(owner));
  st.exchange(soci::use(lease_until));
  st.exchange(soci::use(now));
  for (const auto &wanted : ids) st.exchange(soci::use(wanted));
  st.exchange(soci::use(now));
  st.exchange(soci::into(id));
  st.exchange(soci::into(attempts));
  st.exchange(soci::into(payload));
  st.exchange(soci::into(token_id, i_token));
  st.exchange(soci::into(hash, i_hash));
  st.exchange(soci::into(expires, i_expires));
  st.exchange(soci::into(created_at));
  st.exchange(soci::into(request_id, i_request));
  st.alloc();
  st.prepare(text);
  st.define_and_bind();
  // Fetched to the end, which also finishes the statement (SQLite keeps a
  // RETURNING statement open otherwise).
  if (!st.execute(true)) return;
  do {
    taken.emplace(id, claimed_job(id, attempts, payload, token_id, i_token, hash, i_hash, expires,
                                  i_expires, created_at, request_id, i_request));
  } while (st.fetch());
}
} // namespace

std::vector<ClaimedJob> claim_ids(soci::session &sql, const std::vector<std::int64_t> &ids,
                                  const std::string &owner, const std::string &lease_until) {
  const std::string now = clock::now_iso8601();
  std::unordered_map<std::int64_t, ClaimedJob> taken;
  for (std::size_t first = 0; first < ids.size(); first += k_claim_ids_per_statement) {
    const auto last = std::min(ids.size(), first + k_claim_ids_per_statement);
    const std::vector<long long> chunk(ids.begin() + static_cast<std::ptrdiff_t>(first),
                                       ids.begin() + static_cast<std::ptrdiff_t>(last));
    claim_ids_once(sql, chunk, owner, lease_until, now, taken);
  }
  // In the order of `ids`; an id given twice is taken once.
  std::vector<ClaimedJob> claimed;
  claimed.reserve(taken.size());
  for (const auto job_id : ids) {
    if (auto it = taken.find(job_id); it != taken.end()) {
      claimed.push_back(std::move(it->second));
      taken.erase(it);
    }
  }
  return claimed;
}

std::optional<JobState> state_of(soci::session &sql, std::int64_t job_id) {
  const long long id = job_id;
  std::string status, run_after;
  sql << "SELECT status, run_after FROM jobs WHERE id = :id", soci::use(id), soci::into(status),
      soci::into(run_after);
  if (!sql.got_data()) return std::nullopt;
  return JobState{parse_status(status).value_or(JobStatus::queued), run_after};
}

std::vector<QueuedRef> queued_since(soci::session &sql, const std::string &changed_before,
                                    std::int64_t after_id, int limit) {
  const long long after = after_id;
  long long id = 0;
  std::string run_after;
  soci::statement st = (sql.prepare << "SELECT id, run_after FROM jobs WHERE status = 'queued' "
                                       "AND updated_at <= :before AND id > :after "
                                       "ORDER BY id LIMIT :limit",
                        soci::use(changed_before), soci::use(after), soci::use(limit),
                        soci::into(id), soci::into(run_after));
  st.execute();
  std::vector<QueuedRef> refs;
  while (st.fetch()) refs.push_back({id, run_after});
  return refs;
}

std::vector<ClaimedJob> claim(soci::session &sql, const std::string &owner, int max,
                              const std::string &lease_until) {
  const std::string now = clock::now_iso8601();
  long long id = 0, token_id = 0;
  int attempts = 0;
  std::string payload, hash, expires, created_at, request_id;
  soci::indicator i_token = soci::i_null, i_hash = soci::i_null, i_expires = soci::i_null,
                  i_request = soci::i_null;
  soci::statement st =
      (sql.prepare << store::with_skip_locked(sql, k_claim), soci::use(owner),
       soci::use(lease_until), soci::use(now), soci::use(now), soci::use(max), soci::into(id),
       soci::into(attempts), soci::into(payload), soci::into(token_id, i_token),
       soci::into(hash, i_hash), soci::into(expires, i_expires), soci::into(created_at),
       soci::into(request_id, i_request));
  st.execute();
  std::vector<ClaimedJob> claimed;
  while (st.fetch()) {
    claimed.push_back(claimed_job(id, attempts, payload, token_id, i_token, hash, i_hash, expires,
                                  i_expires, created_at, request_id, i_request));
  }
  return claimed;
}

tl::expected<void, TransitionError> extend_lease(soci::session &sql, std::int64_t job_id,
                                                 const std::string &owner,
                                                 const std::string &lease_until) {
  const long long id = job_id;
  soci::statement st =
      (sql.prepare << k_extend, soci::use(lease_until), soci::use(id), soci::use(owner));
  st.execute(true);
  if (st.get_affected_rows() != 1) return tl::unexpected(TransitionError::lease_lost);
  return {};
}

tl::expected<JobStatus, TransitionError> fail_attempt(
    soci::session &sql, std::int64_t job_id, const std::string &owner, const std::string &error,
    const std::string &retry_at, int max_attempts, const std::string &instance,
    const alerts::AlertPolicy *alerts, const webhooks::OutboundTargets *outbound) {
  const long long id = job_id;
  const std::string now = clock::now_iso8601();
  std::string status, email, request_id;
  int attempts = 0, deaths = 0;
  soci::indicator i_request = soci::i_null;
  sql << k_fail, soci::use(max_attempts), soci::use(max_attempts), soci::use(max_attempts),
      soci::use(error), soci::use(retry_at), soci::use(now), soci::use(id), soci::use(owner),
      soci::into(status), soci::into(email), soci::into(attempts), soci::into(deaths),
      soci::into(request_id, i_request);
  if (!sql.got_data()) return tl::unexpected(TransitionError::lease_lost);
  const auto result = parse_status(status).value_or(JobStatus::queued);
  if (result == JobStatus::dead) {
    record_dead(sql, id, email, attempts, deaths, error, request_id_of(i_request, request_id),
                instance, alerts, outbound, now);
  }
  return result;
}

std::vector<std::int64_t> recover_expired_leases(soci::session &sql, int max_attempts,
                                                 const std::string &instance,
                                                 const alerts::AlertPolicy *alerts,
                                                 std::size_t *died,
                                                 const webhooks::OutboundTargets *outbound) {
  const std::string now = clock::now_iso8601();
  long long id = 0;
  std::string status, email, request_id;
  int attempts = 0, deaths = 0;
  soci::indicator i_request = soci::i_null;
  soci::statement st =
      (sql.prepare << store::with_skip_locked(sql, k_recover), soci::use(max_attempts),
       soci::use(max_attempts), soci::use(max_attempts), soci::use(now), soci::use(now),
       soci::use(now), soci::into(id), soci::into(status), soci::into(email), soci::into(attempts),
       soci::into(deaths), soci::into(request_id, i_request));
  st.execute();
  std::vector<std::int64_t> requeued;
  std::vector<std::tuple<long long, std::string, int, int, std::string>> dead;
  while (st.fetch()) {
    if (status == "dead") {
      dead.emplace_back(id, email, attempts, deaths, request_id_of(i_request, request_id));
    } else {
      requeued.push_back(id);
    }
  }
  for (const auto &[dead_id, dead_email, dead_attempts, dead_deaths, dead_request] : dead) {
    record_dead(sql, dead_id, dead_email, dead_attempts, dead_deaths,
                "the worker holding the lease stopped or crashed", dead_request, instance, alerts,
                outbound, now);
  }
  if (died != nullptr) *died = dead.size();
  return requeued;
}

int release_leases(soci::session &sql, const std::string &owner) {
  const std::string now = clock::now_iso8601();
  soci::statement st = (sql.prepare << k_release, soci::use(now), soci::use(owner));
  st.execute(true);
  return static_cast<int>(st.get_affected_rows());
}

std::optional<Job> find(soci::session &sql, std::int64_t id) {
  const long long key = id;
  JobRow row;
  soci::statement st(sql);
  row.bind(st);
  st.exchange(soci::use(key));
  st.alloc();
  st.prepare(std::string(k_select_job) + "WHERE id = :id");
  st.define_and_bind();
  if (!st.execute(true)) return std::nullopt;
  return row.job();
}

std::vector<Job> list(soci::session &sql, const ListFilter &filter) {
  const std::string status = filter.status ? to_string(*filter.status) : "";
  const long long before = filter.before_id.value_or(std::numeric_limits<long long>::max());
  const int limit = filter.limit;
  JobRow row;
  soci::statement st(sql);
  row.bind(st);
  st.exchange(soci::use(status));
  st.exchange(soci::use(status));
  st.exchange(soci::use(before));
  st.exchange(soci::use(limit));
  st.alloc();
  st.prepare(std::string(k_select_job) +
             "WHERE (:status = '' OR status = :status2) AND id < :before ORDER BY id DESC "
             "LIMIT :limit");
  st.define_and_bind();
  st.execute();
  std::vector<Job> jobs;
  while (st.fetch()) jobs.push_back(row.job());
  return jobs;
}

Result<Job> retry_dead(soci::session &sql, std::int64_t id, const std::string &actor,
                       const std::string &instance) {
  auto job = find(sql, id);
  if (!job) return fail(ErrorKind::not_found, "job_not_found", "no job with that id");
  if (job->status != JobStatus::dead) {
    return fail(
        ErrorKind::conflict, "job_not_dead",
        fmt::format("job {} is {}, only dead jobs can be retried", id, to_string(job->status)));
  }
  const std::string now = clock::now_iso8601();
  const long long key = id;
  soci::statement st = (sql.prepare << k_retry, soci::use(now), soci::use(now), soci::use(key));
  st.execute(true);
  if (st.get_affected_rows() != 1) {
    return fail(ErrorKind::conflict, "user_exists",
                "another request for this email is queued, running or done", "email");
  }
  health::record(sql, health::EventType::info,
                 fmt::format("dead job {} for {} re-queued by {}", id, job->email, actor),
                 {{"job_id", id}, {"email", job->email}, {"by", actor}}, instance);
  return *find(sql, id);
}

QueueStats stats(soci::session &sql) {
  QueueStats s;
  std::string status;
  long long count = 0;
  soci::statement st = (sql.prepare << "SELECT status, COUNT(*) FROM jobs GROUP BY status",
                        soci::into(status), soci::into(count));
  st.execute();
  while (st.fetch()) {
    if (status == "queued") s.queued = count;
    if (status == "running") s.running = count;
    if (status == "succeeded") s.succeeded = count;
    if (status == "dead") s.dead = count;
  }
  const auto now = std::chrono::system_clock::now();
  std::string oldest;
  soci::indicator i_oldest = soci::i_null;
  sql << "SELECT MIN(created_at) FROM jobs WHERE status = 'queued'", soci::into(oldest, i_oldest);
  if (i_oldest == soci::i_ok) {
    if (auto t = clock::parse_iso8601(oldest)) {
      s.oldest_waiting_seconds = std::chrono::duration<double>(now - *t).count();
    }
  }
  const std::string minute_ago = clock::iso8601(now - std::chrono::minutes(1));
  long long recent = 0;
  sql << "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded' AND updated_at >= :since",
      soci::use(minute_ago), soci::into(recent);
  s.jobs_per_second_last_minute = static_cast<double>(recent) / 60.0;
  return s;
}

QueueDepth queue_depth(soci::session &sql, long long limit) {
  // The subquery stops after `limit` rows of the status index: a deep
  // backlog costs no more than that (hexpm/hexpm#1773: an unbounded count
  // every few seconds became a database's top consumer).
  QueueDepth depth;
  sql << "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 'queued' LIMIT :limit) waiting",
      soci::use(limit), soci::into(depth.queued);
  // One seek at the start of the queued jobs' run_after index.
  std::string due;
  soci::indicator i_due = soci::i_null;
  sql << "SELECT MIN(run_after) FROM jobs WHERE status = 'queued'", soci::into(due, i_due);
  if (i_due == soci::i_ok) {
    if (auto t = clock::parse_iso8601(due); t && *t <= std::chrono::system_clock::now()) {
      depth.oldest_waiting_seconds =
          std::chrono::duration<double>(std::chrono::system_clock::now() - *t).count();
    }
  }
  return depth;
}

nlohmann::json QueueStats::to_json() const {
  return {{"counts",
           {{"queued", queued}, {"running", running}, {"succeeded", succeeded}, {"dead", dead}}},
          {"oldest_waiting_seconds", oldest_waiting_seconds
                                         ? nlohmann::json(*oldest_waiting_seconds)
                                         : nlohmann::json(nullptr)},
          {"jobs_per_second_last_minute", jobs_per_second_last_minute}};
}

} // namespace usher::jobs
