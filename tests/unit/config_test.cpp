// Unit tests for config/load: defaults, flag > env > file precedence, errors naming the variable.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <usher/config/config.hpp>

namespace usher::config {
namespace {

using namespace std::chrono_literals;
using Variables = std::map<std::string, std::string>;

// A TOML file under the temporary directory, removed when the test ends.
class TempTomlFile {
public:
  explicit TempTomlFile(const std::string &contents) {
    static std::atomic<int> counter{0};
    m_path = std::filesystem::temp_directory_path() /
             ("usher_unit_config_" + std::to_string(getpid()) + "_" + std::to_string(counter++) +
              "_" + std::to_string(std::random_device{}()) + ".toml");
    std::ofstream(m_path) << contents;
  }
  ~TempTomlFile() {
    std::error_code ignored;
    std::filesystem::remove(m_path, ignored);
  }
  TempTomlFile(const TempTomlFile &) = delete;
  TempTomlFile &operator=(const TempTomlFile &) = delete;

  std::string path() const { return m_path.string(); }

private:
  std::filesystem::path m_path;
};

// load() with `env` as the whole environment, `flags` and an optional file.
Result<Config> load_with(const Variables &env, const Variables &flags = {},
                         std::optional<std::string> file = std::nullopt) {
  Sources sources;
  sources.file = std::move(file);
  sources.env = [&env](const char *name) -> const char * {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  sources.flags = flags;
  return load(sources);
}

void expect_invalid(const Result<Config> &config, const std::string &field,
                    const std::string &code = "config") {
  ASSERT_FALSE(config) << "accepted; " << field << " should have been rejected";
  EXPECT_EQ(config.error().kind, ErrorKind::invalid);
  EXPECT_EQ(config.error().code, code);
  EXPECT_EQ(config.error().field, field);
  EXPECT_NE(config.error().detail.find(field), std::string::npos) << config.error().detail;
}

TEST(Config, DefaultsFollowTheSpec) {
  const auto config = load_with({});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->listen_host, "127.0.0.1");
  EXPECT_EQ(config->listen_port, 8080);
  EXPECT_EQ(config->database_url, "sqlite:var/usher.db");
  EXPECT_EQ(config->redis_url, "");
  EXPECT_TRUE(config->start_worker);
  EXPECT_EQ(config->worker_concurrency, 4u);
  EXPECT_EQ(config->job_max_attempts, 3u);
  EXPECT_EQ(config->job_backoff, 1000ms);
  EXPECT_EQ(config->config_cache_ttl, 60000ms);
  EXPECT_EQ(config->telegram_bot_token, "");
  EXPECT_TRUE(config->telegram_admin_chat_ids.empty());
  EXPECT_EQ(config->telegram_api_url, "https://api.telegram.org");
  EXPECT_EQ(config->alert_throttle, 60000ms);
  EXPECT_EQ(config->db_outage_alert, 10000ms);
  EXPECT_FALSE(config->instance.empty()) << "defaults to the host name";
  EXPECT_EQ(config->log_format, LogFormat::text);
}

TEST(Config, WorksWithoutAnEnvironmentFunction) {
  const auto config = load(Sources{});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->listen_port, 8080);
}

TEST(Config, ReadsEveryKindOfValueFromTheEnvironment) {
  const auto config = load_with({{"USHER_LISTEN", "0.0.0.0:9090"},
                                 {"DATABASE_URL", "postgresql://u:p@db:5432/usher"},
                                 {"REDIS_URL", "redis://:secret@localhost:6379/2"},
                                 {"START_WORKER", "false"},
                                 {"WORKER_CONCURRENCY", "16"},
                                 {"JOB_MAX_ATTEMPTS", "5"},
                                 {"JOB_BACKOFF_MS", "250"},
                                 {"CONFIG_CACHE_TTL_MS", "1500"},
                                 {"TELEGRAM_BOT_TOKEN", "123:abc"},
                                 {"TELEGRAM_ADMIN_CHAT_ID", "42"},
                                 {"TELEGRAM_API_URL", "http://127.0.0.1:9999//"},
                                 {"ALERT_THROTTLE_MS", "0"},
                                 {"DB_OUTAGE_ALERT_MS", "0"},
                                 {"USHER_INSTANCE", "usher-a"},
                                 {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->listen_host, "0.0.0.0");
  EXPECT_EQ(config->listen_port, 9090);
  EXPECT_EQ(config->database_url, "postgresql://u:p@db:5432/usher");
  EXPECT_EQ(config->redis_url, "redis://:secret@localhost:6379/2");
  EXPECT_FALSE(config->start_worker);
  EXPECT_EQ(config->worker_concurrency, 16u);
  EXPECT_EQ(config->job_max_attempts, 5u);
  EXPECT_EQ(config->job_backoff, 250ms);
  EXPECT_EQ(config->config_cache_ttl, 1500ms);
  EXPECT_EQ(config->telegram_bot_token, "123:abc");
  EXPECT_EQ(config->telegram_admin_chat_ids, std::vector<std::string>{"42"});
  EXPECT_EQ(config->telegram_api_url, "http://127.0.0.1:9999");
  EXPECT_EQ(config->alert_throttle, 0ms);
  EXPECT_EQ(config->db_outage_alert, 0ms);
  EXPECT_EQ(config->instance, "usher-a");
  EXPECT_EQ(config->log_format, LogFormat::json);
}

TEST(Config, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  const TempTomlFile file("worker_concurrency = 2\n"
                          "job_max_attempts = 7\n"
                          "usher_listen = \"10.0.0.1:7000\"\n"
                          "log_format = \"json\"\n"
                          "start_worker = false\n");
  const Variables env = {{"WORKER_CONCURRENCY", "3"}, {"USHER_LISTEN", "10.0.0.2:7001"}};
  const Variables flags = {{"WORKER_CONCURRENCY", "9"}};

  const auto config = load_with(env, flags, file.path());
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->worker_concurrency, 9u);  // flag over env and file
  EXPECT_EQ(config->listen_host, "10.0.0.2"); // env over file
  EXPECT_EQ(config->listen_port, 7001);
  EXPECT_EQ(config->job_max_attempts, 7u);        // file over default
  EXPECT_EQ(config->log_format, LogFormat::json); // file, a string
  EXPECT_FALSE(config->start_worker);             // file, a boolean
  EXPECT_EQ(config->job_backoff, 1000ms);         // default

  const auto without_flag = load_with(env, {}, file.path());
  ASSERT_TRUE(without_flag) << without_flag.error().detail;
  EXPECT_EQ(without_flag->worker_concurrency, 3u);

  const auto file_only = load_with({}, {}, file.path());
  ASSERT_TRUE(file_only) << file_only.error().detail;
  EXPECT_EQ(file_only->worker_concurrency, 2u);
}

TEST(Config, InvalidEnvironmentValuesNameTheVariable) {
  expect_invalid(load_with({{"WORKER_CONCURRENCY", "abc"}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"WORKER_CONCURRENCY", "0"}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"WORKER_CONCURRENCY", "257"}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"WORKER_CONCURRENCY", "-1"}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"WORKER_CONCURRENCY", "4 "}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"WORKER_CONCURRENCY", ""}}), "WORKER_CONCURRENCY");
  expect_invalid(load_with({{"USHER_LISTEN", "nope"}}), "USHER_LISTEN");
  expect_invalid(load_with({{"USHER_LISTEN", "127.0.0.1:65536"}}), "USHER_LISTEN");
  expect_invalid(load_with({{"USHER_LISTEN", "127.0.0.1:"}}), "USHER_LISTEN");
  expect_invalid(load_with({{"DATABASE_URL", "mysql://x"}}), "DATABASE_URL");
  expect_invalid(load_with({{"DATABASE_URL", "sqlite:"}}), "DATABASE_URL");
  expect_invalid(load_with({{"REDIS_URL", "http://localhost:6379"}}), "REDIS_URL");
  expect_invalid(load_with({{"LOG_FORMAT", "xml"}}), "LOG_FORMAT");
  expect_invalid(load_with({{"START_WORKER", "maybe"}}), "START_WORKER");
  expect_invalid(load_with({{"CONFIG_CACHE_TTL_MS", "0"}}), "CONFIG_CACHE_TTL_MS");
  expect_invalid(load_with({{"TELEGRAM_API_URL", "ftp://x"}}), "TELEGRAM_API_URL");
}

