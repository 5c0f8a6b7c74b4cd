// `usher serve` and `usher worker`: every part built from the configuration,
// run until SIGTERM/SIGINT, then stopped in order (docs/architecture.md).
#include <usher/app/serve.hpp>
#include <usher/app/systemd_notify.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/alerts/direct.hpp>
#include <usher/alerts/outbox.hpp>
#include <usher/alerts/policy.hpp>
#include <usher/alerts/sender.hpp>
#include <usher/auth/accounts.hpp>
#include <usher/auth/api_tokens.hpp>
#include <usher/auth/attempt_limiter.hpp>
#include <usher/auth/hashing_pool.hpp>
#include <usher/auth/token_admin.hpp>
#include <usher/health/database_watch.hpp>
#include <usher/health/health_log.hpp>
#include <usher/health/log_reader.hpp>
#include <usher/http/api.hpp>
#include <usher/http/server.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/importer/import.hpp>
#include <usher/intake/service.hpp>
#include <usher/jobs/job_service.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/metrics/process.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/provisioning/user_directory.hpp>
#include <usher/queue/circuit_gauge.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/queue/redis_queue.hpp>
#include <usher/redis/alert_claim.hpp>
#include <usher/redis/channel.hpp>
#include <usher/store/blocking_pool.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/pg_notify.hpp>
#include <usher/store/retention.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/system/mode_switch.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/log_fields.hpp>
#include <usher/util/request_id.hpp>
#include <usher/webhooks/outbox.hpp>
#include <usher/webhooks/sender.hpp>
#include <usher/worker/worker.hpp>

namespace usher::app {
namespace {

constexpr auto k_grace_period = std::chrono::seconds(10);
// Of which a request still being read at SIGTERM (headers or body on their
// way) has this long to arrive in full.
constexpr auto k_reading_grace = std::chrono::seconds(5);
constexpr auto k_checkpoint_interval = std::chrono::milliseconds(500);
// The queue-depth and outbox-depth gauges: refreshed this often, counting at
// most this many rows (docs/metrics.md).
constexpr auto k_queue_depth_interval = std::chrono::seconds(5);
constexpr long long k_queue_depth_limit = 100000;
// A token revoked on any instance is refused here within this (plus a tick).
constexpr auto k_token_refresh_interval = std::chrono::milliseconds(500);
constexpr std::size_t k_pool_queue_limit = 10000;

// Retention's ages and pace from the settings (docs/operations.md, "Retention").
void register_build_info(metrics::Registry &registry) {
  registry.gauge("usher_build_info", "Always 1; the version of the running binary.", {"version"})
      .with({USHER_VERSION})
      .set(1);
}

store::RetentionSettings retention_settings(const config::Config &config) {
  store::RetentionSettings settings;
  settings.jobs = config.retention_jobs;
  settings.health_events = config.retention_health_events;
  settings.alerts = config.retention_alerts;
  settings.idempotency_keys = config.idempotency_ttl;
  settings.interval = config.retention_interval;
  settings.batch_size = config.retention_batch;
  return settings;
}

// Periodic housekeeping on its own thread and connection: the API token
// registry's refresh (revocations made elsewhere) and retention (old rows
// pruned in small batches, store/retention.hpp). SQLite WAL checkpoints are
// the writer's (WriteBatcher): a checkpoint here made the writer's
// truncating checkpoint fail at once (busy) and the WAL grow.
class Maintenance {
public:
  Maintenance(const store::Database &db, const config::Config &config, auth::TokenRegistry &tokens,
              store::WriteBatcher &writer, const clock::Clock &clock, metrics::Registry &registry)
      : m_db(db), m_tokens(tokens), m_writer(writer),
        m_retention(retention_settings(config), db.dialect(), clock),
        m_queued(registry
                     .gauge("usher_queue_depth",
                            "Jobs waiting in the queue (status queued), counted up to 100000 every "
                            "few seconds by the maintenance thread.")
                     .with()),
        m_oldest(
            registry
                .gauge("usher_queue_oldest_waiting_seconds",
                       "How long the queued job due the longest had been due at the last refresh "
                       "(since its intake or its retry time; 0 when none is due).")
                .with()),
        m_outbox(registry
                     .gauge("usher_alert_outbox_depth",
                            "Telegram alerts waiting in the outbox (pending), counted up to 100000 "
                            "every few seconds by the maintenance thread.")
                     .with()),
        m_thread([this] { run(); }) {}
  ~Maintenance() { stop(); }

  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_wake.notify_one();
    if (m_thread.joinable()) m_thread.join();
  }

private:
  void run() {
    std::unique_ptr<soci::session> sql;
    auto next_token_refresh = std::chrono::steady_clock::now() + k_token_refresh_interval;
    auto next_depth_refresh = std::chrono::steady_clock::now();
    std::unique_lock lock(m_mutex);
    while (!m_wake.wait_for(lock, k_checkpoint_interval, [this] { return m_stopping; })) {
      lock.unlock();
      try {
        if (!sql) sql = m_db.connect();
        auto stall = m_db.guard(*sql, m_db.background_stall_limit());
        if (std::chrono::steady_clock::now() >= next_token_refresh) {
          m_tokens.reload(*sql);
          next_token_refresh = std::chrono::steady_clock::now() + k_token_refresh_interval;
        }
        // `last used` of tokens: one small write per tick at most, and only
        // for tokens whose use was not recorded in the last minute.
        if (auto uses = m_tokens.take_uses(); !uses.empty()) {
          m_writer.submit(
              [uses = std::move(uses)](soci::session &write_sql) {
                auth::record_token_uses(write_sql, uses);
              },
              [](const Result<void> &) {}, store::Priority::background);
        }
        if (std::chrono::steady_clock::now() >= next_depth_refresh) {
          const auto depth = jobs::queue_depth(*sql, k_queue_depth_limit);
          m_queued.set(static_cast<double>(depth.queued));
          m_oldest.set(depth.oldest_waiting_seconds.value_or(0.0));
          m_outbox.set(static_cast<double>(alerts::pending_count(*sql, k_queue_depth_limit)));
          next_depth_refresh = std::chrono::steady_clock::now() + k_queue_depth_interval;
        }
        if (const auto pruned = m_retention.run_if_due(*sql); pruned && pruned->total() > 0) {
          log::with_fields(spdlog::level::info,
                           fmt::format("retention pruned {} job attempts, {} health events, {} "
                                       "alerts, {} outbound events, {} idempotency keys, {} "
                                       "sessions",
                                       pruned->job_attempts, pruned->health_events, pruned->alerts,
                                       pruned->outbound_events, pruned->idempotency_keys,
                                       pruned->sessions),
                           {{"pruned_job_attempts", pruned->job_attempts},
                            {"pruned_health_events", pruned->health_events},
                            {"pruned_alerts", pruned->alerts},
                            {"pruned_outbound_events", pruned->outbound_events},
                            {"pruned_idempotency_keys", pruned->idempotency_keys},
                            {"pruned_sessions", pruned->sessions}});
        }
      } catch (const std::exception &e) {
        spdlog::warn("maintenance failed: {}", e.what());
        sql.reset();
      }
      lock.lock();
    }
  }

