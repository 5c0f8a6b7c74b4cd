// Accelerated retention run (docs/benchmarks.md, "Retention"): steady
// simulated traffic written into a real, migrated SQLite file while
// store::Retention prunes on a simulated clock, one simulated minute per
// step. Prints, every simulated 12 hours, the file size, the bytes of the
// prunable tables and of the per-customer tables, and the row counts: the
// prunable part must level off once the retention ages have passed.
// Usage: usher_bench_retention [DAYS] [INTAKES_PER_MINUTE] [DB_PATH]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <soci/soci.h>

#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/retention.hpp>
#include <usher/util/clock.hpp>

namespace {

using namespace std::chrono_literals;
using usher::clock::WallTime;

// Moves only when the run says so (as tests/unit/manual_clock.hpp).
class SimulatedClock final : public usher::clock::Clock {
public:
  explicit SimulatedClock(WallTime start) : m_start(start) {}
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(m_elapsed);
  }
  WallTime wall() const override { return m_start + m_elapsed; }
  void advance(std::chrono::minutes by) { m_elapsed += by; }

private:
  WallTime m_start;
  std::chrono::minutes m_elapsed{0};
};

// One simulated minute of traffic: `intakes` customers (account, profile,
// activation token, job that succeeded after one or two attempts,
// idempotency key), a login session each, a health event per 10 intakes and
// an alert per 50, all in one transaction.
void write_minute(soci::session &sql, long long &serial, int intakes, WallTime at) {
  const std::string now = usher::clock::iso8601(at);
  const std::string expires = usher::clock::iso8601(at + 24h);
  const std::string payload(220, 'p');
  soci::transaction tr(sql);
  for (int i = 0; i < intakes; ++i) {
    const long long n = ++serial;
    const std::string email = fmt::format("buyer{}@example.com", n);
    long long account = 0;
    sql << "INSERT INTO accounts (email, email_normalized, password_hash, created_at) "
           "VALUES (:e, :n, :h, :t) RETURNING id",
        soci::use(email), soci::use(email), soci::use(std::string(97, 'h')), soci::use(now),
        soci::into(account);
    sql << "INSERT INTO tripwire_users (user_id, full_name, phone, product, created_by, "
           "created_at) VALUES (:a, 'Simulated Buyer', '+49 30 1234', 'tripwire', 'sales', :t)",
        soci::use(account), soci::use(now);
    const std::string token_hash = fmt::format("{:064x}", n);
    sql << "INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at) "
           "VALUES (:a, :h, :e, :t)",
        soci::use(account), soci::use(token_hash), soci::use(expires), soci::use(now);
    const int attempts = n % 5 == 0 ? 2 : 1;
    long long job = 0;
    sql << "INSERT INTO jobs (email, email_normalized, active_email, payload, status, attempts, "
           "user_id, run_after, created_at, updated_at) VALUES (:e, :n, :ae, :p, 'succeeded', :a, "
           ":u, :t, :t2, :t3) RETURNING id",
        soci::use(email), soci::use(email), soci::use(email), soci::use(payload),
        soci::use(attempts), soci::use(account), soci::use(now), soci::use(now), soci::use(now),
        soci::into(job);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      const std::string outcome = attempt == attempts ? "succeeded" : "failed";
      sql << "INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, "
             "finished_at, duration_ms) VALUES (:j, :a, 'bench-1/worker-0', :o, :t, :t2, 12)",
          soci::use(job), soci::use(attempt), soci::use(outcome), soci::use(now), soci::use(now);
    }
    const std::string key = fmt::format("idem-{}", n);
    sql << "INSERT INTO idempotency_keys (token_id, idempotency_key, fingerprint, status_code, "
           "response_body, created_at) VALUES (1, :k, :f, 202, :b, :t)",
        soci::use(key), soci::use(token_hash), soci::use(payload), soci::use(now);
    const std::string session = fmt::format("s{:063x}", n);
    sql << "INSERT INTO sessions (account_id, token_hash, expires_at, created_at) "
           "VALUES (:a, :h, :e, :t)",
        soci::use(account), soci::use(session), soci::use(expires), soci::use(now);
    if (n % 10 == 0) {
      long long event = 0;
      sql << "INSERT INTO system_health_logs (event_type, message, metadata, instance, "
             "created_at) VALUES ('WARNING', 'simulated event', :m, 'bench-1', :t) RETURNING id",
          soci::use(payload), soci::use(now), soci::into(event);
      if (n % 50 == 0) {
        sql << "INSERT INTO alert_outbox (health_log_id, chat_id, kind, text, status, attempts, "
               "next_attempt_at, created_at, sent_at) VALUES (:h, '42', 'ERROR', :x, 'sent', 1, "
               ":t, :t2, :t3)",
            soci::use(event), soci::use(payload), soci::use(now), soci::use(now), soci::use(now);
      }
    }
  }
  tr.commit();
}