TEST(Config, RedisUrlGivesTheEndpointAndHostPortAreAccepted) {
  const auto url = load_with({{"REDIS_URL", "redis://:pw@cache.internal:6390/3"}});
  ASSERT_TRUE(url) << url.error().detail;
  ASSERT_TRUE(url->redis);
  EXPECT_EQ(url->redis->host, "cache.internal");
  EXPECT_EQ(url->redis->port, 6390);
  EXPECT_EQ(url->redis->password, "pw");
  EXPECT_EQ(url->redis->db, 3U);

  const auto host_port = load_with({{"REDIS_HOST", "10.0.0.5"}, {"REDIS_PORT", "6400"}});
  ASSERT_TRUE(host_port);
  ASSERT_TRUE(host_port->redis);
  EXPECT_EQ(host_port->redis->host, "10.0.0.5");
  EXPECT_EQ(host_port->redis->port, 6400);

  const auto neither = load_with({});
  ASSERT_TRUE(neither);
  EXPECT_FALSE(neither->redis) << "no Redis: the embedded queue";

  const auto defaults = parse_redis_url("redis://localhost");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->port, 6379);
  EXPECT_EQ(defaults->db, 0U);
  EXPECT_TRUE(defaults->password.empty());
}

TEST(Config, BadRedisUrlsAreRejectedWithoutEchoingThePassword) {
  for (const char *bad : {"redis://", "redis://:pw@", "redis://host:0", "redis://host:99999",
                          "redis://host:x", "redis://host/db", "rediss://host"}) {
    const auto loaded = load_with({{"REDIS_URL", bad}});
    ASSERT_FALSE(loaded) << bad;
    EXPECT_EQ(loaded.error().field, "REDIS_URL") << bad;
  }
  const auto secret = load_with({{"REDIS_URL", "redis://:hunter2@host:bad"}});
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().detail.find("hunter2"), std::string::npos);
  expect_invalid(load_with({{"REDIS_PREFIX", ""}}), "REDIS_PREFIX");
  expect_invalid(load_with({{"REDIS_COMMAND_TIMEOUT_MS", "0"}}), "REDIS_COMMAND_TIMEOUT_MS");
}