  const store::Database &m_db;
  auth::TokenRegistry &m_tokens;
  store::WriteBatcher &m_writer;
  store::Retention m_retention;
  metrics::Gauge &m_queued;
  metrics::Gauge &m_oldest;
  metrics::Gauge &m_outbox;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stopping = false;
  std::thread m_thread;
};

Result<system::ModeState> load_mode_from(const store::Database &db) {
  try {
    auto sql = db.connect();
    // On the writer's thread (or the listener's): a link that stops
    // answering must fail the refresh, not hang the thread.
    auto stall = db.guard(*sql, db.request_stall_limit());
    return system::load_mode(*sql);
  } catch (const std::exception &e) {
    return fail(ErrorKind::unavailable, "database_unavailable", e.what());
  }
}

// SIGTERM and SIGINT are taken by sigwait(): blocked before any thread
// starts, so that every thread inherits the mask.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void wait_for_stop_signal(const sigset_t &signals) {
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, shutting down", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
}

worker::WorkerSettings worker_settings(const config::Config &config,
                                       const alerts::AlertPolicy &alert_policy,
                                       const webhooks::OutboundTargets &outbound,
                                       metrics::Registry *registry) {
  worker::WorkerSettings settings;
  settings.metrics = registry;
  settings.alerts = &alert_policy;
  settings.outbound = &outbound;
  settings.threads = config.worker_concurrency;
  settings.claim_batch = static_cast<int>(config.job_claim_batch);
  settings.lease = config.job_lease;
  settings.backoff = config.job_backoff;
  settings.max_attempts = static_cast<int>(config.job_max_attempts);
  settings.instance = config.instance;
  settings.checkpoint = worker::fault_injector(config.fault_after, config.fault_throws);
  return settings;
}

