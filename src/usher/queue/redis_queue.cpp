#include <usher/queue/redis_queue.hpp>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/util/clock.hpp>

namespace usher::queue {
namespace {

constexpr std::size_t k_dispatch_batch = 1000;
constexpr int k_sweep_page = 5000;
constexpr int k_promote_limit = 1000;
constexpr std::size_t k_pool_limit = 64;
constexpr auto k_promote_interval = std::chrono::milliseconds(100);
constexpr auto k_monitor_tick = std::chrono::milliseconds(50);
constexpr auto k_recovery_settle = std::chrono::seconds(1);
constexpr auto k_write_timeout = std::chrono::seconds(30);
// A consumer (one per worker thread of every process that ran) with nothing
// pending and idle this long is forgotten, so restarts do not pile them up.
constexpr auto k_consumer_idle_limit = std::chrono::hours(1);

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t ns(std::chrono::nanoseconds d) { return d.count(); }

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Error circuit_open() {
  return Error{ErrorKind::unavailable, "queue_unavailable",
               "the Redis circuit is open: Redis failed recently", ""};
}

} // namespace

RedisQueueSettings redis_queue_settings(const config::Config &config) {
  RedisQueueSettings settings;
  if (config.redis) settings.endpoint = *config.redis;
  settings.timeouts = redis::Timeouts{config.redis_connect_timeout, config.redis_command_timeout};
  settings.prefix = config.redis_prefix;
  settings.breaker_failures = config.redis_breaker_failures;
  settings.breaker_open = config.redis_breaker_open;
  settings.sweep_interval = config.redis_sweep_interval;
  settings.sweep_grace = config.redis_sweep_grace;
  settings.lease = config.job_lease;
  settings.poll_interval = config.queue_poll_interval;
  settings.dispatch_queue_limit = config.write_queue_limit;
  return settings;
}

RedisQueue::RedisQueue(RedisQueueSettings settings, store::WriteBatcher &writer,
                       const store::Database &db, QueueEvents events)
    : m_settings(std::move(settings)), m_writer(writer), m_db(db), m_events(std::move(events)),
      m_stream(redis::StreamKeys::with_prefix(m_settings.prefix)),
      m_breaker(m_settings.breaker_failures, m_settings.breaker_open),
      m_database_claims(writer, m_settings.poll_interval) {}

RedisQueue::~RedisQueue() { stop(); }

void RedisQueue::start() {
  m_dispatcher = std::thread([this] { run_dispatcher(); });
  m_monitor = std::thread([this] { run_monitor(); });
}

void RedisQueue::stop() {
  m_stopping.store(true);
  interrupt();
  { std::lock_guard lock(m_dispatch_mutex); }
  m_dispatch_wake.notify_all();
  { std::lock_guard lock(m_monitor_mutex); }
  m_monitor_wake.notify_all();
  if (m_dispatcher.joinable()) m_dispatcher.join();
  if (m_monitor.joinable()) m_monitor.join();
}

void RedisQueue::interrupt() {
  m_interrupted.store(true);
  m_database_claims.interrupt();
}

QueueHealth RedisQueue::health() const {
  const auto state = m_breaker.state();
  return QueueHealth{"redis", state == CircuitBreaker::State::closed && m_last_call_ok.load(),
                     std::string(to_string(state))};
}

RedisQueue::Borrowed RedisQueue::borrow() {
  const std::uint64_t epoch = m_epoch.load();
  {
    std::lock_guard lock(m_pool_mutex);
    while (!m_pool.empty()) {
      auto [connection, made_in] = std::move(m_pool.back());
      m_pool.pop_back();
      if (made_in == epoch) return Borrowed{std::move(connection), epoch};
    }
  }
  return Borrowed{std::make_unique<redis::Connection>(m_settings.endpoint, m_settings.timeouts),
                  epoch};
}

void RedisQueue::give_back(Borrowed borrowed) {
  // A failed connection is closed: the next borrower makes a new one.
  if (!borrowed.connection->connected() || borrowed.epoch != m_epoch.load()) return;
  std::lock_guard lock(m_pool_mutex);
  if (m_pool.size() < k_pool_limit)
    m_pool.emplace_back(std::move(borrowed.connection), borrowed.epoch);
}

void RedisQueue::failed(const Error &error) {
  m_last_call_ok.store(false);
  if (m_breaker.record_failure(std::chrono::steady_clock::now())) {
    m_epoch.fetch_add(1);
    spdlog::error("Redis queue unavailable, circuit open; requests are provisioned inline: {}",
                  error.detail);
    if (m_events.unavailable) m_events.unavailable(error.detail);
  } else {
    spdlog::warn("Redis call failed: {}", error.detail);
  }
}

void RedisQueue::dispatch(std::int64_t job_id, Dispatched done) {
  if (!m_breaker.closed()) {
    if (done) done(tl::unexpected(circuit_open()));
    return;
  }
  {
    std::lock_guard lock(m_dispatch_mutex);
    if (m_dispatches.size() < m_settings.dispatch_queue_limit && !m_stopping.load()) {
      m_dispatches.push_back(PendingDispatch{job_id, std::move(done)});
      m_dispatch_wake.notify_one();
      return;
    }
  }
  if (done) {
    done(fail(ErrorKind::unavailable, "queue_unavailable", "too many jobs are waiting for Redis"));
  }
}

void RedisQueue::run_dispatcher() {
  redis::Connection connection(m_settings.endpoint, m_settings.timeouts);
  std::uint64_t epoch = m_epoch.load();
  for (;;) {
    std::vector<PendingDispatch> batch;
    {
      std::unique_lock lock(m_dispatch_mutex);
      m_dispatch_wake.wait(lock, [this] { return m_stopping.load() || !m_dispatches.empty(); });
      if (m_dispatches.empty()) return; // stopping, and everything was sent
      while (!m_dispatches.empty() && batch.size() < k_dispatch_batch) {
        batch.push_back(std::move(m_dispatches.front()));
        m_dispatches.pop_front();
      }
    }
    Result<void> outcome{};
    if (epoch != m_epoch.load()) {
      connection.close();
      epoch = m_epoch.load();
    }
    if (!m_breaker.closed()) {
      outcome = tl::unexpected(circuit_open());
    } else {
      std::vector<redis::Dispatch> jobs;
      jobs.reserve(batch.size());
      for (const auto &pending : batch) jobs.push_back({pending.job_id, 0});
      auto sent = m_stream.dispatch(connection, jobs);
      if (sent) {
        m_breaker.record_success();
        m_last_call_ok.store(true);
      } else {
        failed(sent.error());
        outcome = tl::unexpected(sent.error());
      }
    }
    for (auto &pending : batch) {
      if (pending.done) pending.done(outcome);
    }
  }
}

std::vector<jobs::ClaimedJob> RedisQueue::claim(const std::string &owner, int max,
                                                std::chrono::milliseconds lease,
                                                std::chrono::milliseconds wait) {
  if (m_interrupted.load()) return {};
  // Redis is down: the database is the queue until a probe closes the circuit.
  if (!m_breaker.closed()) return m_database_claims.claim(owner, max, lease, wait);

  auto borrowed = borrow();
  redis::Connection &connection = *borrowed.connection;
  std::vector<redis::Delivery> deliveries;
  const std::int64_t now = steady_ns();
  Result<void> status{};
  if (now >= m_next_promote_ns.load()) {
    m_next_promote_ns.store(now + ns(k_promote_interval));
    if (auto promoted = m_stream.promote_due(connection, k_promote_limit); !promoted) {
      status = tl::unexpected(promoted.error());
    }
  }
  if (status && now >= m_next_reclaim_ns.load()) {
    m_next_reclaim_ns.store(
        now + ns(std::max<std::chrono::milliseconds>(lease / 2, std::chrono::seconds(1))));
    auto reclaimed = m_stream.reclaim_idle(connection, owner, m_settings.lease, max);
    if (reclaimed) {
      if (!reclaimed->empty()) {
        spdlog::warn("took over {} jobs left unacknowledged for {} ms", reclaimed->size(),
                     m_settings.lease.count());
      }
      deliveries = std::move(*reclaimed);
    } else {
      status = tl::unexpected(reclaimed.error());
    }
  }
  if (status && deliveries.empty()) {
    auto read = m_stream.read(connection, owner, max, wait);
    if (read) {
      deliveries = std::move(*read);
    } else {
      status = tl::unexpected(read.error());
    }
  }
  if (!status) {
    failed(status.error());
    give_back(std::move(borrowed));
    // Not a busy loop while Redis is failing: the next try waits a little.
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, k_promote_interval * 2));
    return {};
  }
  m_breaker.record_success();
  m_last_call_ok.store(true);
  auto claimed = settle(owner, deliveries, lease, connection);
  give_back(std::move(borrowed));
  return claimed;
}

