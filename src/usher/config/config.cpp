// Every setting's parsing and validation, and the precedence of the sources
// (see config.hpp).
#include <usher/config/config.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <limits>

#include <unistd.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <usher/util/postgres_url.hpp>
#include <usher/util/text.hpp>

namespace usher::config {
namespace {

// Bounds of one WEBHOOK_SECRET_* list.
constexpr std::size_t k_max_webhook_secret = 1024;
constexpr std::size_t k_max_webhook_secrets = 8;

std::optional<std::string> parse_uint(const std::string &value, unsigned long long min,
                                      unsigned long long max, unsigned long long &out) {
  const char *begin = value.data();
  const char *end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(begin, end, out);
  if (ec != std::errc{} || ptr != end || value.empty()) {
    return fmt::format("must be a whole number, got \"{}\"", value);
  }
  if (out < min || out > max)
    return fmt::format("must be between {} and {}, got {}", min, max, out);
  return std::nullopt;
}

template <typename T>
Setting number(std::string name, std::string help, unsigned long long min, unsigned long long max,
               T Config::*field) {
  return Setting{std::move(name), std::move(help),
                 [=](Config &c, const std::string &v) -> std::optional<std::string> {
                   unsigned long long n = 0;
                   if (auto err = parse_uint(v, min, max, n)) return err;
                   if constexpr (std::is_integral_v<T>) {
                     c.*field = static_cast<T>(n);
                   } else {
                     c.*field = T{static_cast<typename T::rep>(n)};
                   }
                   return std::nullopt;
                 }};
}

Setting text_setting(std::string name, std::string help, std::string Config::*field) {
  return Setting{std::move(name), std::move(help),
                 [=](Config &c, const std::string &v) -> std::optional<std::string> {
                   c.*field = v;
                   return std::nullopt;
                 }};
}

std::optional<std::string> parse_bool(const std::string &v, bool &out) {
  const std::string lower = text::ascii_lower(v);
  if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") {
    out = true;
  } else if (lower == "false" || lower == "0" || lower == "no" || lower == "off") {
    out = false;
  } else {
    return fmt::format("must be true or false, got \"{}\"", v);
  }
  return std::nullopt;
}

// HOST:PORT ("[::1]:8080"; an empty host is 127.0.0.1) into `host` and `port`.
std::optional<std::string> parse_host_port(const std::string &v, std::string &host_out,
                                           std::uint16_t &port_out) {
  const auto colon = v.rfind(':');
  if (colon == std::string::npos) return fmt::format("must be HOST:PORT, got \"{}\"", v);
  std::string host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned long long port = 0;
  if (parse_uint(v.substr(colon + 1), 0, 65535, port)) {
    return fmt::format("must be HOST:PORT with a port from 0 to 65535, got \"{}\"", v);
  }
  host_out = host.empty() ? "127.0.0.1" : host;
  port_out = static_cast<std::uint16_t>(port);
  return std::nullopt;
}

std::optional<std::string> parse_listen(Config &c, const std::string &v) {
  return parse_host_port(v, c.listen_host, c.listen_port);
}

std::optional<std::string> parse_metrics_listen(Config &c, const std::string &v) {
  if (v.empty()) {
    c.metrics_listen_host.reset();
    return std::nullopt;
  }
  std::string host;
  if (auto error = parse_host_port(v, host, c.metrics_listen_port)) return error;
  c.metrics_listen_host = host;
  return std::nullopt;
}

std::optional<std::string> parse_database_url(Config &c, const std::string &v) {
  if (v.rfind("sqlite:", 0) == 0) {
    if (v.size() == 7) return "sqlite: needs a path, as in sqlite:var/usher.db";
  } else if (v.rfind("postgresql://", 0) == 0 || v.rfind("postgres://", 0) == 0) {
    // The message never repeats the URL: it holds the password.
    if (auto conninfo = postgres_url::to_conninfo(v); !conninfo) return conninfo.error().detail;
  } else {
    return fmt::format("must start with sqlite: or postgresql://, got \"{}\"",
                       postgres_url::redacted(v));
  }
  c.database_url = v;
  return std::nullopt;
}

std::optional<std::string> apply_redis_url(Config &c, const std::string &v) {
  if (!v.empty()) {
    auto parsed = parse_redis_url(v);
    if (!parsed) return parsed.error().detail;
  }
  c.redis_url = v;
  return std::nullopt;
}

// WEBHOOK_SECRET_*: secrets separated by commas (blanks around them and
// empty pieces dropped). The error never repeats the value: it is a secret.
Setting secret_list(std::string name, std::string help, std::vector<std::string> Config::*field) {
  return Setting{std::move(name), std::move(help),
                 [=](Config &c, const std::string &v) -> std::optional<std::string> {
                   std::vector<std::string> secrets;
                   std::size_t start = 0;
                   while (start <= v.size()) {
                     const auto comma = v.find(',', start);
                     const auto piece = text::trim(std::string_view(v).substr(
                         start, comma == std::string::npos ? std::string::npos : comma - start));
                     if (!piece.empty()) {
                       if (piece.size() > k_max_webhook_secret) {
                         return fmt::format("each secret must be at most {} bytes",
                                            k_max_webhook_secret);
                       }
                       secrets.emplace_back(piece);
                     }
                     if (comma == std::string::npos) break;
                     start = comma + 1;
                   }
                   if (secrets.size() > k_max_webhook_secrets) {
                     return fmt::format("at most {} secrets", k_max_webhook_secrets);
                   }
                   c.*field = std::move(secrets);
                   return std::nullopt;
                 }};
}

// WEBHOOK_URLS: http:// or https:// URLs separated by commas (blanks
// around them and empty pieces dropped), each once.
constexpr std::size_t k_max_webhook_urls = 8;
constexpr std::size_t k_max_webhook_url = 2048;

std::optional<std::string> parse_webhook_urls(Config &c, const std::string &v) {
  std::vector<std::string> urls;
  std::size_t start = 0;
  while (start <= v.size()) {
    const auto comma = v.find(',', start);
    const auto piece = std::string(text::trim(std::string_view(v).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (!piece.empty()) {
      const bool http = piece.rfind("http://", 0) == 0 && piece.size() > 7;
      const bool https = piece.rfind("https://", 0) == 0 && piece.size() > 8;
      if ((!http && !https) || piece.size() > k_max_webhook_url ||
          piece.find_first_of(" \t\r\n") != std::string::npos) {
        return "must be http:// or https:// URLs separated by commas";
      }
      if (std::find(urls.begin(), urls.end(), piece) == urls.end()) urls.push_back(piece);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (urls.size() > k_max_webhook_urls) {
    return fmt::format("at most {} URLs", k_max_webhook_urls);
  }
  c.webhook_urls = std::move(urls);
  return std::nullopt;
}

std::optional<std::string> parse_chat_ids(Config &c, const std::string &v) {
  c.telegram_admin_chat_ids.clear();
  std::size_t start = 0;
  while (start <= v.size()) {
    const auto comma = v.find(',', start);
    const auto piece = std::string(text::trim(std::string_view(v).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (!piece.empty()) {
      // A chat id is a whole number (groups and channels are negative) or @channel.
      const std::string_view digits = std::string_view(piece).substr(piece.front() == '-' ? 1 : 0);
      const bool numeric_id =
          !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
      const bool channel = piece.size() > 1 && piece.front() == '@';
      if (!numeric_id && !channel) {
        return fmt::format("must be chat ids (numbers or @channel) separated by commas, got \"{}\"",
                           piece);
      }
      c.telegram_admin_chat_ids.push_back(piece);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return std::nullopt;
}

// ALERT_KINDS: a comma-separated subset of CRITICAL, SWITCH, ERROR, RESOLVED
// (any case); empty turns every alert off. WARNING and INFO never alert.
std::optional<std::string> parse_alert_kinds(Config &c, const std::string &v) {
  static const char *k_kinds[] = {"CRITICAL", "SWITCH", "ERROR", "RESOLVED"};
  std::vector<std::string> kinds;
  std::size_t start = 0;
  while (start <= v.size()) {
    const auto comma = v.find(',', start);
    std::string piece(text::trim(std::string_view(v).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start)));
    for (char &ch : piece) {
      if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
    }
    if (!piece.empty()) {
      if (piece == "WARNING" || piece == "INFO") {
        return fmt::format("cannot include {}: WARNING and INFO events never alert", piece);
      }
      if (std::find(std::begin(k_kinds), std::end(k_kinds), piece) == std::end(k_kinds)) {
        return fmt::format("must be kinds from CRITICAL, SWITCH, ERROR, RESOLVED separated by "
                           "commas, got \"{}\"",
                           piece);
      }
      if (std::find(kinds.begin(), kinds.end(), piece) == kinds.end()) kinds.push_back(piece);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  c.alert_kinds = std::move(kinds);
  return std::nullopt;
}

std::vector<Setting> make_settings() {
  constexpr unsigned long long k_day_ms = 24ULL * 3600 * 1000;
  return {
      {"USHER_LISTEN", "HTTP listen address HOST:PORT (:0 picks a free port)", parse_listen},
      {"METRICS_LISTEN",
       "HOST:PORT of a separate listener for GET /metrics (then not on USHER_LISTEN); unset: "
       "/metrics on USHER_LISTEN",
       parse_metrics_listen},
      {"DATABASE_URL", "sqlite:PATH or postgresql://user:pass@host:port/db", parse_database_url},
      {"REDIS_URL", "redis://[:password@]host:port[/db]; unset: the embedded queue",
       apply_redis_url},
      text_setting("REDIS_PREFIX", "prefix of every Redis key and channel usher uses",
                   &Config::redis_prefix),
      number("REDIS_COMMAND_TIMEOUT_MS", "longest wait for one Redis command (then: inline)", 1,
             10000, &Config::redis_command_timeout),
      number("REDIS_CONNECT_TIMEOUT_MS", "longest wait for a Redis connection", 1, 10000,
             &Config::redis_connect_timeout),
      number("REDIS_BREAKER_FAILURES", "consecutive Redis failures that open the circuit", 1, 1000,
             &Config::redis_breaker_failures),
      number("REDIS_BREAKER_OPEN_MS", "how long the circuit stays open before a probe", 10, 600000,
             &Config::redis_breaker_open),
      number("REDIS_SWEEP_INTERVAL_MS", "how often queued jobs missing from Redis are re-sent", 50,
             3600000, &Config::redis_sweep_interval),
      number("REDIS_SWEEP_GRACE_MS", "age of a queued job before the sweeper may re-send it", 0,
             3600000, &Config::redis_sweep_grace),
      text_setting("REDIS_HOST", "Redis host (when REDIS_URL is unset)", &Config::redis_host),
      number("REDIS_PORT", "Redis port (with REDIS_HOST)", 1, 65535, &Config::redis_port),
      {"START_WORKER", "run worker threads inside serve",
       [](Config &c, const std::string &v) { return parse_bool(v, c.start_worker); }},
      number("WORKER_CONCURRENCY", "jobs processed at once per process", 1, 256,
             &Config::worker_concurrency),
      number("JOB_MAX_ATTEMPTS", "attempts before a job is dead", 1, 100,
             &Config::job_max_attempts),
      number("JOB_BACKOFF_MS", "base of the exponential backoff between attempts", 1, k_day_ms,
             &Config::job_backoff),
      number("CONFIG_CACHE_TTL_MS", "system-mode cache lifetime", 1, k_day_ms,
             &Config::config_cache_ttl),
      text_setting("TELEGRAM_BOT_TOKEN", "Telegram bot token; alerts are off without it",
                   &Config::telegram_bot_token),
      {"TELEGRAM_ADMIN_CHAT_ID", "chat ids separated by commas", parse_chat_ids},
      {"TELEGRAM_API_URL", "Bot API base URL",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         if (v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0) {
           return "must be an http:// or https:// URL";
         }
         c.telegram_api_url = v;
         while (!c.telegram_api_url.empty() && c.telegram_api_url.back() == '/') {
           c.telegram_api_url.pop_back();
         }
         return std::nullopt;
       }},
      number("ALERT_THROTTLE_MS", "window in which repeats of one alert are folded", 0, k_day_ms,
             &Config::alert_throttle),
      {"ALERT_KINDS", "kinds that alert: CRITICAL,SWITCH,ERROR,RESOLVED (empty: none)",
       parse_alert_kinds},
      number("ALERT_GIVE_UP_MS", "how long an alert is retried before it is given up", 1000,
             7 * k_day_ms, &Config::alert_give_up),
      number("ALERT_BACKOFF_MS", "first delay between delivery attempts (doubles, at most 5 min)",
             1, k_day_ms, &Config::alert_backoff),
      number("ALERT_POLL_MS", "how often the sender looks for alerts to deliver", 10, 60000,
             &Config::alert_poll_interval),
      number("TELEGRAM_TIMEOUT_MS", "time allowed for one Bot API request", 100, 600000,
             &Config::telegram_timeout),
      number("TELEGRAM_CONNECT_TIMEOUT_MS", "time allowed to connect to the Bot API", 100, 600000,
             &Config::telegram_connect_timeout),
      text_setting("USHER_INSTANCE", "instance name (default: the host name)", &Config::instance),
      {"LOG_FORMAT", "text or json",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         if (v == "text") {
           c.log_format = LogFormat::text;
         } else if (v == "json") {
           c.log_format = LogFormat::json;
         } else {
           return fmt::format("must be text or json, got \"{}\"", v);
         }
         return std::nullopt;
       }},
      secret_list("WEBHOOK_SECRET_STRIPE",
                  "Stripe webhook signing secrets, separated by commas (unset: provider off)",
                  &Config::webhook_secrets_stripe),
      secret_list("WEBHOOK_SECRET_LEMONSQUEEZY",
                  "Lemon Squeezy signing secrets, separated by commas (unset: provider off)",
                  &Config::webhook_secrets_lemonsqueezy),
      secret_list("WEBHOOK_SECRET_GENERIC",
                  "generic webhook secrets, separated by commas (unset: provider off)",
                  &Config::webhook_secrets_generic),
      number("WEBHOOK_TOLERANCE_S", "largest age (and lead) of a signed webhook timestamp", 1,
             86400, &Config::webhook_tolerance),
      {"WEBHOOK_URLS", "URLs receiving user.provisioned and job.dead, separated by commas",
       parse_webhook_urls},
      {"WEBHOOK_SIGNING_SECRET", "secret signing outbound events (required with WEBHOOK_URLS)",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         if (v.size() > k_max_webhook_secret) {
           return fmt::format("must be at most {} bytes", k_max_webhook_secret);
         }
         c.webhook_signing_secret = v;
         return std::nullopt;
       }},
      number("WEBHOOK_TIMEOUT_MS", "time allowed for one outbound event POST", 100, 600000,
             &Config::webhook_timeout),
      number("WEBHOOK_RETRY_HOURS", "how long an outbound event is retried before it is given up",
             1, 24 * 7, &Config::webhook_retry),
      number("ACTIVATION_TTL_HOURS", "lifetime of an activation token", 1, 24 * 365,
             &Config::activation_ttl),
      {"PASSWORD_HASH_MEMORY_KIB", "argon2id memory cost in KiB",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         unsigned long long n = 0;
         if (auto err = parse_uint(v, 8, 4ULL * 1024 * 1024, n)) return err;
         c.password_cost.memory_kib = static_cast<std::size_t>(n);
         return std::nullopt;
       }},
      {"PASSWORD_HASH_ITERATIONS", "argon2id time cost",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         unsigned long long n = 0;
         if (auto err = parse_uint(v, 1, 100, n)) return err;
         c.password_cost.iterations = n;
         return std::nullopt;
       }},
      number("IDEMPOTENCY_TTL_HOURS", "how long Idempotency-Key responses are kept", 24, 24 * 365,
             &Config::idempotency_ttl),
      number("SESSION_TTL_HOURS", "lifetime of a login session token", 1, 24 * 365,
             &Config::session_ttl),
      number("RETENTION_JOBS_DAYS", "age past which succeeded jobs lose their attempt rows", 1,
             3650, &Config::retention_jobs),
      number("RETENTION_HEALTH_EVENTS_DAYS", "age past which health events are deleted", 1, 3650,
             &Config::retention_health_events),
      number("RETENTION_ALERTS_DAYS", "age past which sent and failed alerts are deleted", 1, 3650,
             &Config::retention_alerts),
      number("RETENTION_INTERVAL_MS", "how often old rows are pruned", 1000, k_day_ms,
             &Config::retention_interval),
      number("RETENTION_BATCH", "rows deleted per statement and transaction when pruning", 1,
             100000, &Config::retention_batch),
      number("HTTP_READ_TIMEOUT_MS", "time allowed to read one request", 100, 600000,
             &Config::http_read_timeout),
      number("DB_BUSY_TIMEOUT_MS", "how long a database call waits for a lock", 10, 600000,
             &Config::db_busy_timeout),
      number("DB_STATEMENT_TIMEOUT_MS",
             "PostgreSQL: longest run of one statement (statement_timeout)", 100, 3600000,
             &Config::db_statement_timeout),
      number("DB_OUTAGE_ALERT_MS",
             "how long the database fails every probe before a CRITICAL alert is sent directly "
             "(0: no probe)",
             0, k_day_ms, &Config::db_outage_alert),
      {"SQLITE_SYNCHRONOUS", "full (a commit survives power loss) or normal (survives a crash)",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         if (v != "full" && v != "normal")
           return fmt::format("must be full or normal, got \"{}\"", v);
         c.sqlite_synchronous_full = v == "full";
         return std::nullopt;
       }},
      number("SQLITE_WAL_LIMIT_MIB",
             "SQLite WAL size in MiB past which the writer pauses to truncate it", 1, 65536,
             &Config::sqlite_wal_limit_mib),
      number("HTTP_THREADS", "I/O threads of the HTTP server", 1, 64, &Config::http_threads),
      number("BLOCKING_THREADS", "threads for database reads", 1, 256, &Config::blocking_threads),
      number("AUTH_ACCOUNT_ATTEMPTS", "password attempts per account in AUTH_ACCOUNT_WINDOW_MS", 1,
             1000000, &Config::auth_account_attempts),
      number("AUTH_ACCOUNT_WINDOW_MS", "window of AUTH_ACCOUNT_ATTEMPTS", 1000, k_day_ms,
             &Config::auth_account_window),
      number("AUTH_ADDRESS_ATTEMPTS", "password attempts per client address in the window", 1,
             1000000, &Config::auth_address_attempts),
      number("AUTH_ADDRESS_WINDOW_MS", "window of AUTH_ADDRESS_ATTEMPTS", 1000, k_day_ms,
             &Config::auth_address_window),
      number("AUTH_LIMITER_KEYS", "accounts and addresses each attempt limiter remembers", 100,
             10000000, &Config::auth_limiter_keys),
      number("HASH_THREADS", "threads for argon2id (login, activation)", 1, 256,
             &Config::hash_threads),
      number("HASH_QUEUE_LIMIT", "password checks waiting for a hashing thread before 503", 1,
             100000, &Config::hash_queue_limit),
      number("JOB_LEASE_MS", "how long a worker holds a job before others may take it", 100,
             k_day_ms, &Config::job_lease),
      number("JOB_CLAIM_BATCH", "jobs one worker thread claims at once", 1, 10000,
             &Config::job_claim_batch),
      number("QUEUE_POLL_MS", "how often idle workers look for jobs queued elsewhere", 10, 60000,
             &Config::queue_poll_interval),
      {"USHER_FAULT_AFTER", "tests only: kill the process after this worker step",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         static const char *k_steps[] = {"",        "claim",           "account",
                                         "profile", "before_complete", "after_commit"};
         if (std::find(std::begin(k_steps), std::end(k_steps), v) == std::end(k_steps)) {
           return "must be claim, account, profile, before_complete or after_commit";
         }
         c.fault_after = v;
         return std::nullopt;
       }},
      {"USHER_FAULT_MODE", "tests only: kill (default) or throw at USHER_FAULT_AFTER",
       [](Config &c, const std::string &v) -> std::optional<std::string> {
         if (v != "kill" && v != "throw") return "must be kill or throw";
         c.fault_throws = v == "throw";
         return std::nullopt;
       }},
      number("WRITE_QUEUE_LIMIT", "pending writes before requests get 503", 1, 10000000,
             &Config::write_queue_limit),
  };
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "usher";
  return buf;
}

// True when text[offset] is the 'T' of a date-time whose time is missing:
// YYYY-MM-DD, then T or t, then no digit.
bool date_without_time(const std::string &text, std::size_t offset) {
  const char c = text[offset];
  if ((c != 'T' && c != 't') || offset < 10) return false;
  const std::string_view date(text.data() + offset - 10, 10);
  for (std::size_t i = 0; i < date.size(); ++i) {
    const bool dash = i == 4 || i == 7;
    if (dash ? date[i] != '-' : (date[i] < '0' || date[i] > '9')) return false;
  }
  return offset + 1 >= text.size() || text[offset + 1] < '0' || text[offset + 1] > '9';
}

// The whole configuration file. toml++ 3.3.0 (Debian 12) reaches undefined
// behaviour on some non-ASCII input (marzer/tomlplusplus#295), so a file with
// any byte >= 0x80 is refused here, before toml++ sees it; no setting needs
// more than ASCII. It also asserts (undefined behaviour where assertions are
// off, as in release builds) that a digit follows the T of a date-time
// (found by fuzz_config_toml: `start_worker = 2024-01-01TJOB00:00:00Z`), so
// such a date-time is refused here too, wherever it stands.
Result<std::string> read_config_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(ErrorKind::invalid, "config_file", fmt::format("{}: cannot be opened", path));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return fail(ErrorKind::invalid, "config_file", fmt::format("{}: read error", path));
  std::size_t line = 1;
  std::size_t line_start = 0;
  for (std::size_t offset = 0; offset < text.size(); ++offset) {
    const auto byte = static_cast<unsigned char>(text[offset]);
    if (byte >= 0x80) {
      return fail(ErrorKind::invalid, "config_file",
                  fmt::format("{}: non-ASCII byte 0x{:02X} at line {}, column {} (byte offset {}); "
                              "the configuration file must be ASCII",
                              path, byte, line, offset - line_start + 1, offset));
    }
    if (date_without_time(text, offset)) {
      return fail(ErrorKind::invalid, "config_file",
                  fmt::format("{}: line {}, column {}: a date-time needs a time (HH:MM:SS) after "
                              "its T",
                              path, line, offset - line_start + 1));
    }
    if (byte == '\n') {
      ++line;
      line_start = offset + 1;
    }
  }
  return text;
}

std::optional<std::string> toml_value_text(const toml::node &node) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  return std::nullopt;
}

} // namespace