// The intake's settings, for serve (the API and webhooks share one
// intake::Service) and for import: fallbacks alert through `alert_policy`,
// user.provisioned events go to `outbound`, fallbacks are counted into
// `registry` when there is one.
intake::Settings intake_settings(const config::Config &config,
                                 const alerts::AlertPolicy &alert_policy,
                                 const webhooks::OutboundTargets &outbound,
                                 metrics::Registry *registry) {
  intake::Settings settings{config.activation_ttl, config.job_lease, config.instance,
                            &alert_policy,         nullptr,          &outbound};
  if (registry != nullptr) {
    settings.fallbacks =
        &registry
             ->counter("usher_queue_fallbacks_total",
                       "Queued jobs provisioned inline because the queue could not take them "
                       "(circuit open or dispatch failed).")
             .with();
  }
  return settings;
}

void migrate_at_start(const store::Database &db) {
  auto sql = db.connect();
  const int applied = store::migrate(*sql, db.dialect());
  if (applied > 0) spdlog::info("applied {} migrations", applied);
}

// Says at start-up, in the log and as a WARNING event, when alerts cannot
// reach anyone. Written before the process reports that it runs, so the
// event precedes everything the process does.
void warn_when_alerts_are_off(const store::Database &db, const config::Config &config,
                              const alerts::AlertPolicy &policy) {
  std::string why;
  if (config.telegram_bot_token.empty()) {
    why = "TELEGRAM_BOT_TOKEN is not set";
  } else if (policy.kinds.empty()) {
    why = "ALERT_KINDS is empty";
  } else {
    return;
  }
  const std::string message = "Telegram alerts are off: " + why + " (docs/alerts.md)";
  spdlog::warn("{}", message);
  try {
    auto sql = db.connect();
    health::record(*sql, health::EventType::warning, message, {{"reason", why}}, config.instance);
  } catch (const std::exception &e) {
    spdlog::warn("could not record that alerts are off: {}", e.what());
  }
}

// The outbound event sender when WEBHOOK_URLS is set; it runs until stopped.
std::unique_ptr<webhooks::OutboundSender> start_outbound_sender(const store::Database &db,
                                                                store::WriteBatcher &writer,
                                                                const config::Config &config) {
  if (config.webhook_urls.empty()) return nullptr;
  auto sender =
      std::make_unique<webhooks::OutboundSender>(db, writer, webhooks::sender_settings(config));
  sender->start();
  spdlog::info("outbound events: {} receiver URL(s)", config.webhook_urls.size());
  return sender;
}

// The sender when alerts are on; it runs until stopped.
std::unique_ptr<alerts::AlertSender> start_alert_sender(const store::Database &db,
                                                        store::WriteBatcher &writer,
                                                        const config::Config &config,
                                                        const alerts::AlertPolicy &policy,
                                                        metrics::Registry *registry) {
  auto settings = alerts::sender_settings(config);
  if (registry != nullptr) {
    settings.outcomes = &registry->counter(
        "usher_alerts_total",
        "Telegram alert delivery attempts by outcome: sent, failed (retried later), rejected "
        "(by Telegram) or given_up (retried until ALERT_GIVE_UP_MS).",
        {"outcome"});
    for (const char *outcome : {"sent", "failed", "rejected", "given_up"}) {
      settings.outcomes->with({outcome});
    }
  }
  if (!policy.enabled()) return nullptr;
  auto record_warning = [instance = config.instance](soci::session &sql, const std::string &message,
                                                     const nlohmann::json &metadata) {
    health::record(sql, health::EventType::warning, message, metadata, instance);
  };
  auto sender = std::make_unique<alerts::AlertSender>(db, writer, policy, std::move(settings),
                                                      std::move(record_warning));
  sender->start();
  return sender;
}

// With Redis, the instances on one database agree through a claim in Redis
// on which of them alerts about its outage (redis/alert_claim.hpp); without
// it each alerts on its own. A claim that Redis cannot answer alerts.
health::OutageClaims outage_claims(const config::Config &config,
                                   const health::DatabaseWatchSettings &settings) {
  if (!config.redis) return {};
  auto claim = std::make_shared<redis::AlertClaim>(
      *config.redis, redis::Timeouts{config.redis_connect_timeout, config.redis_command_timeout},
      redis::database_outage_key(config.redis_prefix),
      fmt::format("{} (pid {})", config.instance, ::getpid()));
  // The holder renews its claim on every probe; one that stopped loses it
  // after this and another instance alerts.
  const auto ttl =
      std::max<std::chrono::milliseconds>(15 * settings.interval, std::chrono::seconds(15));
  // After the RESOLVED, the instances that see the database back a little
  // later do not open an outage of their own.
  const auto grace =
      std::max<std::chrono::milliseconds>(settings.threshold, 10 * settings.interval);
  health::OutageClaims claims;
  claims.take = [claim, ttl] {
    const auto taken = claim->take(ttl);
    if (taken) return *taken;
    spdlog::warn("database watch: Redis cannot say whether another instance alerts ({}); this "
                 "one does",
                 taken.error().detail);
    return true;
  };
  claims.keep = [claim, ttl] {
    if (const auto kept = claim->keep(ttl); !kept) {
      spdlog::warn("database watch: could not renew the alert claim in Redis: {}",
                   kept.error().detail);
    }
  };
  claims.release = [claim, grace] {
    if (const auto released = claim->release(grace); !released) {
      spdlog::warn("database watch: could not release the alert claim in Redis: {}",
                   released.error().detail);
    }
  };
  claims.holder = [claim] {
    const auto holder = claim->holder();
    return holder ? *holder : std::string();
  };
  return claims;
}

