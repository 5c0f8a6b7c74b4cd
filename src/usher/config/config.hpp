// usher's configuration: one typed struct, parsed and validated once at
// start-up from defaults < TOML file < environment < flags (SPEC §1).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <usher/util/crypto.hpp>
#include <usher/util/error.hpp>

namespace usher::config {

enum class LogFormat { text, json };

// Where Redis is: from REDIS_URL, else REDIS_HOST/REDIS_PORT.
struct RedisEndpoint {
  std::string host;
  std::uint16_t port = 6379;
  std::string password; // empty: no AUTH
  unsigned db = 0;
};

// Parses redis://[:password@]host:port[/db] (the port defaults to 6379).
Result<RedisEndpoint> parse_redis_url(const std::string &url);

struct Config {
  // SPEC §1 variables.
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  // METRICS_LISTEN: when set, GET /metrics is served only on this address
  // (docs/metrics.md); unset, on the API's listener.
  std::optional<std::string> metrics_listen_host;
  std::uint16_t metrics_listen_port = 0;
  std::string database_url = "sqlite:var/usher.db";
  std::string redis_url; // empty: the embedded queue
  std::string redis_host;
  std::uint16_t redis_port = 6379;
  // Set when REDIS_URL or REDIS_HOST is: the Redis queue; else the embedded one.
  std::optional<RedisEndpoint> redis;
  bool start_worker = true;
  unsigned worker_concurrency = 4;
  unsigned job_max_attempts = 3;
  std::chrono::milliseconds job_backoff{1000};
  std::chrono::milliseconds config_cache_ttl{60000};
  std::string telegram_bot_token;
  std::vector<std::string> telegram_admin_chat_ids;
  std::string telegram_api_url = "https://api.telegram.org";
  std::chrono::milliseconds alert_throttle{60000};
  std::string instance; // defaults to the host name
  LogFormat log_format = LogFormat::text;
  // SPEC §9 purchase webhooks: each provider's secrets (any one verifies, for
  // rotation; empty: the provider is off) and the timestamp tolerance. The
  // secrets are never logged nor echoed in an error.
  std::vector<std::string> webhook_secrets_stripe;
  std::vector<std::string> webhook_secrets_lemonsqueezy;
  std::vector<std::string> webhook_secrets_generic;
  std::chrono::seconds webhook_tolerance{300};
  // SPEC §9 outbound events: the receivers (http:// or https:// URLs; empty:
  // no event is written nor sent), the signing secret (required with URLs;
  // never logged), the time allowed for one POST and how long an event is
  // retried before it is given up.
  std::vector<std::string> webhook_urls;
  std::string webhook_signing_secret;
  std::chrono::milliseconds webhook_timeout{5000};
  std::chrono::hours webhook_retry{24};

  // usher's own knobs (docs/configuration.md).
  std::chrono::hours activation_ttl{24 * 7};
  crypto::PasswordCost password_cost;
  std::chrono::hours idempotency_ttl{24};
  std::chrono::hours session_ttl{24};
  // Retention (docs/operations.md): ages past which rows are pruned, how often
  // and in batches of how many rows. Dead jobs are never pruned.
  std::chrono::days retention_jobs{30};
  std::chrono::days retention_health_events{30};
  std::chrono::days retention_alerts{30};
  std::chrono::milliseconds retention_interval{60000};
  std::size_t retention_batch = 500;
  std::chrono::milliseconds http_read_timeout{10000};
  std::chrono::milliseconds db_busy_timeout{5000};
  // PostgreSQL's statement_timeout on every connection (lock_timeout is
  // db_busy_timeout).
  std::chrono::milliseconds db_statement_timeout{30000};
  // The database has failed every probe this long: a CRITICAL alert is sent
  // directly to Telegram (health/database_watch.hpp); 0 turns the probe off.
  std::chrono::milliseconds db_outage_alert{10000};
  bool sqlite_synchronous_full = true; // SQLITE_SYNCHRONOUS=full|normal
  // SQLITE_WAL_LIMIT_MIB: past this size the writer truncates the WAL with a
  // blocking checkpoint, and the file is trimmed back to it after a reset.
  std::uint64_t sqlite_wal_limit_mib = 64;
  unsigned http_threads = 1;
  unsigned blocking_threads = 4;
  std::size_t write_queue_limit = 20000;
  // Password attempts (login and activation, docs/api.md): a fixed window
  // per account (normalised email, or activation token) and per client
  // address; argon2id runs on its own bounded pool.
  unsigned auth_account_attempts = 10;
  std::chrono::milliseconds auth_account_window{300000};
  unsigned auth_address_attempts = 100;
  std::chrono::milliseconds auth_address_window{60000};
  std::size_t auth_limiter_keys = 50000;
  // One: each hashing thread holds PASSWORD_HASH_MEMORY_KIB (19 MiB) while
  // it hashes, and two made a login flood serve's RSS peak, 57 MiB
  // (docs/benchmarks.md, "Memory").
  unsigned hash_threads = 1;
  std::size_t hash_queue_limit = 32;
  std::chrono::milliseconds job_lease{30000};
  unsigned job_claim_batch = 256;
  std::chrono::milliseconds queue_poll_interval{500};
  // Alerts (docs/alerts.md): which kinds alert (names of alerts::AlertKind,
  // validated here), how deliveries are timed and when they are given up.
  std::vector<std::string> alert_kinds{"CRITICAL", "SWITCH", "ERROR", "RESOLVED"};
  std::chrono::milliseconds alert_give_up{3600000};
  std::chrono::milliseconds alert_backoff{1000};
  std::chrono::milliseconds alert_poll_interval{200};
  std::chrono::milliseconds telegram_timeout{5000};
  std::chrono::milliseconds telegram_connect_timeout{3000};
  // The Redis queue (docs/configuration.md, docs/operations.md).
  std::string redis_prefix = "usher:";
  std::chrono::milliseconds redis_command_timeout{100};
  std::chrono::milliseconds redis_connect_timeout{100};
  unsigned redis_breaker_failures = 3;
  std::chrono::milliseconds redis_breaker_open{1000};
  std::chrono::milliseconds redis_sweep_interval{5000};
  std::chrono::milliseconds redis_sweep_grace{5000};
  std::string fault_after;   // USHER_FAULT_AFTER, tests only
  bool fault_throws = false; // USHER_FAULT_MODE=throw: fail the attempt instead
};

// One configurable setting: its environment name (the TOML key is the same
// name in lower case, the flag is that with dashes) and how to apply a value.
struct Setting {
  std::string name;
  std::string help;
  // Applies `value` to `config`; returns an error message when invalid.
  std::function<std::optional<std::string>(Config &, const std::string &value)> apply;
};

// Every setting usher knows, in the order of docs/configuration.md.
const std::vector<Setting> &settings();

// "DATABASE_URL" -> "--database-url".
std::string flag_name(const std::string &setting_name);

struct Sources {
  std::optional<std::string> file;               // path given by --config
  std::function<const char *(const char *)> env; // getenv-like
  std::map<std::string, std::string> flags;      // setting name -> value
};

// Builds the configuration from `sources`; the error names the variable.
Result<Config> load(const Sources &sources);

} // namespace usher::config