std::vector<jobs::ClaimedJob> RedisQueue::settle(const std::string &owner,
                                                 const std::vector<redis::Delivery> &deliveries,
                                                 std::chrono::milliseconds lease,
                                                 redis::Connection &redis) {
  if (deliveries.empty()) return {};
  std::vector<redis::Delivery> finished; // entries with nothing left to do
  std::vector<std::int64_t> ids;
  std::unordered_map<std::int64_t, std::string> entry_of;
  for (const auto &delivery : deliveries) {
    if (delivery.job_id == 0 || !entry_of.emplace(delivery.job_id, delivery.entry_id).second) {
      // Not a job id, or a second entry for one job in this batch: only the
      // entry goes (job id 0 leaves `known` alone).
      finished.push_back({delivery.entry_id, 0});
      continue;
    }
    ids.push_back(delivery.job_id);
  }
  // The row decides: claimed only while queued and due.
  auto claimed = std::make_shared<std::vector<jobs::ClaimedJob>>();
  auto states = std::make_shared<std::unordered_map<std::int64_t, std::optional<jobs::JobState>>>();
  const std::string lease_until = clock::iso8601(std::chrono::system_clock::now() + lease);
  if (!m_writer.submit_and_wait(
          [claimed, states, ids, owner, lease_until](store::WriteContext &context) {
            *claimed = jobs::claim_ids(context.sql(), ids, owner, lease_until);
            std::unordered_map<std::int64_t, bool> taken;
            for (const auto &job : *claimed) taken[job.id] = true;
            for (const auto id : ids) {
              if (!taken.count(id)) (*states)[id] = jobs::state_of(context.sql(), id);
            }
          },
          k_write_timeout, store::Priority::background)) {
    // The database is failing: the entries stay pending and are taken over
    // after the lease.
    return {};
  }
  {
    const auto forget_after =
        std::chrono::steady_clock::now() + 2 * std::max(lease, m_settings.lease);
    std::lock_guard lock(m_entries_mutex);
    for (const auto &job : *claimed) m_entries[job.id] = {entry_of[job.id], forget_after};
  }
  for (const auto &[id, state] : *states) {
    const redis::Delivery delivery{entry_of[id], id};
    if (!state || state->status == jobs::JobStatus::succeeded ||
        state->status == jobs::JobStatus::dead) {
      finished.push_back(delivery); // done already, or never ours: a duplicate
    } else if (state->status == jobs::JobStatus::queued) {
      // Not due yet (a retry): wait in the delayed set.
      if (auto moved = m_stream.reschedule(redis, delivery, redis::unix_ms(state->run_after));
          !moved) {
        failed(moved.error());
      }
    }
    // running: another worker holds the lease and acknowledges it; if that
    // worker dies the entry is taken over again after the lease.
  }
  if (auto acked = m_stream.acknowledge(redis, finished); !acked) failed(acked.error());
  return std::move(*claimed);
}