// The database outage watch unless DB_OUTAGE_ALERT_MS is 0; it runs until
// stopped (before the writer).
std::unique_ptr<health::DatabaseWatch> start_database_watch(const store::Database &db,
                                                            store::WriteBatcher &writer,
                                                            const config::Config &config,
                                                            const alerts::AlertPolicy &policy) {
  if (config.db_outage_alert.count() == 0) return nullptr;
  health::DatabaseWatchSettings settings;
  settings.threshold = config.db_outage_alert;
  settings.interval =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(1), config.db_outage_alert);
  // A probe cut by the watchdog counts as one failure; within the
  // threshold there is room for a few.
  settings.probe_limit = std::clamp<std::chrono::milliseconds>(
      config.db_outage_alert / 2, std::chrono::seconds(1), std::chrono::seconds(5));
  settings.instance = config.instance;
  settings.database = db.dialect() == store::Dialect::sqlite ? "SQLite" : "PostgreSQL";
  alerts::DirectSettings direct;
  direct.telegram = alerts::sender_settings(config).telegram;
  direct.retry.backoff = config.alert_backoff;
  auto watch = std::make_unique<health::DatabaseWatch>(db, writer, policy, direct,
                                                       outage_claims(config, settings), settings);
  watch->start();
  return watch;
}

// Health events of the queue: the circuit opening is CRITICAL (alerted,
// and folded with the per-request fallbacks of the same condition); a probe
// closing it resolves the condition (INFO and a RESOLVED notice).
queue::QueueEvents queue_events(store::WriteBatcher &writer, const config::Config &config,
                                const alerts::AlertPolicy &policy) {
  const health::Alerting alerting{&policy, queue::k_unavailable_condition};
  queue::QueueEvents events;
  events.unavailable = [&writer, &config, alerting](const std::string &detail) {
    writer.submit(
        [&config, alerting, detail](soci::session &sql) {
          health::record(sql, health::EventType::critical, queue::k_unavailable_message,
                         {{"reason", detail}}, config.instance, alerting);
        },
        [](const Result<void> &) {});
  };
  events.recovered = [&writer, &config, alerting](const std::string &detail) {
    writer.submit(
        [&config, alerting, detail](soci::session &sql) {
          const std::string message = "job queue recovered: " + detail;
          if (!health::record_resolved(sql, message, {{"detail", detail}}, config.instance,
                                       alerting)) {
            health::record(sql, health::EventType::info, message, {{"detail", detail}},
                           config.instance);
          }
        },
        [](const Result<void> &) {});
  };
  return events;
}

// The embedded queue, or Redis when REDIS_URL / REDIS_HOST is set.
std::unique_ptr<queue::JobQueue> make_queue(const store::Database &db, store::WriteBatcher &writer,
                                            const config::Config &config,
                                            const alerts::AlertPolicy &policy) {
  if (!config.redis) {
    // PostgreSQL: new jobs wake the idle workers of every process through
    // NOTIFY (their PgListener); QUEUE_POLL_MS stays as the safety net.
    std::function<void()> announce;
    if (db.dialect() == store::Dialect::postgresql) {
      announce = store::CoalescedNotify(writer, store::k_jobs_channel);
    }
    return std::make_unique<queue::EmbeddedQueue>(writer, config.queue_poll_interval,
                                                  std::move(announce));
  }
  auto redis = std::make_unique<queue::RedisQueue>(queue::redis_queue_settings(config), writer, db,
                                                   queue_events(writer, config, policy));
  redis->start();
  spdlog::info("job queue: Redis at {}:{} (prefix \"{}\")", config.redis->host, config.redis->port,
               config.redis_prefix);
  return redis;
}