Result<RedisEndpoint> parse_redis_url(const std::string &url) {
  constexpr std::string_view k_scheme = "redis://";
  // The URL may hold a password: the message never echoes it.
  const auto bad = [](std::string_view why) -> Result<RedisEndpoint> {
    return fail(ErrorKind::invalid, "config",
                fmt::format("must look like redis://[:password@]host:port[/db] ({})", why));
  };
  if (url.rfind(k_scheme, 0) != 0) return bad("it must start with redis://");
  std::string_view rest = std::string_view(url).substr(k_scheme.size());
  RedisEndpoint endpoint;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view user_info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    // redis://:password@ and redis://user:password@ (the user is not used: AUTH password).
    const auto colon = user_info.find(':');
    endpoint.password =
        std::string(colon == std::string_view::npos ? user_info : user_info.substr(colon + 1));
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      unsigned long long number = 0;
      if (parse_uint(std::string(db), 0, 1000000, number)) return bad("the database is a number");
      endpoint.db = static_cast<unsigned>(number);
    }
  }
  std::string_view host = rest;
  if (const auto colon = rest.rfind(':');
      colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    host = rest.substr(0, colon);
    unsigned long long port = 0;
    if (parse_uint(std::string(rest.substr(colon + 1)), 1, 65535, port)) {
      return bad("the port is a number from 1 to 65535");
    }
    endpoint.port = static_cast<std::uint16_t>(port);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return bad("the host is missing");
  endpoint.host = std::string(host);
  return endpoint;
}