std::string RedisQueue::take_entry(std::int64_t job_id) {
  std::lock_guard lock(m_entries_mutex);
  auto it = m_entries.find(job_id);
  if (it == m_entries.end()) return {};
  std::string entry = std::move(it->second.entry_id);
  m_entries.erase(it);
  return entry;
}

std::size_t RedisQueue::tracked_entries() const {
  std::lock_guard lock(m_entries_mutex);
  return m_entries.size();
}

std::size_t RedisQueue::forget_stale_entries(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(m_entries_mutex);
  return std::erase_if(m_entries,
                       [now](const auto &item) { return item.second.forget_after <= now; });
}

void RedisQueue::acknowledge(const std::vector<std::int64_t> &job_ids) {
  if (job_ids.empty()) return;
  std::vector<redis::Delivery> finished;
  finished.reserve(job_ids.size());
  for (const auto id : job_ids) finished.push_back({take_entry(id), id});
  // With the circuit open the entries stay; when Redis is back they are
  // delivered again, found finished in the database and dropped.
  if (!m_breaker.closed()) return;
  auto borrowed = borrow();
  if (auto acked = m_stream.acknowledge(*borrowed.connection, finished); !acked) {
    failed(acked.error());
  }
  give_back(std::move(borrowed));
}

void RedisQueue::retry_at(std::int64_t job_id, std::chrono::system_clock::time_point when) {
  const std::string entry = take_entry(job_id);
  if (!m_breaker.closed()) return; // the database row holds the retry time
  auto borrowed = borrow();
  if (auto moved = m_stream.reschedule(*borrowed.connection, {entry, job_id}, unix_ms(when));
      !moved) {
    failed(moved.error());
  }
  give_back(std::move(borrowed));
}