// PostgreSQL without Redis: a listener for the mode channel (`on_mode`,
// also called after a reconnection, which may have missed changes) and the
// jobs channel (wakes the embedded queue's idle workers). Null otherwise.
std::unique_ptr<store::PgListener> start_pg_listener(const store::Database &db,
                                                     const config::Config &config,
                                                     queue::JobQueue &queue,
                                                     const std::function<void()> &on_mode) {
  if (config.redis || db.dialect() != store::Dialect::postgresql) return nullptr;
  auto *embedded = dynamic_cast<queue::EmbeddedQueue *>(&queue);
  auto on_notify = [embedded, on_mode](const std::string &channel) {
    if (channel == store::k_jobs_channel && embedded != nullptr) embedded->wake();
    if (channel == store::k_mode_channel && on_mode) on_mode();
  };
  auto on_reconnect = [embedded, on_mode] {
    if (embedded != nullptr) embedded->wake();
    if (on_mode) on_mode();
  };
  auto listener = std::make_unique<store::PgListener>(
      db, std::vector<std::string>{store::k_mode_channel, store::k_jobs_channel}, on_notify,
      on_reconnect);
  listener->start();
  spdlog::info("PostgreSQL LISTEN/NOTIFY: mode changes and new jobs from other processes");
  return listener;
}

// GET /metrics of `usher worker` on METRICS_LISTEN: what the worker process
// records (its jobs, its writer, its alert sender) and the process itself.
// In-memory state only, as the API's /metrics.
class WorkerMetrics {
public:
  WorkerMetrics(const config::Config &config, metrics::Registry &registry,
                const queue::JobQueue &queue)
      : m_registry(registry), m_queue(queue), m_process(registry), m_circuit(registry),
        m_server(config, [this] { return render(); }) {}

  std::uint16_t start() { return m_server.start(); }
  void stop() { m_server.stop(); }

private:
  // On the metrics server's one I/O thread.
  std::string render() {
    m_process.refresh();
    m_circuit.refresh(m_queue);
    return m_registry.render();
  }

  metrics::Registry &m_registry;
  const queue::JobQueue &m_queue;
  metrics::ProcessMetrics m_process;
  queue::CircuitGauge m_circuit;
  http::MetricsServer m_server;
};

} // namespace

int run_worker(const config::Config &config) {
  const sigset_t signals = block_stop_signals();
  // Recorded into only when METRICS_LISTEN is set (docs/metrics.md).
  metrics::Registry registry;
  register_build_info(registry);
  metrics::Registry *recorded = config.metrics_listen_host ? &registry : nullptr;
  store::Database db(config.database_url, config.db_busy_timeout, config.sqlite_synchronous_full,
                     config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  migrate_at_start(db);
  const alerts::AlertPolicy alert_policy = alerts::policy_from(config);
  warn_when_alerts_are_off(db, config, alert_policy);
  store::WriteBatcher writer(db, config.write_queue_limit, store::k_max_batch, recorded);
  auto queue = make_queue(db, writer, config, alert_policy);
  const webhooks::OutboundTargets outbound{config.webhook_urls};
  worker::Worker worker(*queue, writer, worker_settings(config, alert_policy, outbound, recorded));
  auto listener = start_pg_listener(db, config, *queue, {});
  std::unique_ptr<WorkerMetrics> metrics_server;
  std::uint16_t metrics_port = 0;
  if (recorded != nullptr) {
    metrics_server = std::make_unique<WorkerMetrics>(config, registry, *queue);
    metrics_port = metrics_server->start();
  }
  worker.start();
  auto alert_sender = start_alert_sender(db, writer, config, alert_policy, recorded);
  auto outbound_sender = start_outbound_sender(db, writer, config);
  auto database_watch = start_database_watch(db, writer, config, alert_policy);
  std::printf("usher worker running (%u threads)\n", config.worker_concurrency);
  if (metrics_server) {
    const std::string metrics_url =
        fmt::format("http://{}:{}/metrics", *config.metrics_listen_host, metrics_port);
    std::printf("usher metrics on %s\n", metrics_url.c_str());
    spdlog::info("metrics on {}", metrics_url);
  }
  std::fflush(stdout);
  spdlog::info("usher {} worker running with {} threads", USHER_VERSION, config.worker_concurrency);
  notify_systemd("READY=1");
  wait_for_stop_signal(signals);
  notify_systemd("STOPPING=1");
  if (metrics_server) metrics_server->stop();
  if (listener) listener->stop();
  worker.stop();
  queue->stop();
  if (alert_sender) alert_sender->stop();
  if (outbound_sender) outbound_sender->stop();
  if (database_watch) database_watch->stop();
  writer.stop();
  spdlog::info("usher worker stopped after {} jobs", worker.succeeded());
  return 0;
}

namespace {

// CSV output: a field with a comma, quote or line break is quoted.
std::string csv_field(const std::string &value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string quoted = "\"";
  for (const char c : value) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  return quoted + "\"";
}

// The activation tokens file: created for the owner only, never over an
// existing file (it holds secrets).
int create_secret_file(const std::string &path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + path +
                             " (it must not exist): " + std::generic_category().message(errno));
  }
  return fd;
}

