// The database outage watch (see database_watch.hpp).
#include <usher/health/database_watch.hpp>

#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/alerts/message.hpp>
#include <usher/health/health_log.hpp>
#include <usher/util/log_fields.hpp>

namespace usher::health {
namespace {

// The condition named in messages and events.
constexpr const char *k_condition = "database_unreachable";
// Ended outages whose events wait for the writer, at most; each is tried
// this many times (once per successful probe) before it is dropped.
constexpr std::size_t k_pending_limit = 16;
constexpr int k_record_attempts = 10;
// How long one write of the events may wait for the writer.
constexpr auto k_write_timeout = std::chrono::seconds(10);
template <typename Duration>
long long seconds(Duration d) {
  return std::llround(std::chrono::duration<double>(d).count());
}

// "12 s", or "400 ms" under a second (a threshold set below one).
template <typename Duration>
std::string span(Duration d) {
  if (d < std::chrono::seconds(1)) {
    return fmt::format("{} ms", std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }
  return fmt::format("{} s", seconds(d));
}

} // namespace

OutageTracker::OutageTracker(std::chrono::milliseconds threshold, const clock::Clock &clock)
    : m_threshold(threshold), m_clock(clock) {}

OutageTracker::Step OutageTracker::failed(std::chrono::steady_clock::time_point started,
                                          const std::string &error) {
  if (!m_current) {
    Outage outage;
    outage.began = started;
    // The wall time of the probe's start: now less the time the probe took.
    outage.began_at = m_clock.wall() - std::chrono::duration_cast<clock::WallTime::duration>(
                                           m_clock.now() - started);
    m_current = outage;
  }
  Outage &outage = *m_current;
  outage.error = error;
  ++outage.failed_probes;
  if (!outage.reached && m_clock.now() - outage.began >= m_threshold) {
    outage.reached = true;
    outage.reached_at = m_clock.wall();
  }
  Step step;
  step.outage = outage;
  if (outage.reached && !outage.alerted) step.kind = Step::Kind::alert_due;
  return step;
}

OutageTracker::Step OutageTracker::succeeded() {
  Step step;
  if (!m_current) return step;
  Outage outage = std::move(*m_current);
  m_current.reset();
  if (!outage.reached) return step; // a blip under the threshold
  outage.ended_at = m_clock.wall();
  step.kind = Step::Kind::resolved;
  step.outage = std::move(outage);
  return step;
}

void OutageTracker::mark_alerted() {
  if (m_current) m_current->alerted = true;
}

DatabaseWatch::DatabaseWatch(const store::Database &db, store::WriteBatcher &writer,
                             const alerts::AlertPolicy &policy, alerts::DirectSettings direct,
                             OutageClaims claims, DatabaseWatchSettings settings)
    : m_db(db), m_writer(writer), m_policy(policy),
      m_direct(policy.chat_ids, std::move(direct), *policy.clock), m_claims(std::move(claims)),
      m_settings(std::move(settings)), m_tracker(m_settings.threshold, *policy.clock) {}

DatabaseWatch::~DatabaseWatch() { stop(); }

void DatabaseWatch::start() {
  if (m_thread.joinable()) return;
  m_thread = std::thread([this] { run(); });
}

void DatabaseWatch::stop() {
  m_stopping.store(true);
  { std::lock_guard lock(m_mutex); }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

bool DatabaseWatch::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(m_mutex);
  return !m_wake.wait_for(lock, duration, [this] { return m_stopping.load(); });
}

bool DatabaseWatch::alerts_kind(alerts::AlertKind kind) const {
  return m_policy.enabled() && m_policy.alerts(kind);
}

bool DatabaseWatch::probe(std::string &error) {
  try {
    if (!m_sql) m_sql = m_db.connect();
    auto stall = m_db.guard(*m_sql, m_settings.probe_limit);
    store::ping(*m_sql);
    return true;
  } catch (const std::exception &e) {
    error = e.what();
    m_sql.reset();
    return false;
  }
}

void DatabaseWatch::run() {
  spdlog::info("database watch: a probe every {} ms; {} ms of failures send a CRITICAL alert "
               "directly",
               m_settings.interval.count(), m_settings.threshold.count());
  while (!m_stopping.load()) {
    const auto started = m_policy.clock->now();
    std::string error;
    if (probe(error)) {
      const auto step = m_tracker.succeeded();
      if (step.kind == OutageTracker::Step::Kind::resolved) on_resolved(step.outage);
      write_pending();
    } else {
      const auto step = m_tracker.failed(started, error);
      if (step.outage.failed_probes == 1) {
        spdlog::warn("database watch: the database did not answer a probe: {}", error);
      }
      if (step.kind == OutageTracker::Step::Kind::alert_due) {
        on_due(step.outage);
      } else if (step.outage.alerted && m_claims.keep) {
        m_claims.keep();
      }
    }
    pause(m_settings.interval);
  }
}

void DatabaseWatch::on_due(const Outage &outage) {
  if (!alerts_kind(alerts::AlertKind::critical)) {
    m_tracker.mark_alerted();
    m_alert = "not sent: alerts are off or CRITICAL is not in ALERT_KINDS";
    log::with_fields(spdlog::level::err,
                     fmt::format("database watch: the database has not answered for {}",
                                 span(m_policy.clock->now() - outage.began)),
                     {{"condition", k_condition}, {"error", outage.error}});
    return;
  }
  if (m_claims.take && !m_claims.take()) {
    const std::string holder = m_claims.holder ? m_claims.holder() : std::string();
    if (holder != m_left_to) {
      m_left_to = holder;
      spdlog::warn("database watch: the database has not answered for {}; another instance "
                   "({}) sends the alert",
                   span(m_policy.clock->now() - outage.began), holder.empty() ? "unknown" : holder);
    }
    m_alert = "sent by another instance" + (holder.empty() ? "" : " (" + holder + ")");
    return;
  }
  m_tracker.mark_alerted();
  m_left_to.clear();
  const auto now = m_policy.clock->wall();
  const std::string down_for = span(m_policy.clock->now() - outage.began);
  alerts::EventAlert alert;
  alert.kind = alerts::AlertKind::critical;
  alert.message =
      fmt::format("The {} database has not answered for {}: requests that need it get 503. Sent "
                  "directly: the health log and the alert outbox are in that database.",
                  m_settings.database, down_for);
  alert.time = clock::iso8601(now);
  alert.instance = m_settings.instance;
  alert.details = {{"condition", k_condition},
                   {"failing_since", clock::iso8601(outage.began_at)},
                   {"failed_probes", outage.failed_probes},
                   {"error", outage.error}};
  const int delivered = m_direct.send(alerts::format_event(alert), m_stopping,
                                      [this](std::chrono::milliseconds d) { return pause(d); });
  m_alert = fmt::format("sent directly to {} of {} chat(s)", delivered, m_policy.chat_ids.size());
  log::with_fields(spdlog::level::err,
                   fmt::format("database watch: the database has not answered for {}; CRITICAL "
                               "alert {}",
                               down_for, m_alert),
                   {{"condition", k_condition}, {"error", outage.error}});
}

void DatabaseWatch::on_resolved(const Outage &outage) {
  const std::string down_for = span(outage.ended_at - outage.began_at);
  std::string resolved = "none";
  if (outage.alerted && alerts_kind(alerts::AlertKind::critical)) {
    if (m_claims.release) m_claims.release();
    if (alerts_kind(alerts::AlertKind::resolved)) {
      alerts::ResolvedNotice notice;
      notice.message =
          fmt::format("The {} database answers again after {}.", m_settings.database, down_for);
      notice.time = clock::iso8601(outage.ended_at);
      notice.instance = m_settings.instance;
      notice.critical_since = clock::iso8601(outage.began_at);
      notice.critical_message = fmt::format("the {} database did not answer", m_settings.database);
      notice.details = {{"condition", k_condition},
                        {"outage_started_at", clock::iso8601(outage.began_at)},
                        {"outage_ended_at", clock::iso8601(outage.ended_at)},
                        {"failed_probes", outage.failed_probes},
                        {"last_error", outage.error}};
      const int delivered = m_direct.send(alerts::format_resolved(notice), m_stopping,
                                          [this](std::chrono::milliseconds d) { return pause(d); });
      resolved =
          fmt::format("sent directly to {} of {} chat(s)", delivered, m_policy.chat_ids.size());
    }
  }
  spdlog::info("database watch: the database answers again after {} of outage; RESOLVED {}",
               down_for, resolved);
  if (m_pending.size() >= k_pending_limit) {
    spdlog::warn("database watch: the events of an outage that began at {} were not written",
                 clock::iso8601(m_pending.front().outage.began_at));
    m_pending.pop_front();
  }
  m_pending.push_back({outage, m_alert, 0});
  m_alert.clear();
  m_left_to.clear();
}

void DatabaseWatch::write_pending() {
  while (!m_pending.empty() && !m_stopping.load()) {
    PendingRecord &pending = m_pending.front();
    const Outage outage = pending.outage;
    const std::string down_for = span(outage.ended_at - outage.began_at);
    const nlohmann::json metadata = {{"condition", k_condition},
                                     {"outage_started_at", clock::iso8601(outage.began_at)},
                                     {"outage_ended_at", clock::iso8601(outage.ended_at)},
                                     {"down_for_s", seconds(outage.ended_at - outage.began_at)},
                                     {"failed_probes", outage.failed_probes},
                                     {"last_error", outage.error},
                                     {"alert", pending.alert}};
    const std::string critical = fmt::format(
        "the {} database did not answer from {} to {} ({}); alert {}", m_settings.database,
        clock::iso8601(outage.began_at), clock::iso8601(outage.ended_at), down_for, pending.alert);
    const std::string info =
        fmt::format("the {} database answers again after {} of outage (since {})",
                    m_settings.database, down_for, clock::iso8601(outage.began_at));
    const std::string instance = m_settings.instance;
    // Logged only (no alerting policy): the messages were sent directly.
    const bool written = m_writer.submit_and_wait(
        [metadata, critical, info, instance](store::WriteContext &context) {
          health::record(context.sql(), EventType::critical, critical, metadata, instance);
          health::record(context.sql(), EventType::info, info, metadata, instance);
        },
        k_write_timeout);
    if (written) {
      m_pending.pop_front();
      m_recorded.fetch_add(1);
      continue;
    }
    if (++pending.attempts >= k_record_attempts) {
      spdlog::warn("database watch: gave up writing the events of the outage from {} to {}",
                   clock::iso8601(outage.began_at), clock::iso8601(outage.ended_at));
      m_pending.pop_front();
    }
    return; // the next successful probe tries again
  }
}

} // namespace usher::health