long long count(soci::session &sql, const std::string &table) {
  long long n = 0;
  sql << "SELECT COUNT(*) FROM " + table, soci::into(n);
  return n;
}

// Bytes of `tables` and their indexes (SQLite's dbstat table).
long long bytes_of(soci::session &sql, const std::string &tables) {
  long long bytes = 0;
  sql << "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN (SELECT name FROM "
         "sqlite_schema WHERE tbl_name IN (" +
             tables + "))",
      soci::into(bytes);
  return bytes;
}

} // namespace

int main(int argc, char **argv) {
  const int days = argc > 1 ? std::stoi(argv[1]) : 8;
  const int per_minute = argc > 2 ? std::stoi(argv[2]) : 10;
  const std::filesystem::path path =
      argc > 3 ? std::filesystem::path(argv[3])
               : std::filesystem::temp_directory_path() / "usher-retention-soak.db";
  for (const char *suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path.string() + suffix);
  }

  usher::store::Database db("sqlite:" + path.string(), 5000ms, false);
  auto sql = db.connect();
  usher::store::migrate(*sql, db.dialect());

  usher::store::RetentionSettings settings;
  settings.jobs = 48h;
  settings.health_events = 48h;
  settings.alerts = 48h;
  settings.idempotency_keys = 24h;
  settings.interval = 1min;
  settings.batch_size = 500;
  SimulatedClock clock(WallTime(std::chrono::seconds(1'795'867'200)));
  usher::store::Retention retention(settings, db.dialect(), clock);

  const std::string prunable =
      "'job_attempts', 'system_health_logs', 'alert_outbox', 'idempotency_keys', 'sessions'";
  const std::string per_customer = "'accounts', 'tripwire_users', 'activation_tokens', 'jobs'";
  fmt::print("{} simulated days, {} intakes per minute, retention: jobs/events/alerts {} h, "
             "idempotency keys {} h, run every simulated minute in batches of {}\n",
             days, per_minute, settings.jobs.count(), settings.idempotency_keys.count(),
             settings.batch_size);
  fmt::print("| day | file MiB | prunable MiB | per-customer MiB | job_attempts | health events | "
             "alerts | idempotency keys | sessions | jobs |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  long long serial = 0;
  long long pruned = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int minute = 1; minute <= days * 24 * 60; ++minute) {
    write_minute(*sql, serial, per_minute, clock.wall());
    if (auto counts = retention.run_if_due(*sql)) pruned += counts->total();
    clock.advance(1min);
    if (minute % (12 * 60) == 0) {
      *sql << "PRAGMA wal_checkpoint(TRUNCATE)";
      const auto mib = [](long long bytes) { return static_cast<double>(bytes) / (1024.0 * 1024); };
      fmt::print("| {:.1f} | {:.1f} | {:.1f} | {:.1f} | {} | {} | {} | {} | {} | {} |\n",
                 minute / (24.0 * 60),
                 mib(static_cast<long long>(std::filesystem::file_size(path))),
                 mib(bytes_of(*sql, prunable)), mib(bytes_of(*sql, per_customer)),
                 count(*sql, "job_attempts"), count(*sql, "system_health_logs"),
                 count(*sql, "alert_outbox"), count(*sql, "idempotency_keys"),
                 count(*sql, "sessions"), count(*sql, "jobs"));
      std::fflush(stdout);
    }
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("{} intakes written, {} rows pruned, {:.0f} s of real time\n", serial, pruned,
             seconds);
  return 0;
}