void write_all(int fd, const std::string &text, const std::string &path) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error("cannot write " + path + ": " +
                               std::generic_category().message(errno));
    done += static_cast<std::size_t>(n);
  }
}

} // namespace

int run_import(const config::Config &config, const ImportRequest &request) {
  std::ifstream in(request.file, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open " + request.file + ": " +
                             std::generic_category().message(errno));
  std::error_code size_error;
  const auto file_size = std::filesystem::file_size(request.file, size_error);
  importer::CsvReader reader(in);
  const auto header = reader.next();
  if (!header) {
    throw std::runtime_error(request.file +
                             " is empty: its first line names the columns (email,full_name,...)");
  }
  auto columns = importer::parse_header(*header);
  if (!columns) throw std::runtime_error(request.file + ": " + columns.error().detail);
  int tokens_fd = -1;
  if (request.tokens_path && !request.dry_run) tokens_fd = create_secret_file(*request.tokens_path);

  importer::Options options;
  options.product = request.product;
  // One request id for the whole import: every job it makes names it.
  options.caller = provisioning::Creator{
      0, "import (" + std::filesystem::path(request.file).filename().string() + ")",
      "import-" + request_id::generate()};
  options.keep_tokens = tokens_fd >= 0;
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  if (terminal) {
    options.progress = [&](const importer::Summary &s) {
      const auto at = in.good() ? static_cast<double>(in.tellg()) : static_cast<double>(file_size);
      const int percent =
          file_size > 0 ? static_cast<int>(100.0 * at / static_cast<double>(file_size)) : 100;
      const int bar = std::clamp(percent, 0, 100) / 5;
      std::fprintf(stderr, "\r[%-20s] %3d%%  %zu rows: %zu new, %zu existed, %zu rejected",
                   std::string(static_cast<std::size_t>(bar), '#').c_str(),
                   std::clamp(percent, 0, 100), s.rows, s.created + s.queued, s.existed,
                   s.rejected);
      std::fflush(stderr);
    };
  }

  store::Database db(config.database_url, config.db_busy_timeout, config.sqlite_synchronous_full,
                     config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  migrate_at_start(db);
  importer::Summary summary;
  if (request.dry_run) {
    auto sql = db.connect();
    summary = importer::run(
        reader, *columns, nullptr,
        [&sql](const std::string &email) { return provisioning::email_taken(*sql, email); },
        options);
  } else {
    const alerts::AlertPolicy alert_policy = alerts::policy_from(config);
    store::WriteBatcher writer(db, config.write_queue_limit);
    auto queue = make_queue(db, writer, config, alert_policy);
    system::ModeCache mode(
        [&db] { return load_mode_from(db); }, config.config_cache_ttl,
        [](const Error &error) { spdlog::warn("system mode refresh failed: {}", error.detail); });
    if (auto primed = mode.prime(); !primed) {
      throw std::runtime_error("cannot read the system mode: " + primed.error().detail);
    }
    idempotency::InFlight in_flight;
    // Imported buyers are provisioned users like any other: their events
    // are written (and sent by the next serve or worker).
    const webhooks::OutboundTargets outbound{config.webhook_urls};
    intake::Service intake(writer, mode, *queue, in_flight,
                           intake_settings(config, alert_policy, outbound, nullptr));
    try {
      summary = importer::run(reader, *columns, &intake, {}, options);
    } catch (...) {
      queue->stop();
      writer.stop();
      if (tokens_fd >= 0) ::close(tokens_fd);
      throw;
    }
    queue->stop();
    writer.stop();
  }
  if (terminal) std::fputc('\n', stderr);

  std::sort(summary.rejects.begin(), summary.rejects.end(),
            [](const auto &a, const auto &b) { return a.line < b.line; });
  if (tokens_fd >= 0) {
    std::string text = "email,activation_token\n";
    for (const auto &issued : summary.tokens) {
      text += csv_field(issued.email) + "," + issued.token + "\n";
    }
    write_all(tokens_fd, text, *request.tokens_path);
    ::fsync(tokens_fd);
    ::close(tokens_fd);
  }
  if (!summary.rejects.empty()) {
    std::ofstream rejects(request.rejects_path, std::ios::binary | std::ios::trunc);
    rejects << "line,email,code,reason\n";
    for (const auto &reject : summary.rejects) {
      rejects << reject.line << ',' << csv_field(reject.email) << ',' << reject.code << ','
              << csv_field(reject.reason) << '\n';
    }
    if (!rejects) throw std::runtime_error("cannot write " + request.rejects_path);
  }
  if (request.dry_run) {
    std::printf("dry run of %s: %zu %s: %zu would be new, %zu existed, %zu rejected; nothing was "
                "written\n",
                request.file.c_str(), summary.rows, summary.rows == 1 ? "row" : "rows",
                summary.created, summary.existed, summary.rejected);
  } else {
    std::printf("imported %s: %zu %s: %zu new (%zu queued for the workers, %zu created at "
                "once), %zu existed, %zu rejected\n",
                request.file.c_str(), summary.rows, summary.rows == 1 ? "row" : "rows",
                summary.created + summary.queued, summary.queued, summary.created, summary.existed,
                summary.rejected);
  }
  if (!summary.rejects.empty()) {
    std::printf("rejected rows, with the reason: %s\n", request.rejects_path.c_str());
  }
  if (tokens_fd >= 0) {
    std::printf("activation tokens of the %zu new accounts: %s (keep it private)\n",
                summary.tokens.size(), request.tokens_path->c_str());
  }
  if (summary.queued > 0) {
    std::printf("queued accounts are created by a running usher serve or usher worker\n");
  }
  std::fflush(stdout);
  return summary.rejected > 0 ? 1 : 0;
}

int serve(const config::Config &config) {
  const sigset_t signals = block_stop_signals();
  // Every part that records metrics gets this one registry; it outlives them
  // all (GET /metrics, docs/metrics.md).
  metrics::Registry registry;
  register_build_info(registry);

  store::Database db(config.database_url, config.db_busy_timeout, config.sqlite_synchronous_full,
                     config.sqlite_wal_limit_mib * 1024 * 1024, config.db_statement_timeout);
  migrate_at_start(db);
  const alerts::AlertPolicy alert_policy = alerts::policy_from(config);
  warn_when_alerts_are_off(db, config, alert_policy);
  auth::TokenRegistry tokens;
  {
    auto sql = db.connect();
    tokens.reload(*sql);
  }

  store::WriteBatcher writer(db, config.write_queue_limit, store::k_max_batch, &registry);
  auto queue = make_queue(db, writer, config, alert_policy);
  const webhooks::OutboundTargets outbound{config.webhook_urls};
  worker::Worker worker(*queue, writer, worker_settings(config, alert_policy, outbound, &registry));
  store::BlockingPool pool(db, config.blocking_threads, k_pool_queue_limit);
  system::ModeCache mode(
      [&db] { return load_mode_from(db); }, config.config_cache_ttl,
      [&writer, &config](const Error &error) {
        spdlog::warn("system mode refresh failed, keeping the last known mode: {}", error.detail);
        writer.submit(
            [&config, detail = error.detail](soci::session &sql) {
              health::record(sql, health::EventType::warning,
                             "system mode refresh failed; using the last known mode",
                             {{"error", detail}}, config.instance);
            },
            [](const Result<void> &) {});
      });
  if (auto primed = mode.prime(); !primed) {
    throw std::runtime_error("cannot read the system mode: " + primed.error().detail);
  }
  // With Redis, mode changes travel on pub/sub: each message (and each
  // resubscription, which may have missed some) reloads the mode now.
  std::unique_ptr<redis::Channel> mode_channel;
  if (config.redis) {
    mode_channel = std::make_unique<redis::Channel>(
        *config.redis, redis::Timeouts{config.redis_connect_timeout, config.redis_command_timeout},
        redis::mode_channel(config.redis_prefix));
    auto reload = [&mode] {
      mode.invalidate();
      mode.get();
    };
    mode_channel->start([reload](const std::string &) { reload(); }, reload);
  }
  // Without Redis on PostgreSQL, the same through LISTEN/NOTIFY (API and CLI
  // changes NOTIFY on commit).
  auto listener = start_pg_listener(db, config, *queue, [&mode] {
    mode.invalidate();
    mode.get();
  });
  // The domain services, one of each: the API's handlers call them.
  idempotency::InFlight in_flight;
  intake::Service intake(writer, mode, *queue, in_flight,
                         intake_settings(config, alert_policy, outbound, &registry));
  provisioning::UserDirectory users(pool);
  auth::HashingPool hashing(config.hash_threads, config.hash_queue_limit);
  auth::Accounts accounts(pool, writer, hashing,
                          {config.activation_ttl, config.session_ttl, config.password_cost});
  auth::TokenAdmin token_admin(tokens, pool, writer, config.instance);
  jobs::JobService job_service(pool, writer, config.instance,
                               [&queue](std::int64_t id) { queue->dispatch(id, {}); });
  system::ModeSwitchSettings switch_settings{config.instance, &alert_policy, {}};
  if (mode_channel) {
    // With Redis: the other instances follow a change at once.
    switch_settings.announce = [&mode_channel](const system::ModeState &state) {
      mode_channel->publish(redis::mode_message(state.version, system::to_string(state.mode)));
    };
  }
  system::ModeSwitch mode_switch(pool, writer, mode, std::move(switch_settings));
  health::LogReader health_log(pool);
  http::ApiDeps deps{.config = config,
                     .services = {.intake = intake,
                                  .users = users,
                                  .accounts = accounts,
                                  .tokens = token_admin,
                                  .jobs = job_service,
                                  .mode = mode_switch,
                                  .health_log = health_log},
                     .pool = pool,
                     .writer = writer,
                     .tokens = tokens,
                     .mode = mode,
                     .queue = *queue,
                     .metrics = &registry};
  auth::AttemptLimiter account_attempts({config.auth_account_attempts, config.auth_account_window},
                                        config.auth_limiter_keys);
  auth::AttemptLimiter address_attempts({config.auth_address_attempts, config.auth_address_window},
                                        config.auth_limiter_keys);
  http::Api api(deps, http::PasswordDeps{account_attempts, address_attempts});
  http::HttpServer server(api, config);
  const std::uint16_t port = server.start();
  // GET /metrics on a listener of its own when METRICS_LISTEN is set.
  std::unique_ptr<http::HttpServer> metrics_server;
  std::uint16_t metrics_port = 0;
  if (config.metrics_listen_host) {
    metrics_server = std::make_unique<http::HttpServer>(api, config, http::Listener::metrics);
    metrics_port = metrics_server->start();
  }
  Maintenance maintenance(db, config, tokens, writer, clock::system_clock(), registry);
  if (config.start_worker) worker.start();
  auto alert_sender = start_alert_sender(db, writer, config, alert_policy, &registry);
  auto outbound_sender = start_outbound_sender(db, writer, config);
  auto database_watch = start_database_watch(db, writer, config, alert_policy);

  const std::string url = fmt::format("http://{}:{}", config.listen_host, port);
  std::printf("usher listening on %s\n", url.c_str());
  if (metrics_server) {
    const std::string metrics_url =
        fmt::format("http://{}:{}/metrics", *config.metrics_listen_host, metrics_port);
    std::printf("usher metrics on %s\n", metrics_url.c_str());
    spdlog::info("metrics on {}", metrics_url);
  }
  std::fflush(stdout);
  spdlog::info("usher {} listening on {} (database {})", USHER_VERSION, url,
               db.dialect() == store::Dialect::sqlite ? "sqlite" : "postgresql");
  notify_systemd("READY=1"); // migrated and listening (docs/operations.md)

  wait_for_stop_signal(signals);
  notify_systemd("STOPPING=1");

  // Refuse new connections' requests and kept-alive connections' next ones
  // (503, Connection: close); let accepted ones finish within the grace
  // period, those still being read included (SPEC §1).
  server.begin_drain();
  if (metrics_server) metrics_server->stop(); // scrapes are not drained
  const auto drain_began = std::chrono::steady_clock::now();
  const auto deadline = drain_began + k_grace_period;
  // A connection that was open but had sent no complete request may be idle
  // rather than slow: it holds the shutdown this long at most.
  const auto reading_deadline = drain_began + std::min<std::chrono::steady_clock::duration>(
                                                  k_reading_grace, config.http_read_timeout);
  const auto still_reading = [&] {
    return server.reading() > 0 && std::chrono::steady_clock::now() < reading_deadline;
  };
  while ((api.in_flight() > 0 || still_reading()) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (api.in_flight() > 0 || server.reading() > 0) {
    spdlog::warn("{} requests in flight and {} connections being read at exit", api.in_flight(),
                 server.reading());
  }
  server.stop();
  worker.stop();
  queue->stop();
  if (mode_channel) mode_channel->stop();
  if (listener) listener->stop();
  if (alert_sender) alert_sender->stop();
  if (outbound_sender) outbound_sender->stop();
  if (database_watch) database_watch->stop();
  maintenance.stop();
  hashing.stop();
  pool.stop();
  writer.stop();
  spdlog::info("usher stopped");
  return 0;
}

} // namespace usher::app