TEST(Config, WebhookSecretsAreCommaSeparatedListsAndTheToleranceIsNeverZero) {
  const auto defaults = load_with({});
  ASSERT_TRUE(defaults) << defaults.error().detail;
  EXPECT_TRUE(defaults->webhook_secrets_stripe.empty());
  EXPECT_TRUE(defaults->webhook_secrets_lemonsqueezy.empty());
  EXPECT_TRUE(defaults->webhook_secrets_generic.empty());
  EXPECT_EQ(defaults->webhook_tolerance, 300s);

  const auto set = load_with({{"WEBHOOK_SECRET_STRIPE", " whsec_new , whsec_old,"},
                              {"WEBHOOK_SECRET_LEMONSQUEEZY", "ls-secret"},
                              {"WEBHOOK_SECRET_GENERIC", "g1,g2"},
                              {"WEBHOOK_TOLERANCE_S", "60"}});
  ASSERT_TRUE(set) << set.error().detail;
  EXPECT_EQ(set->webhook_secrets_stripe, (std::vector<std::string>{"whsec_new", "whsec_old"}));
  EXPECT_EQ(set->webhook_secrets_lemonsqueezy, std::vector<std::string>{"ls-secret"});
  EXPECT_EQ(set->webhook_secrets_generic, (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ(set->webhook_tolerance, 60s);

  expect_invalid(load_with({{"WEBHOOK_TOLERANCE_S", "0"}}), "WEBHOOK_TOLERANCE_S");
  expect_invalid(load_with({{"WEBHOOK_TOLERANCE_S", "-5"}}), "WEBHOOK_TOLERANCE_S");
  const std::string too_long = "hunter2" + std::string(2000, 'x');
  const auto secret = load_with({{"WEBHOOK_SECRET_STRIPE", too_long}});
  expect_invalid(secret, "WEBHOOK_SECRET_STRIPE");
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().detail.find("hunter2"), std::string::npos);
}

TEST(Config, OutboundWebhooksNeedHttpUrlsAndASigningSecret) {
  const auto defaults = load_with({});
  ASSERT_TRUE(defaults) << defaults.error().detail;
  EXPECT_TRUE(defaults->webhook_urls.empty());
  EXPECT_EQ(defaults->webhook_timeout, 5000ms);
  EXPECT_EQ(defaults->webhook_retry, 24h);

  const auto set =
      load_with({{"WEBHOOK_URLS", " https://crm.example.com/hook ,http://10.0.0.2:81/x,"},
                 {"WEBHOOK_SIGNING_SECRET", "whsec_out"},
                 {"WEBHOOK_TIMEOUT_MS", "2000"},
                 {"WEBHOOK_RETRY_HOURS", "48"}});
  ASSERT_TRUE(set) << set.error().detail;
  EXPECT_EQ(set->webhook_urls,
            (std::vector<std::string>{"https://crm.example.com/hook", "http://10.0.0.2:81/x"}));
  EXPECT_EQ(set->webhook_signing_secret, "whsec_out");
  EXPECT_EQ(set->webhook_timeout, 2000ms);
  EXPECT_EQ(set->webhook_retry, 48h);

  for (const char *bad : {"ftp://x.example.com", "crm.example.com", "http://", "https://a b"}) {
    SCOPED_TRACE(bad);
    expect_invalid(load_with({{"WEBHOOK_URLS", bad}, {"WEBHOOK_SIGNING_SECRET", "s"}}),
                   "WEBHOOK_URLS");
  }
  const auto no_secret = load_with({{"WEBHOOK_URLS", "https://crm.example.com/hook"}});
  expect_invalid(no_secret, "WEBHOOK_SIGNING_SECRET");
  expect_invalid(load_with({{"WEBHOOK_RETRY_HOURS", "0"}}), "WEBHOOK_RETRY_HOURS");
  expect_invalid(load_with({{"WEBHOOK_TIMEOUT_MS", "10"}}), "WEBHOOK_TIMEOUT_MS");
}

TEST(Config, ErrorSaysWhereTheBadValueCameFrom) {
  const auto from_env = load_with({{"WORKER_CONCURRENCY", "abc"}});
  ASSERT_FALSE(from_env);
  EXPECT_NE(from_env.error().detail.find("environment"), std::string::npos)
      << from_env.error().detail;
  EXPECT_NE(from_env.error().detail.find("abc"), std::string::npos) << from_env.error().detail;

  const auto from_flag = load_with({}, {{"LOG_FORMAT", "xml"}});
  ASSERT_FALSE(from_flag);
  expect_invalid(from_flag, "LOG_FORMAT");
  EXPECT_NE(from_flag.error().detail.find("--log-format"), std::string::npos)
      << from_flag.error().detail;

  const TempTomlFile file("job_max_attempts = 0\n");
  const auto from_file = load_with({}, {}, file.path());
  ASSERT_FALSE(from_file);
  expect_invalid(from_file, "JOB_MAX_ATTEMPTS");
  EXPECT_NE(from_file.error().detail.find(file.path()), std::string::npos)
      << from_file.error().detail;
}

TEST(Config, UnknownTomlKeyIsRejected) {
  const TempTomlFile file("worker_concurrency = 2\nlisten = \"127.0.0.1:1\"\n");
  const auto config = load_with({}, {}, file.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().kind, ErrorKind::invalid);
  EXPECT_EQ(config.error().code, "config_file");
  EXPECT_EQ(config.error().field, "LISTEN");
  EXPECT_NE(config.error().detail.find("unknown setting \"listen\""), std::string::npos)
      << config.error().detail;
}

TEST(Config, TomlTablesAndArraysAreRejected) {
  const TempTomlFile file("telegram_admin_chat_id = [1, 2]\n");
  const auto config = load_with({}, {}, file.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, "config_file");
  EXPECT_EQ(config.error().field, "TELEGRAM_ADMIN_CHAT_ID");
}

TEST(Config, MalformedTomlIsAnError) {
  const TempTomlFile file("worker_concurrency = = 2\n");
  const auto config = load_with({}, {}, file.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, "config_file");
  EXPECT_NE(config.error().detail.find(file.path()), std::string::npos) << config.error().detail;
}

TEST(Config, MissingConfigFileIsAnError) {
  const auto config = load_with({}, {}, "/nonexistent/usher/config.toml");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, "config_file");
}