const std::vector<Setting> &settings() {
  static const std::vector<Setting> k_settings = make_settings();
  return k_settings;
}

std::string flag_name(const std::string &setting_name) {
  std::string flag = "--" + text::ascii_lower(setting_name);
  for (char &c : flag) {
    if (c == '_') c = '-';
  }
  return flag;
}

Result<Config> load(const Sources &sources) {
  // Last writer wins: file, then environment, then flags.
  std::map<std::string, std::pair<std::string, std::string>> chosen; // name -> (value, origin)
  if (sources.file) {
    const auto text = read_config_file(*sources.file);
    if (!text) return tl::unexpected(text.error());
    toml::table table;
    try {
      table = toml::parse(*text, std::string_view(*sources.file));
    } catch (const toml::parse_error &e) {
      return fail(ErrorKind::invalid, "config_file",
                  fmt::format("{}: {}", *sources.file, e.description()));
    }
    for (const auto &[key, node] : table) {
      const std::string_view key_text = key.str(); // clang 14 cannot capture a binding
      const std::string name = [&] {
        std::string n(key_text);
        for (char &c : n) {
          if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        }
        return n;
      }();
      const bool known = std::any_of(settings().begin(), settings().end(),
                                     [&](const Setting &s) { return s.name == name; });
      if (!known) {
        return fail(ErrorKind::invalid, "config_file",
                    fmt::format("{}: unknown setting \"{}\"", *sources.file, key.str()), name);
      }
      auto value = toml_value_text(node);
      if (!value) {
        return fail(
            ErrorKind::invalid, "config_file",
            fmt::format("{}: {} must be a string, a number or a boolean", *sources.file, key.str()),
            name);
      }
      chosen[name] = {*value, *sources.file};
    }
  }
  for (const auto &setting : settings()) {
    if (sources.env) {
      if (const char *v = sources.env(setting.name.c_str()))
        chosen[setting.name] = {v, "environment"};
    }
    if (auto it = sources.flags.find(setting.name); it != sources.flags.end()) {
      chosen[setting.name] = {it->second, flag_name(setting.name)};
    }
  }

  Config config;
  for (const auto &setting : settings()) {
    auto it = chosen.find(setting.name);
    if (it == chosen.end()) continue;
    if (auto err = setting.apply(config, it->second.first)) {
      return fail(ErrorKind::invalid, "config",
                  fmt::format("{} {} (from {})", setting.name, *err, it->second.second),
                  setting.name);
    }
  }
  if (config.instance.empty()) config.instance = host_name();
  if (!config.redis_url.empty()) {
    config.redis = *parse_redis_url(config.redis_url); // validated by its setting
  } else if (!config.redis_host.empty()) {
    config.redis = RedisEndpoint{config.redis_host, config.redis_port, "", 0};
  }
  if (config.metrics_listen_host && config.metrics_listen_port != 0 &&
      config.metrics_listen_port == config.listen_port &&
      *config.metrics_listen_host == config.listen_host) {
    return fail(ErrorKind::invalid, "config",
                "METRICS_LISTEN must differ from USHER_LISTEN (it is a separate listener)",
                "METRICS_LISTEN");
  }
  if (config.redis_prefix.empty()) {
    return fail(ErrorKind::invalid, "config", "REDIS_PREFIX must not be empty", "REDIS_PREFIX");
  }
  if (!config.webhook_urls.empty() && config.webhook_signing_secret.empty()) {
    return fail(ErrorKind::invalid, "config",
                "WEBHOOK_SIGNING_SECRET must be set when WEBHOOK_URLS is",
                "WEBHOOK_SIGNING_SECRET");
  }
  if (!config.telegram_bot_token.empty() && config.telegram_admin_chat_ids.empty()) {
    return fail(ErrorKind::invalid, "config",
                "TELEGRAM_ADMIN_CHAT_ID must be set when TELEGRAM_BOT_TOKEN is",
                "TELEGRAM_ADMIN_CHAT_ID");
  }
  return config;
}

} // namespace usher::config
