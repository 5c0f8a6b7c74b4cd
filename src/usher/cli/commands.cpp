// The administrative commands (see commands.hpp): each opens its own database
// session, or for `alerts test` talks to the Bot API directly.
#include <usher/cli/commands.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

#include <usher/alerts/message.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/alerts/sender.hpp>
#include <usher/alerts/telegram.hpp>
#include <usher/auth/activation.hpp>
#include <usher/health/health_log.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/jobs/timeline.hpp>
#include <usher/provisioning/new_user.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/redis/channel.hpp>
#include <usher/redis/connection.hpp>
#include <usher/store/backup.hpp>
#include <usher/store/copy.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/pg_notify.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/postgres_url.hpp>

namespace usher::cli {
namespace {

// A migrated session: every command works on a current schema.
std::unique_ptr<soci::session> open(const config::Config &config,
                                    store::Dialect *dialect = nullptr) {
  store::Database db(config.database_url, config.db_busy_timeout, config.sqlite_synchronous_full,
                     config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  auto sql = db.connect();
  store::migrate(*sql, db.dialect());
  if (dialect) *dialect = db.dialect();
  return sql;
}

// A write transaction for the commands that change rows. On SQLite it takes
// the write lock at BEGIN (IMMEDIATE), waiting up to DB_BUSY_TIMEOUT_MS for a
// running serve's writer: a deferred transaction that reads and then writes
// fails at once with "database is locked" when serve committed in between,
// without waiting (the same reason the WriteBatcher begins IMMEDIATE).
// Rolled back unless committed.
class WriteTransaction {
public:
  WriteTransaction(soci::session &sql, store::Dialect dialect) : m_sql(sql) {
    store::begin_write(m_sql, dialect);
  }
  ~WriteTransaction() {
    if (m_committed) return;
    try {
      m_sql.rollback();
    } catch (const std::exception &) {
      // The connection is gone; the command is failing anyway.
    }
  }
  WriteTransaction(const WriteTransaction &) = delete;
  WriteTransaction &operator=(const WriteTransaction &) = delete;

  void commit() {
    m_sql.commit();
    m_committed = true;
  }

private:
  soci::session &m_sql;
  bool m_committed = false;
};

// Called only by the one-shot commands (mode set, jobs retry), which start no thread; nothing in
// usher calls setenv.
std::string cli_actor() {
  const char *user = std::getenv("USER"); // NOLINT(concurrency-mt-unsafe): no other thread
  return fmt::format("cli:{}", user && *user ? user : "unknown");
}

} // namespace

int migrate(const config::Config &config) {
  store::Database db(config.database_url, config.db_busy_timeout, config.sqlite_synchronous_full,
                     config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  auto sql = db.connect();
  const int applied = store::migrate(*sql, db.dialect());
  fmt::print("applied {} migrations; schema version {}\n", applied, store::latest_migration());
  return 0;
}

int backup(const config::Config &config, const std::string &path) {
  const store::Database db(config.database_url, config.db_busy_timeout,
                           config.sqlite_synchronous_full,
                           config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  const auto copied = store::backup(db, path);
  if (!copied) throw std::runtime_error(copied.error().detail);
  fmt::print("backed up to {} ({} bytes)\n", path, copied->bytes);
  return 0;
}

int restore(const config::Config &config, const std::string &path) {
  const store::Database db(config.database_url, config.db_busy_timeout,
                           config.sqlite_synchronous_full,
                           config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  const auto restored = store::restore(path, db);
  if (!restored) throw std::runtime_error(restored.error().detail);
  fmt::print("restored {} into {} ({} bytes); start usher\n", path, *db.sqlite_path(),
             restored->bytes);
  return 0;
}

int migrate_data(const config::Config &config, const std::string &from, const std::string &to) {
  if (from.rfind("sqlite:", 0) != 0 || from.size() == 7) {
    throw std::runtime_error("--from must be sqlite:PATH, the database to copy");
  }
  if (!std::filesystem::exists(from.substr(7))) {
    throw std::runtime_error("--from: no database at " + from.substr(7));
  }
  if (to.rfind("postgresql://", 0) != 0) {
    throw std::runtime_error("--to must be postgresql://user:pass@host:port/db");
  }
  const std::string shown = postgres_url::redacted(to);
  std::unique_ptr<store::Database> target;
  try {
    target = std::make_unique<store::Database>(to, config.db_busy_timeout, true,
                                               store::Database::k_default_wal_limit_bytes,
                                               config.db_statement_timeout);
  } catch (const std::exception &e) {
    throw std::runtime_error(std::string("--to: ") + e.what());
  }
  const store::Database source(from, config.db_busy_timeout, config.sqlite_synchronous_full,
                               config.sqlite_wal_limit_mib * 1024 * 1024,
                               config.db_statement_timeout);
  const auto copied =
      store::copy_database(source, *target, [](const std::string &table, std::int64_t rows) {
        fmt::print("  {:<20} {:>10} rows\n", table, rows);
        std::fflush(stdout);
      });
  if (!copied) throw std::runtime_error(copied.error().detail);
  fmt::print("copied {} rows in {} tables from {} to {}; the counts match. Point DATABASE_URL at "
             "it and start usher.\n",
             copied->rows(), copied->tables.size(), from, shown);
  return 0;
}

int create_token(const config::Config &config, auth::Role role, const std::string &name) {
  store::Dialect dialect{};
  auto sql = open(config, &dialect);
  WriteTransaction tr(*sql, dialect);
  const auto created = auth::create_token(*sql, role, name);
  tr.commit();
  fmt::print("created {} token {} named \"{}\"; it is shown only once:\n{}\n",
             auth::to_string(role), created.id, name, created.token);
  return 0;
}

int resend_activation(const config::Config &config, const std::string &email) {
  auto normalized = provisioning::normalise_email(email);
  if (!normalized) throw std::runtime_error(normalized.error().detail);
  store::Dialect dialect{};
  auto sql = open(config, &dialect);
  WriteTransaction tr(*sql, dialect);
  const auto user = provisioning::find_user_by_email(*sql, *normalized);
  if (!user) throw std::runtime_error("no account with the email " + *normalized);
  auto reissued = auth::reissue_activation(*sql, user->id, std::chrono::system_clock::now(),
                                           config.activation_ttl);
  if (!reissued) throw std::runtime_error(reissued.error().detail);
  tr.commit();
  fmt::print("new activation token for {} (account {}), valid until {}; earlier tokens no longer "
             "work. It is shown only once:\n{}\n",
             reissued->email, reissued->account_id, reissued->expires_at, reissued->token);
  return 0;
}

int list_tokens(const config::Config &config) {
  auto sql = open(config);
  fmt::print("{:>6}  {:<13}  {:<24}  {:<24}  {:<24}  {}\n", "id", "role", "created", "last used",
             "revoked", "name");
  for (const auto &token : auth::list_tokens(*sql)) {
    fmt::print("{:>6}  {:<13}  {:<24}  {:<24}  {:<24}  {}\n", token.id, auth::to_string(token.role),
               token.created_at, token.last_used_at.value_or("-"), token.revoked_at.value_or("-"),
               token.name);
  }
  return 0;
}

int revoke_token(const config::Config &config, std::int64_t id) {
  store::Dialect dialect{};
  auto sql = open(config, &dialect);
  WriteTransaction tr(*sql, dialect);
  auto revoked = auth::revoke_token(*sql, id, cli_actor(), config.instance);
  if (!revoked) throw std::runtime_error(revoked.error().detail);
  tr.commit();
  if (revoked->changed) {
    fmt::print("token {} (\"{}\") revoked; every instance refuses it within 2 s\n", id,
               revoked->token.name);
  } else {
    fmt::print("token {} (\"{}\") was already revoked at {}\n", id, revoked->token.name,
               revoked->token.revoked_at.value_or("?"));
  }
  return 0;
}

int mode_get(const config::Config &config) {
  auto sql = open(config);
  const auto state = system::load_mode(*sql);
  fmt::print("{}\nversion {} updated {} by {}\n", system::to_string(state.mode), state.version,
             state.updated_at, state.updated_by);
  return 0;
}

int mode_set(const config::Config &config, system::SystemMode mode, const std::string &reason) {
  // The same SWITCH alert as the API: written to the outbox here, delivered
  // by a running serve or worker (or the next one to start).
  const alerts::AlertPolicy alert_policy = alerts::policy_from(config);
  store::Dialect dialect{};
  auto sql = open(config, &dialect);
  WriteTransaction tr(*sql, dialect);
  const auto result = system::set_mode(
      *sql, system::ModeChange{mode, reason, cli_actor(), config.instance, &alert_policy});
  // PostgreSQL: running instances without Redis hear it on commit (PgListener).
  if (result.changed) store::notify(*sql, store::k_mode_channel);
  tr.commit();
  if (result.changed && config.redis) {
    // Running instances follow at once (else within CONFIG_CACHE_TTL_MS).
    redis::Connection connection(*config.redis,
                                 {config.redis_connect_timeout, config.redis_command_timeout});
    auto sent = connection.run(
        {"PUBLISH", redis::mode_channel(config.redis_prefix),
         redis::mode_message(result.state.version, system::to_string(result.state.mode))});
    if (!sent || sent->is_error()) {
      fmt::print(stderr,
                 "warning: could not tell running instances through Redis ({}); they "
                 "follow within CONFIG_CACHE_TTL_MS\n",
                 sent ? sent->text : sent.error().detail);
    }
  }
  if (result.changed) {
    fmt::print("{}\nswitched; version {}\n", system::to_string(result.state.mode),
               result.state.version);
  } else {
    fmt::print("{}\nunchanged; version {}\n", system::to_string(result.state.mode),
               result.state.version);
  }
  return 0;
}

int logs(const config::Config &config, const std::optional<std::string> &type, int limit) {
  health::Filter filter;
  if (type) {
    filter.type = health::parse_event_type(*type);
    if (!filter.type)
      throw std::invalid_argument("--type must be INFO, WARNING, ERROR, SWITCH or CRITICAL");
  }
  filter.limit = limit;
  auto sql = open(config);
  for (const auto &e : health::list(*sql, filter)) {
    fmt::print("{} {} {:<8} {}{} {}\n", e.id, e.created_at, health::to_string(e.type), e.message,
               e.repeat_count > 1 ? fmt::format(" (x{})", e.repeat_count) : "",
               e.metadata.is_discarded() ? "{}" : e.metadata.dump());
  }
  return 0;
}

int list_jobs(const config::Config &config, const std::optional<std::string> &status, int limit) {
  jobs::ListFilter filter;
  if (status) {
    filter.status = jobs::parse_status(*status);
    if (!filter.status)
      throw std::invalid_argument("--status must be queued, running, succeeded or dead");
  }
  filter.limit = limit;
  auto sql = open(config);
  for (const auto &job : jobs::list(*sql, filter)) {
    fmt::print("{} {:<9} attempts={} {} created={} updated={}{}\n", job.id,
               jobs::to_string(job.status), job.attempts, job.email, job.created_at, job.updated_at,
               job.last_error ? " error=" + *job.last_error : "");
  }
  return 0;
}

int retry_job(const config::Config &config, std::int64_t id) {
  store::Dialect dialect{};
  auto sql = open(config, &dialect);
  WriteTransaction tr(*sql, dialect);
  auto job = jobs::retry_dead(*sql, id, cli_actor(), config.instance);
  if (!job) throw std::runtime_error(job.error().detail);
  tr.commit();
  fmt::print("job {} re-queued\n", job->id);
  return 0;
}

namespace {

// One line of `jobs show`: what the entry says, in words.
std::string describe_entry(const nlohmann::json &entry) {
  const auto kind = entry.value("kind", "");
  auto text = [&](const char *name) {
    const auto it = entry.find(name);
    return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (kind == "request") {
    return fmt::format("by {}, mode {}{}{}, idempotency key: {}", text("by"), text("mode"),
                       entry.value("fallback", false) ? " (fallback: the queue was down)" : "",
                       entry.value("provisioned_inline", false) ? ", provisioned inline" : "",
                       entry.value("idempotency_key", false) ? "yes" : "no");
  }
  if (kind == "attempt") {
    std::string line =
        fmt::format("#{} on {}: {} in {} ms", entry.value("number", 0), text("worker"),
                    text("outcome"), entry.value("duration_ms", 0LL));
    if (const auto error = text("error"); !error.empty()) line += ": " + error;
    return line;
  }
  if (kind == "event") {
    return fmt::format("{} x{}: {}", text("type"), entry.value("count", 1), text("message"));
  }
  return fmt::format("{} to chat {}: {}{}", text("alert_kind"), text("chat_id"), text("status"),
                     entry.value("delivered", false) ? " (delivered)" : "");
}

} // namespace

int show_job(const config::Config &config, std::int64_t id, bool json) {
  auto sql = open(config);
  const auto found = jobs::timeline(*sql, id);
  if (!found) throw std::runtime_error(fmt::format("no job with id {}", id));
  if (json) {
    fmt::print("{}\n", found->to_json().dump(2));
    return 0;
  }
  const auto &job = found->job;
  fmt::print("job {} {}: {}, {} attempt(s), created by {}{}\n", job.id, job.email,
             jobs::to_string(job.status), job.attempts, found->created_by,
             job.last_error ? ", last error: " + *job.last_error : "");
  for (const auto &entry : found->entries) {
    fmt::print("{}  {:<8} {}\n", entry.value("at", ""), entry.value("kind", ""),
               describe_entry(entry));
  }
  return 0;
}

int alerts_test(const config::Config &config) {
  if (config.telegram_bot_token.empty() || config.telegram_admin_chat_ids.empty()) {
    throw std::runtime_error("alerts are not configured: set TELEGRAM_BOT_TOKEN and "
                             "TELEGRAM_ADMIN_CHAT_ID (docs/alerts.md)");
  }
  alerts::TelegramClient client(alerts::sender_settings(config).telegram);
  const std::string text = alerts::format_test(clock::now_iso8601(), config.instance);
  std::string failures;
  for (const auto &chat : config.telegram_admin_chat_ids) {
    const auto result = client.send_message(chat, text);
    std::string failure;
    switch (result.outcome) {
    case alerts::SendResult::Outcome::delivered:
      fmt::print("test message sent to chat {}\n", chat);
      continue;
    case alerts::SendResult::Outcome::migrated:
      failure = fmt::format("{} (the group is now the supergroup {}: set TELEGRAM_ADMIN_CHAT_ID "
                            "to it)",
                            result.description, result.migrate_to_chat_id);
      break;
    case alerts::SendResult::Outcome::rate_limited:
      failure =
          fmt::format("{} (retry after {} s)", result.description, result.retry_after.count());
      break;
    default: failure = result.description; break;
    }
    if (result.http_status > 0) failure += fmt::format(" [HTTP {}]", result.http_status);
    failures += fmt::format("{}chat {}: {}", failures.empty() ? "" : "; ", chat, failure);
  }
  if (!failures.empty()) {
    throw std::runtime_error("the test message was not delivered: " +
                             alerts::mask(failures, config.telegram_bot_token));
  }
  return 0;
}

} // namespace usher::cli