// toml++ 3.3.0 reaches undefined behaviour on some non-ASCII bytes
// (marzer/tomlplusplus#295): load() refuses any byte >= 0x80 before parsing,
// and says where it is.
TEST(Config, NonAsciiTomlFileIsRefusedWithItsPosition) {
  const TempTomlFile file("worker_concurrency = 2\n# caf\xc3\xa9\n");
  const auto config = load_with({}, {}, file.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().kind, ErrorKind::invalid);
  EXPECT_EQ(config.error().code, "config_file");
  EXPECT_EQ(config.error().detail, file.path() +
                                       ": non-ASCII byte 0xC3 at line 2, column 6 (byte offset "
                                       "28); the configuration file must be ASCII");
}

TEST(Config, NonAsciiIsRefusedInStringsAndKeysAlike) {
  // A quoted value toml++ would parse, and the bare key that reaches its bug.
  for (const std::string contents : {"usher_instance = \"caf\xc3\xa9\"\n", "\xcc\xaa = 1\n"}) {
    const TempTomlFile file(contents);
    const auto config = load_with({}, {}, file.path());
    ASSERT_FALSE(config) << contents;
    EXPECT_EQ(config.error().code, "config_file");
    EXPECT_NE(config.error().detail.find("non-ASCII byte"), std::string::npos)
        << config.error().detail;
  }
}

