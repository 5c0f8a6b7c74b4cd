#include <usher/store/migrations.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <usher/util/clock.hpp>

namespace usher::store {
namespace {

// `{ID}` is the auto-increment primary key column type of each dialect.
// Unique constraints are named: the code maps violations by constraint name.
// A migration's SQL, for both dialects unless `only` names one: the other
// records the version and runs nothing.
struct Migration {
  std::string script;
  std::optional<Dialect> only = std::nullopt;
};

const std::vector<Migration> k_migrations = {
    // 1: the whole schema of SPEC §4.
    {R"SQL(
CREATE TABLE accounts (
  id {ID},
  email TEXT NOT NULL,
  email_normalized TEXT NOT NULL,
  password_hash TEXT,
  created_at TEXT NOT NULL,
  activated_at TEXT,
  CONSTRAINT accounts_email_normalized_key UNIQUE (email_normalized)
);
CREATE TABLE tripwire_users (
  id {ID},
  user_id BIGINT NOT NULL REFERENCES accounts (id),
  full_name TEXT NOT NULL,
  phone TEXT,
  product TEXT,
  created_by TEXT NOT NULL,
  created_by_token_id BIGINT,
  created_at TEXT NOT NULL,
  CONSTRAINT tripwire_users_user_id_key UNIQUE (user_id)
);
CREATE TABLE activation_tokens (
  id {ID},
  account_id BIGINT NOT NULL REFERENCES accounts (id),
  token_hash TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  created_at TEXT NOT NULL,
  CONSTRAINT activation_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE TABLE sessions (
  id {ID},
  account_id BIGINT NOT NULL REFERENCES accounts (id),
  token_hash TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE TABLE jobs (
  id {ID},
  email TEXT NOT NULL,
  email_normalized TEXT NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  user_id BIGINT REFERENCES accounts (id),
  created_by_token_id BIGINT,
  lease_owner TEXT,
  lease_expires_at TEXT,
  run_after TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX jobs_active_email_key ON jobs (email_normalized)
  WHERE status IN ('queued', 'running', 'succeeded');
CREATE INDEX jobs_status_run_after ON jobs (status, run_after);
CREATE TABLE idempotency_keys (
  id {ID},
  token_id BIGINT NOT NULL,
  idempotency_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status_code INTEGER NOT NULL,
  response_body TEXT NOT NULL,
  created_at TEXT NOT NULL,
  CONSTRAINT idempotency_keys_token_key UNIQUE (token_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
CREATE TABLE api_tokens (
  id {ID},
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'sales_manager')),
  token_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT,
  CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE TABLE system_config (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  version BIGINT NOT NULL,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
);
INSERT INTO system_config (key, value, version, updated_at, updated_by)
  VALUES ('system_mode', 'async_queue', 1, '{NOW}', 'migration');
CREATE TABLE system_health_logs (
  id {ID},
  event_type TEXT NOT NULL
    CHECK (event_type IN ('INFO', 'WARNING', 'ERROR', 'SWITCH', 'CRITICAL')),
  message TEXT NOT NULL,
  metadata TEXT NOT NULL DEFAULT '{}',
  instance TEXT NOT NULL DEFAULT '',
  repeat_count INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL
);
CREATE INDEX system_health_logs_type_id ON system_health_logs (event_type, id);
CREATE TABLE alert_outbox (
  id {ID},
  health_log_id BIGINT REFERENCES system_health_logs (id),
  chat_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  text TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  last_error TEXT,
  created_at TEXT NOT NULL,
  sent_at TEXT
);
CREATE INDEX alert_outbox_status_next ON alert_outbox (status, next_attempt_at)
)SQL"},
    // 2: asynchronous provisioning. The activation token is issued at intake
    // (the 202 carries it), so its digest waits in the job row until the
    // worker creates the account.
    {R"SQL(
ALTER TABLE jobs ADD COLUMN activation_token_hash TEXT;
ALTER TABLE jobs ADD COLUMN activation_expires_at TEXT;
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);
CREATE INDEX jobs_status_updated ON jobs (status, updated_at)
)SQL"},
    // 3: alert throttling. One row per condition (kind plus what failed):
    // the window its repeats fold into, how many were folded, the latest of
    // them (for the summary) and whether a CRITICAL is still active (for
    // the RESOLVED notice). docs/alerts.md.
    {R"SQL(
CREATE TABLE alert_conditions (
  condition_key TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  window_started_at TEXT NOT NULL,
  window_ends_at TEXT NOT NULL,
  suppressed BIGINT NOT NULL DEFAULT 0,
  health_log_id BIGINT,
  last_message TEXT NOT NULL,
  last_metadata TEXT NOT NULL,
  last_instance TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 0,
  active_since TEXT,
  updated_at TEXT NOT NULL
)
)SQL"},
    // 4: the timeline (SPEC §8). One row per worker attempt at a job,
    // written in the transaction that records its outcome; and an index for
    // finding a customer's jobs by email (dead ones included), newest first.
    {R"SQL(
CREATE TABLE job_attempts (
  id {ID},
  job_id BIGINT NOT NULL REFERENCES jobs (id),
  attempt INTEGER NOT NULL,
  worker TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'dead')),
  error TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  duration_ms BIGINT NOT NULL
);
CREATE INDEX job_attempts_job_id ON job_attempts (job_id, id);
CREATE INDEX jobs_email_normalized_id ON jobs (email_normalized, id)
)SQL"},
    // 5: token revocation and `last used` (usher token list / revoke): who
    // revoked a token, and when it was last used (to the minute).
    {R"SQL(
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE api_tokens ADD COLUMN revoked_by TEXT
)SQL"},
    // 6: outbound events (SPEC §9): one row per event and receiving URL,
    // written in the transaction of the job's final transition. The event id
    // is deterministic (receivers de-duplicate on it), so (event_id, url) is
    // unique. A claim is a lease: next_attempt_at moves past the POST, so
    // several processes deliver from one database without sending twice in
    // one round. jobs.deaths counts a job's dead transitions (a retried job
    // starts its attempts again), so that each death has its own event id.
    {R"SQL(
CREATE TABLE webhook_outbox (
  id {ID},
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  last_error TEXT,
  created_at TEXT NOT NULL,
  sent_at TEXT
);
CREATE UNIQUE INDEX webhook_outbox_event_url ON webhook_outbox (event_id, url);
CREATE INDEX webhook_outbox_status_next ON webhook_outbox (status, next_attempt_at);
ALTER TABLE jobs ADD COLUMN deaths INTEGER NOT NULL DEFAULT 0
)SQL"},
    // 7: request ids (X-Request-Id, docs/api.md): the id of the request that
    // made the job, so that its events, alerts and timeline name it.
    {R"SQL(
ALTER TABLE jobs ADD COLUMN request_id TEXT
)SQL"},
    // 8: a customer's activation tokens by account. Without it, reading a
    // customer (the invitation's expiry) and a resend read every token ever
    // issued: 0.3 s per lookup at a million accounts (docs/benchmarks.md,
    // "Drain as the database grows").
    {R"SQL(
CREATE INDEX activation_tokens_account_id ON activation_tokens (account_id)
)SQL"},
    // 9: the claim's and the lease recovery's indexes hold only the jobs
    // they look for (queued; running) instead of every job ever run: a
    // completion no longer moves two entries into them, and they stay small
    // as the table grows (docs/benchmarks.md, "Drain as the database grows").
    // They keep `status` as their first column: without it SQLite's planner
    // prefers jobs_status_updated (status=?) and sorts every queued job.
    {R"SQL(
CREATE INDEX jobs_queued_run_after ON jobs (status, run_after) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (status, lease_expires_at) WHERE status = 'running';
DROP INDEX jobs_status_run_after;
DROP INDEX jobs_lease
)SQL"},
    // 10 (SQLite only): the CHECKs and the partial index that name three
    // or more values with IN. SQLite builds a throw-away table for such a
    // list each time a statement runs (OpenEphemeral), so every job INSERT
    // and status UPDATE built two: about 5 us of intake's 67 us of CPU
    // (docs/benchmarks.md). The same conditions written as comparisons are
    // evaluated in place. A CHECK cannot be altered in SQLite; the table's
    // SQL is rewritten in sqlite_schema (SQLite's own procedure for changes
    // that leave the stored rows as they are: "ALTER TABLE", section 7),
    // and migrate() bumps the schema version so that every connection
    // reads the new text. The conditions are the same, so every row that
    // passed the old CHECK passes the new one.
    {R"SQL(
DROP INDEX jobs_active_email_key;
CREATE UNIQUE INDEX jobs_active_email_key ON jobs (email_normalized) WHERE status <> 'dead';
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
  'CHECK (status IN (''queued'', ''running'', ''succeeded'', ''dead''))',
  'CHECK (status = ''queued'' OR status = ''running'' OR status = ''succeeded'' OR status = ''dead'')')
  WHERE type = 'table' AND name = 'jobs';
UPDATE sqlite_schema SET sql = replace(sql,
  'CHECK (outcome IN (''succeeded'', ''failed'', ''dead''))',
  'CHECK (outcome = ''succeeded'' OR outcome = ''failed'' OR outcome = ''dead'')')
  WHERE type = 'table' AND name = 'job_attempts';
UPDATE sqlite_schema SET sql = replace(sql,
  'CHECK (status IN (''pending'', ''sent'', ''failed''))',
  'CHECK (status = ''pending'' OR status = ''sent'' OR status = ''failed'')')
  WHERE type = 'table' AND name IN ('alert_outbox', 'webhook_outbox');
UPDATE sqlite_schema SET sql = replace(sql,
  'CHECK (event_type IN (''INFO'', ''WARNING'', ''ERROR'', ''SWITCH'', ''CRITICAL''))',
  'CHECK (event_type = ''INFO'' OR event_type = ''WARNING'' OR event_type = ''ERROR'' OR event_type = ''SWITCH'' OR event_type = ''CRITICAL'')')
  WHERE type = 'table' AND name = 'system_health_logs'
)SQL",
     Dialect::sqlite},
    // 11: the unique index that keeps a second active job for one email out
    // is on a column of its own, `active_email`: the normalised email while
    // the job is not dead, NULL once it is (NULLs never conflict). The
    // partial index it replaces named `status` in its WHERE, so SQLite
    // deleted and inserted its entry at every status change (the claim and
    // the completion), at a random place in an index as large as the table:
    // two more pages written per job at a million customers. Now the entry
    // is written when the job is created and when it dies or is retried
    // (docs/benchmarks.md, "Drain as the database grows").
    {R"SQL(
ALTER TABLE jobs ADD COLUMN active_email TEXT;
UPDATE jobs SET active_email = email_normalized WHERE status <> 'dead';
DROP INDEX jobs_active_email_key;
CREATE UNIQUE INDEX jobs_active_email_key ON jobs (active_email)
)SQL"},
    // 12 (SQLite only) and 13 (PostgreSQL only): the same CHECK that ties
    // active_email to the status, so that a statement which changes one
    // without the other fails instead of leaving an email blocked for ever
    // or two active jobs. SQLite adds a CHECK only with the column, and
    // checks it against the rows that exist then (all NULL): the column's
    // SQL is rewritten as in migration 10, after migration 11 filled it.
    {R"SQL(
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'active_email TEXT', 'active_email TEXT {ACTIVE_EMAIL_CHECK_LITERAL}')
  WHERE type = 'table' AND name = 'jobs'
)SQL",
     Dialect::sqlite},
    {R"SQL(
ALTER TABLE jobs ADD CONSTRAINT jobs_active_email_check {ACTIVE_EMAIL_CHECK}
)SQL",
     Dialect::postgresql},
    // 14: a job is found by its email through one index at a time:
    // jobs_active_email_key while it is not dead, jobs_dead_email once it
    // is. jobs_email_normalized_id held every job a second time, at a random
    // place, written by every intake: about a third of the pages an intake
    // commit writes to the WAL (docs/benchmarks.md, "One index for a job's
    // email"). The partial index's WHERE names active_email only, which the
    // claim and the completion do not change, so they do not touch it.
    {R"SQL(
DROP INDEX jobs_email_normalized_id;
CREATE INDEX jobs_dead_email ON jobs (email_normalized, id) WHERE active_email IS NULL
)SQL"},
};