void RedisQueue::probe() {
  // Its own connection and timeouts: a probe never waits behind a request.
  redis::Connection connection(m_settings.endpoint, m_settings.timeouts);
  auto pong = connection.run({"PING"});
  Result<void> ready{};
  if (!pong) {
    ready = tl::unexpected(pong.error());
  } else if (pong->is_error()) {
    ready = fail(ErrorKind::unavailable, "redis_error", "Redis answered PING with " + pong->text);
  } else {
    ready = m_stream.ensure_group(connection);
  }
  if (!ready) {
    m_breaker.probe_failed(std::chrono::steady_clock::now());
    spdlog::debug("Redis probe failed: {}", ready.error().detail);
    return;
  }
  m_breaker.probe_succeeded();
  m_last_call_ok.store(true);
  spdlog::info("Redis answers again: circuit closed, jobs go through the queue");
  // Requests that chose the inline path while the circuit was open record
  // their CRITICAL occurrence after their commit, moments from now: reported
  // after they settle, they fold into this outage's row and alert instead of
  // opening another one right after its RESOLVED (seen under a partition).
  {
    std::unique_lock lock(m_monitor_mutex);
    m_monitor_wake.wait_for(lock, k_recovery_settle, [this] { return m_stopping.load(); });
  }
  // Failing again meanwhile: the outage goes on, and the next probe reports.
  if (m_stopping.load() || !m_breaker.closed()) return;
  if (m_events.recovered) {
    m_events.recovered(fmt::format("Redis at {}:{} answers again", m_settings.endpoint.host,
                                   m_settings.endpoint.port));
  }
}

void RedisQueue::run_monitor() {
  auto next_sweep = std::chrono::steady_clock::now() + m_settings.sweep_interval;
  std::unique_lock lock(m_monitor_mutex);
  while (!m_stopping.load()) {
    m_monitor_wake.wait_for(lock, k_monitor_tick, [this] { return m_stopping.load(); });
    if (m_stopping.load()) break;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    if (const auto forgotten = forget_stale_entries(now); forgotten > 0) {
      spdlog::debug("forgot {} stream entries of jobs never acknowledged here", forgotten);
    }
    bool sweep_now = now >= next_sweep;
    if (m_breaker.begin_probe(now)) {
      probe();
      // Jobs queued while Redis was away are sent now, not a sweep later.
      sweep_now = sweep_now || m_breaker.closed();
    }
    if (sweep_now && m_breaker.closed()) {
      if (auto swept = sweep_once(); !swept) spdlog::warn("sweeper: {}", swept.error().detail);
      next_sweep = std::chrono::steady_clock::now() + m_settings.sweep_interval;
    }
    lock.lock();
  }
}

Result<long long> RedisQueue::sweep_once() {
  std::vector<jobs::QueuedRef> refs;
  const std::string cutoff =
      clock::iso8601(std::chrono::system_clock::now() - m_settings.sweep_grace);
  const std::int64_t cursor = m_sweep_cursor.load();
  try {
    auto sql = m_db.connect();
    // A PostgreSQL that stops answering fails the query instead of holding
    // the sweeper (and with it the stream's maintenance) for ever.
    auto stall = m_db.guard(*sql, m_db.background_stall_limit());
    refs = jobs::queued_since(*sql, cutoff, cursor, k_sweep_page);
  } catch (const std::exception &e) {
    return fail(ErrorKind::unavailable, "database_unavailable", e.what());
  }
  // Page through a long backlog across passes; start over after the last page.
  m_sweep_cursor.store(refs.size() < static_cast<std::size_t>(k_sweep_page) ? 0 : refs.back().id);
  long long added = 0;
  auto borrowed = borrow();
  for (std::size_t start = 0; start < refs.size(); start += k_dispatch_batch) {
    std::vector<redis::Dispatch> jobs;
    for (std::size_t i = start; i < std::min(refs.size(), start + k_dispatch_batch); ++i) {
      jobs.push_back({refs[i].id, redis::unix_ms(refs[i].run_after)});
    }
    auto sent = m_stream.dispatch(*borrowed.connection, jobs);
    if (!sent) {
      failed(sent.error());
      return tl::unexpected(sent.error());
    }
    added += std::count(sent->begin(), sent->end(), true);
  }
  if (auto forgotten = m_stream.forget_idle_consumers(*borrowed.connection, k_consumer_idle_limit);
      !forgotten) {
    failed(forgotten.error());
    return tl::unexpected(forgotten.error());
  }
  give_back(std::move(borrowed));
  if (added > 0) {
    spdlog::warn("sweeper: sent {} queued jobs again that Redis did not hold", added);
  }
  return added;
}

} // namespace usher::queue