// toml++ 3.3.0 asserts a digit after the T of a date-time (undefined
// behaviour in release builds): refused before it parses.
TEST(Config, ADateTimeWithoutItsTimeIsRefusedBeforeTomlSeesIt) {
  for (const std::string contents :
       {"start_worker = 2024-01-01TJOB00:00:00Z\n", "x = 1\nstart_worker = 2024-01-01t\n",
        "start_worker = 2024-01-01T"}) {
    const TempTomlFile file(contents);
    const auto config = load_with({}, {}, file.path());
    ASSERT_FALSE(config) << contents;
    EXPECT_EQ(config.error().code, "config_file");
    EXPECT_NE(config.error().detail.find("a date-time needs a time"), std::string::npos)
        << config.error().detail;
  }
  // A whole date-time is only a wrong type for the setting, as before.
  const TempTomlFile whole("start_worker = 2024-01-01T10:00:00Z\n");
  const auto config = load_with({}, {}, whole.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().detail.find("a date-time needs a time"), std::string::npos)
      << config.error().detail;
}

TEST(Config, ListenOnPortZeroPicksAFreePort) {
  const auto config = load_with({{"USHER_LISTEN", ":0"}});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->listen_host, "127.0.0.1");
  EXPECT_EQ(config->listen_port, 0);
}

TEST(Config, ListenAcceptsABracketedIpv6Host) {
  const auto config = load_with({{"USHER_LISTEN", "[::1]:8443"}});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->listen_host, "::1");
  EXPECT_EQ(config->listen_port, 8443);
}