// Migrations 12 and 13: every row passes it once migration 11 ran.
constexpr const char *k_active_email_check =
    "CHECK ((status = 'dead' AND active_email IS NULL) OR (status <> 'dead' AND "
    "active_email IS NOT NULL AND active_email = email_normalized))";

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// The end of SQLite's procedure for editing sqlite_schema: a new schema
// version, so that every connection (this one too) parses the schema again.
void finish_schema_edit(soci::session &sql) {
  int schema_version = 0;
  sql << "PRAGMA schema_version", soci::into(schema_version);
  sql << "PRAGMA schema_version = " + std::to_string(schema_version + 1);
  sql << "PRAGMA writable_schema = OFF";
}

} // namespace

int latest_migration() { return static_cast<int>(k_migrations.size()); }

int migrate(soci::session &sql, Dialect dialect, int up_to) {
  // One process applies the migrations, the others wait and then find them
  // applied (PostgreSQL; on SQLite each migration's transaction serialises).
  lock_migrations(sql, dialect);
  struct Unlock {
    soci::session &sql;
    Dialect dialect;
    ~Unlock() {
      try {
        unlock_migrations(sql, dialect);
      } catch (const std::exception &) {
        // The connection is gone, and the lock with it.
      }
    }
  } unlock{sql, dialect};
  sql << "CREATE TABLE IF NOT EXISTS schema_migrations ("
         "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";
  int applied = 0;
  for (int version = 1; version <= std::min(up_to, latest_migration()); ++version) {
    soci::transaction tr(sql);
    int present = 0;
    sql << "SELECT COUNT(*) FROM schema_migrations WHERE version = :v", soci::use(version),
        soci::into(present);
    if (present != 0) {
      tr.commit();
      continue;
    }
    const auto &migration = k_migrations[static_cast<std::size_t>(version - 1)];
    const std::string now = clock::now_iso8601();
    if (!migration.only || *migration.only == dialect) {
      std::string script = replace_all(migration.script, "{ID}", identity_column(dialect));
      script = replace_all(script, "{NOW}", now);
      script = replace_all(script, "{ACTIVE_EMAIL_CHECK_LITERAL}",
                           replace_all(k_active_email_check, "'", "''"));
      script = replace_all(script, "{ACTIVE_EMAIL_CHECK}", k_active_email_check);
      execute_script(sql, script);
      if (script.find("PRAGMA writable_schema = ON") != std::string::npos) {
        finish_schema_edit(sql);
      }
    }
    sql << "INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :t)",
        soci::use(version), soci::use(now);
    tr.commit();
    ++applied;
  }
  return applied;
}

} // namespace usher::store
