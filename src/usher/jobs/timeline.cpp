#include <usher/jobs/timeline.hpp>

#include <algorithm>
#include <map>

#include <usher/jobs/attempts.hpp>
#include <usher/store/dialect.hpp>

namespace usher::jobs {
namespace {

// A job whose activation digest was never parked in its row was provisioned
// while its request was answered (sync_direct, or a fallback with the
// queue's circuit open); a queued job's row always holds it.
constexpr const char *k_select_request =
    "SELECT payload, CASE WHEN activation_token_hash IS NULL THEN 1 ELSE 0 END "
    "FROM jobs WHERE id = :id";

// Events name their job in metadata ("job_id": N). The LIKE narrows the scan
// the same way on SQLite and PostgreSQL; the exact match is checked on the
// parsed metadata.
constexpr const char *k_select_events =
    "SELECT id, event_type, message, metadata, instance, repeat_count, created_at "
    "FROM system_health_logs WHERE metadata LIKE :pattern ORDER BY id";

constexpr const char *k_select_alerts =
    "SELECT id, chat_id, kind, text, status, attempts, last_error, created_at, sent_at "
    "FROM alert_outbox WHERE health_log_id = :event_id ORDER BY id";

// Stored Idempotency-Key responses name the job they answered.
constexpr const char *k_select_idempotent =
    "SELECT response_body FROM idempotency_keys WHERE token_id = :token_id "
    "AND response_body LIKE :pattern";

// Every job of an email is in one of two indexes: jobs_active_email_key
// while it is not dead (one at most), jobs_dead_email once it is (migration
// 14). SQLite's planner, without statistics, would answer "active_email IS
// NULL" from the unique index, every dead job's entry: it is told which.
std::string newest_for_email(store::Dialect dialect) {
  return std::string("SELECT max(id) FROM (SELECT id FROM jobs WHERE active_email = :active "
                     "UNION ALL SELECT id FROM jobs ") +
         (dialect == store::Dialect::sqlite ? "INDEXED BY jobs_dead_email " : "") +
         "WHERE active_email IS NULL AND email_normalized = :dead) AS of_email";
}

int kind_rank(const std::string &kind) {
  if (kind == "request") return 0;
  if (kind == "attempt") return 1;
  if (kind == "event") return 2;
  return 3;
}

std::string job_pattern(std::int64_t job_id) {
  return "%\"job_id\":" + std::to_string(job_id) + "%";
}

bool names_job(const nlohmann::json &object, std::int64_t job_id) {
  if (!object.is_object()) return false;
  const auto it = object.find("job_id");
  return it != object.end() && it->is_number_integer() && it->get<std::int64_t>() == job_id;
}

nlohmann::json nullable(soci::indicator indicator, const std::string &value) {
  return indicator == soci::i_ok ? nlohmann::json(value) : nlohmann::json(nullptr);
}

void add_alerts(soci::session &sql, long long event_id, nlohmann::json &entries) {
  long long id = 0;
  int attempts = 0;
  std::string chat_id, kind, text, status, last_error, created_at, sent_at;
  soci::indicator i_error = soci::i_null, i_sent = soci::i_null;
  soci::statement st =
      (sql.prepare << k_select_alerts, soci::use(event_id), soci::into(id), soci::into(chat_id),
       soci::into(kind), soci::into(text), soci::into(status), soci::into(attempts),
       soci::into(last_error, i_error), soci::into(created_at), soci::into(sent_at, i_sent));
  st.execute();
  while (st.fetch()) {
    entries.push_back({{"at", created_at},
                       {"kind", "alert"},
                       {"id", id},
                       {"event_id", event_id},
                       {"alert_kind", kind},
                       {"chat_id", chat_id},
                       {"text", text},
                       {"status", status},
                       {"delivered", status == "sent"},
                       {"sent_at", nullable(i_sent, sent_at)},
                       {"attempts", attempts},
                       {"last_error", nullable(i_error, last_error)}});
  }
}

// The health events about `job_id`, each followed by its alerts; sets
// `fallback` when one of them is the queue-unavailable CRITICAL.
void add_events(soci::session &sql, std::int64_t job_id, nlohmann::json &entries, bool &fallback) {
  long long id = 0;
  int count = 1;
  std::string type, message, metadata, instance, created_at;
  const std::string pattern = job_pattern(job_id);
  soci::statement st = (sql.prepare << k_select_events, soci::use(pattern), soci::into(id),
                        soci::into(type), soci::into(message), soci::into(metadata),
                        soci::into(instance), soci::into(count), soci::into(created_at));
  st.execute();
  std::vector<long long> event_ids;
  while (st.fetch()) {
    auto details = nlohmann::json::parse(metadata, nullptr, /*allow_exceptions=*/false);
    if (!names_job(details, job_id)) continue;
    if (type == "CRITICAL") fallback = true;
    entries.push_back({{"at", created_at},
                       {"kind", "event"},
                       {"id", id},
                       {"type", type},
                       {"message", message},
                       {"count", count},
                       {"instance", instance},
                       {"details", details}});
    event_ids.push_back(id);
  }
  for (const auto event_id : event_ids) add_alerts(sql, event_id, entries);
}

bool idempotency_key_present(soci::session &sql, std::int64_t job_id,
                             std::optional<std::int64_t> token_id) {
  if (!token_id) return false;
  const long long token = *token_id;
  const std::string pattern = job_pattern(job_id);
  std::string body;
  soci::statement st =
      (sql.prepare << k_select_idempotent, soci::use(token), soci::use(pattern), soci::into(body));
  st.execute();
  bool present = false;
  while (st.fetch()) {
    if (names_job(nlohmann::json::parse(body, nullptr, false), job_id)) present = true;
  }
  return present;
}

} // namespace

nlohmann::json Timeline::to_json() const {
  auto job_json = job.to_json();
  job_json["created_by"] = created_by;
  return {{"job", job_json}, {"entries", entries}};
}

std::optional<Timeline> timeline(soci::session &sql, std::int64_t job_id) {
  auto job = find(sql, job_id);
  if (!job) return std::nullopt;
  Timeline result;
  result.job = *job;

  const long long id = job_id;
  std::string payload;
  int inline_provisioned = 0;
  sql << k_select_request, soci::use(id), soci::into(payload), soci::into(inline_provisioned);
  const auto request = nlohmann::json::parse(payload, nullptr, false);
  if (request.is_object()) result.created_by = request.value("created_by", "");

  nlohmann::json entries = nlohmann::json::array();
  bool fallback = false;
  add_events(sql, job_id, entries, fallback);

  // Attempts are numbered over the job's whole history: a retried dead
  // job's count starts again at 1, its timeline goes on.
  const auto attempts = attempts_of(sql, job_id);
  int number = 0;
  for (const auto &attempt : attempts) {
    entries.push_back(
        {{"at", attempt.started_at},
         {"kind", "attempt"},
         {"number", ++number},
         {"worker", attempt.worker},
         {"outcome", attempt.outcome},
         {"error", attempt.error ? nlohmann::json(*attempt.error) : nlohmann::json(nullptr)},
         {"finished_at", attempt.finished_at},
         {"duration_ms", attempt.duration_ms}});
  }

  entries.push_back(
      {{"at", job->created_at},
       {"kind", "request"},
       {"by", result.created_by},
       {"email", job->email},
       {"mode", inline_provisioned != 0 && !fallback ? "sync_direct" : "async_queue"},
       {"fallback", fallback},
       {"provisioned_inline", inline_provisioned != 0 || (fallback && attempts.empty())},
       {"idempotency_key", idempotency_key_present(sql, job_id, job->created_by_token_id)},
       {"request_id",
        job->request_id ? nlohmann::json(*job->request_id) : nlohmann::json(nullptr)}});

  std::stable_sort(
      entries.begin(), entries.end(), [](const nlohmann::json &a, const nlohmann::json &b) {
        const auto &at_a = a["at"].get_ref<const std::string &>();
        const auto &at_b = b["at"].get_ref<const std::string &>();
        if (at_a != at_b) return at_a < at_b;
        return kind_rank(a["kind"].get<std::string>()) < kind_rank(b["kind"].get<std::string>());
      });
  result.entries = std::move(entries);
  return result;
}

std::optional<std::int64_t> newest_job_for_email(soci::session &sql,
                                                 const std::string &email_normalized) {
  long long id = 0;
  soci::indicator found = soci::i_null;
  sql << newest_for_email(store::dialect_of(sql)), soci::use(email_normalized),
      soci::use(email_normalized), soci::into(id, found);
  if (!sql.got_data() || found != soci::i_ok) return std::nullopt;
  return id;
}

} // namespace usher::jobs