TEST(Config, ChatIdsAreNumbersOrChannelsSeparatedByCommas) {
  const auto config = load_with({{"TELEGRAM_ADMIN_CHAT_ID", "1, -100200,@chan"}});
  ASSERT_TRUE(config) << config.error().detail;
  EXPECT_EQ(config->telegram_admin_chat_ids, (std::vector<std::string>{"1", "-100200", "@chan"}));

  const auto gaps = load_with({{"TELEGRAM_ADMIN_CHAT_ID", " 7 ,, 8 ,"}});
  ASSERT_TRUE(gaps) << gaps.error().detail;
  EXPECT_EQ(gaps->telegram_admin_chat_ids, (std::vector<std::string>{"7", "8"}));

  expect_invalid(load_with({{"TELEGRAM_ADMIN_CHAT_ID", "1,chan"}}), "TELEGRAM_ADMIN_CHAT_ID");
}

TEST(Config, ChatIdsMustBeWholeNumbers) {
  // "numbers or @channel": a minus sign only as the sign of a number.
  for (const char *bad : {"-", "1-2", "--5", "12-"}) {
    SCOPED_TRACE(bad);
    expect_invalid(load_with({{"TELEGRAM_ADMIN_CHAT_ID", bad}}), "TELEGRAM_ADMIN_CHAT_ID");
  }
}

TEST(Config, BotTokenNeedsAChatId) {
  expect_invalid(load_with({{"TELEGRAM_BOT_TOKEN", "123:abc"}}), "TELEGRAM_ADMIN_CHAT_ID");
}

TEST(Config, BooleansAcceptTheUsualSpellings) {
  for (const char *yes : {"true", "TRUE", "1", "yes", "on"}) {
    const auto config = load_with({{"START_WORKER", yes}});
    ASSERT_TRUE(config) << yes;
    EXPECT_TRUE(config->start_worker) << yes;
  }
  for (const char *no : {"false", "False", "0", "no", "off"}) {
    const auto config = load_with({{"START_WORKER", no}});
    ASSERT_TRUE(config) << no;
    EXPECT_FALSE(config->start_worker) << no;
  }
}

TEST(Config, FlagNameIsTheSettingInLowerCaseWithDashes) {
  EXPECT_EQ(flag_name("DATABASE_URL"), "--database-url");
  EXPECT_EQ(flag_name("CONFIG_CACHE_TTL_MS"), "--config-cache-ttl-ms");
}

TEST(Config, EverySpecVariableIsASetting) {
  for (const char *name :
       {"USHER_LISTEN", "DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "START_WORKER",
        "WORKER_CONCURRENCY", "JOB_MAX_ATTEMPTS", "JOB_BACKOFF_MS", "CONFIG_CACHE_TTL_MS",
        "TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_CHAT_ID", "TELEGRAM_API_URL", "ALERT_THROTTLE_MS",
        "USHER_INSTANCE", "LOG_FORMAT"}) {
    const bool found = std::any_of(settings().begin(), settings().end(),
                                   [&](const Setting &s) { return s.name == name; });
    EXPECT_TRUE(found) << name;
  }
}

TEST(Config, MetricsListenIsOptionalSeparateAndValidated) {
  const auto unset = load_with({});
  ASSERT_TRUE(unset);
  EXPECT_FALSE(unset->metrics_listen_host);
  const auto set = load_with({{"METRICS_LISTEN", "127.0.0.2:9464"}});
  ASSERT_TRUE(set) << set.error().detail;
  EXPECT_EQ(set->metrics_listen_host, "127.0.0.2");
  EXPECT_EQ(set->metrics_listen_port, 9464);
  const auto default_host = load_with({{"METRICS_LISTEN", ":0"}});
  ASSERT_TRUE(default_host);
  EXPECT_EQ(default_host->metrics_listen_host, "127.0.0.1");
  expect_invalid(load_with({{"METRICS_LISTEN", "9464"}}), "METRICS_LISTEN");
  expect_invalid(load_with({{"METRICS_LISTEN", "127.0.0.1:70000"}}), "METRICS_LISTEN");
  expect_invalid(
      load_with({{"USHER_LISTEN", "127.0.0.1:9000"}, {"METRICS_LISTEN", "127.0.0.1:9000"}}),
      "METRICS_LISTEN");
}

} // namespace
} // namespace usher::config
