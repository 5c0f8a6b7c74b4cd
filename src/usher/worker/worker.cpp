#include <usher/worker/worker.hpp>

#include <algorithm>
#include <csignal>
#include <memory>
#include <random>
#include <stdexcept>

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/jobs/attempts.hpp>
#include <usher/jobs/provisioner.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/log_fields.hpp>

namespace usher::worker {
namespace {

constexpr auto k_claim_wait = std::chrono::milliseconds(500);
constexpr auto k_batch_timeout = std::chrono::seconds(60);
constexpr auto k_max_backoff = std::chrono::hours(1);

struct JobOutcome {
  std::int64_t id = 0;
  int attempts = 0;
  std::string created_at; // the intake
  std::string request_id; // the request that made the job (empty: none)
  Result<void> result;
  bool lease_lost = false; // another worker has the job: nothing to record
};

// The timeline's record of one attempt (jobs/attempts.hpp), finished now.
jobs::Attempt attempt_record(std::int64_t id, int number, const std::string &owner,
                             std::chrono::system_clock::time_point started, std::string outcome,
                             std::optional<std::string> error) {
  const auto finished = std::chrono::system_clock::now();
  return jobs::Attempt{
      id,
      number,
      owner,
      std::move(outcome),
      std::move(error),
      clock::iso8601(started),
      clock::iso8601(finished),
      std::chrono::duration_cast<std::chrono::milliseconds>(finished - started).count()};
}

} // namespace

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, int attempts,
                                        double jitter01) {
  const int exponent = std::clamp(attempts - 1, 0, 30);
  const double full =
      std::min(static_cast<double>(base.count()) * static_cast<double>(1LL << exponent),
               static_cast<double>(std::chrono::milliseconds(k_max_backoff).count()));
  return std::chrono::milliseconds(static_cast<long long>(full * (0.5 + 0.5 * jitter01)));
}

Worker::Worker(queue::JobQueue &queue, store::WriteBatcher &writer, WorkerSettings settings)
    : m_queue(queue), m_writer(writer), m_settings(std::move(settings)),
      m_owner_prefix(
          fmt::format("{}:{}:{}", m_settings.instance, getpid(), crypto::random_token("", 6))) {
  if (auto *registry = m_settings.metrics; registry != nullptr) {
    m_outcomes = &registry->counter("usher_jobs_total",
                                    "Job attempts by outcome: succeeded, failed_attempt (queued "
                                    "again for a retry) or dead (the last attempt failed).",
                                    {"outcome"});
    for (const char *outcome : {"succeeded", "failed_attempt", "dead"}) m_outcomes->with({outcome});
    m_attempts =
        &registry->counter("usher_job_attempts_total", "Job attempts whose outcome was recorded.")
             .with();
    m_intake_to_success =
        &registry
             ->histogram("usher_job_intake_to_success_seconds",
                         "Time from a job's intake to its successful commit by a worker.",
                         {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600})
             .with();
  }
}

Worker::~Worker() { stop(); }

void Worker::start() {
  for (unsigned i = 0; i < m_settings.threads; ++i) m_threads.emplace_back([this, i] { run(i); });
}

void Worker::stop() {
  if (m_threads.empty()) return;
  m_stopping.store(true);
  m_queue.interrupt();
  for (auto &t : m_threads) {
    if (t.joinable()) t.join();
  }
  m_threads.clear();
  // Anything still leased by this process goes back without counting an attempt.
  for (unsigned i = 0; i < m_settings.threads; ++i) {
    const std::string owner = fmt::format("{}:{}", m_owner_prefix, i);
    m_writer.submit_and_wait(
        [owner](store::WriteContext &context) { jobs::release_leases(context.sql(), owner); },
        std::chrono::seconds(10), store::Priority::background);
  }
}

void Worker::checkpoint(const char *step) const {
  if (m_settings.checkpoint) m_settings.checkpoint(step);
}

std::function<void(const char *step)> fault_injector(std::string after, bool throws) {
  if (after.empty()) return {};
  return [after = std::move(after), throws](const char *step) {
    if (after != step) return;
    if (throws) throw std::runtime_error(fmt::format("injected fault after step {}", step));
    spdlog::critical("fault injection: killing the process after step {}", step);
    std::raise(SIGKILL);
  };
}

void Worker::run(unsigned index) {
  const std::string owner = fmt::format("{}:{}", m_owner_prefix, index);
  auto next_recovery = std::chrono::steady_clock::now();
  while (!m_stopping.load()) {
    if (index == 0 && std::chrono::steady_clock::now() >= next_recovery) {
      recover_expired();
      next_recovery =
          std::chrono::steady_clock::now() +
          std::max<std::chrono::milliseconds>(m_settings.lease / 4, std::chrono::milliseconds(100));
    }
    try {
      auto batch = m_queue.claim(owner, m_settings.claim_batch, m_settings.lease, k_claim_wait);
      if (batch.empty()) continue;
      checkpoint("claim");
      process(owner, std::move(batch));
    } catch (const std::exception &e) {
      // A job boundary: one failure never takes the worker down.
      spdlog::error("worker {} failed: {}", owner, e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

void Worker::recover_expired() {
  auto requeued = std::make_shared<std::vector<std::int64_t>>();
  auto died = std::make_shared<std::size_t>(0);
  const int max_attempts = m_settings.max_attempts;
  const std::string instance = m_settings.instance;
  const auto *alerts = m_settings.alerts;
  const auto *outbound = m_settings.outbound;
  if (m_writer.submit_and_wait(
          [requeued, died, max_attempts, instance, alerts, outbound](store::WriteContext &context) {
            *requeued = jobs::recover_expired_leases(context.sql(), max_attempts, instance, alerts,
                                                     died.get(), outbound);
          },
          std::chrono::seconds(30), store::Priority::background)) {
    // An expired lease was an attempt that failed (its worker died).
    if (m_outcomes != nullptr) {
      m_outcomes->with({"failed_attempt"}).inc(static_cast<double>(requeued->size()));
      m_outcomes->with({"dead"}).inc(static_cast<double>(*died));
      m_attempts->inc(static_cast<double>(requeued->size() + *died));
    }
    if (!requeued->empty()) {
      spdlog::warn("recovered {} jobs whose worker stopped or crashed", requeued->size());
      for (auto id : *requeued) m_queue.dispatch(id, {});
    }
  }
}

void Worker::process(const std::string &owner, std::vector<jobs::ClaimedJob> batch) {
  // One write per job, so that one failing job does not fail the others;
  // the batcher still commits them together.
  struct Shared {
    std::mutex mutex;
    std::condition_variable all_done;
    std::size_t remaining = 0;
    std::vector<JobOutcome> outcomes;
  };
  auto shared = std::make_shared<Shared>();
  const auto started = std::chrono::system_clock::now(); // the batch was just claimed
  shared->remaining = batch.size();
  shared->outcomes.resize(batch.size());
  auto finish = [shared](std::size_t i, Result<void> result, bool lease_lost) {
    std::lock_guard lock(shared->mutex);
    shared->outcomes[i].result = std::move(result);
    shared->outcomes[i].lease_lost = lease_lost;
    if (--shared->remaining == 0) shared->all_done.notify_one();
  };
  for (std::size_t i = 0; i < batch.size(); ++i) {
    shared->outcomes[i].id = batch[i].id;
    shared->outcomes[i].attempts = batch[i].attempts;
    shared->outcomes[i].created_at = batch[i].created_at;
    shared->outcomes[i].request_id = batch[i].creator.request_id;
    auto job = std::make_shared<jobs::ClaimedJob>(std::move(batch[i]));
    auto lost = std::make_shared<bool>(false); // written by the apply, read by its done
    const auto &step = m_settings.checkpoint;
    const bool queued = m_writer.submit(
        [job, owner, step, started, lost,
         outbound = m_settings.outbound](store::WriteContext &context) {
          auto provisioned =
              context.prepared<jobs::Provisioner>().provision(*job, owner, outbound, step);
          if (!provisioned) {
            *lost = provisioned.error() == jobs::TransitionError::lease_lost;
            throw store::AbortWrite(jobs::to_error(provisioned.error()));
          }
          context.prepared<jobs::AttemptRecorder>().record(
              attempt_record(job->id, job->attempts, owner, started, "succeeded", std::nullopt));
        },
        [finish, i, lost](const Result<void> &written) { finish(i, written, !written && *lost); },
        store::Priority::background);
    if (!queued) {
      finish(i, fail(ErrorKind::unavailable, "write_queue_full", "the write queue is full"), false);
    }
  }

  // Wait for the commit, extending the leases of a batch that takes long.
  {
    std::unique_lock lock(shared->mutex);
    const auto deadline = std::chrono::steady_clock::now() + k_batch_timeout;
    const auto slice =
        std::max<std::chrono::milliseconds>(m_settings.lease / 3, std::chrono::milliseconds(10));
    while (shared->remaining > 0 && std::chrono::steady_clock::now() < deadline) {
      if (shared->all_done.wait_for(lock, slice, [&] { return shared->remaining == 0; })) break;
      std::vector<std::int64_t> pending;
      for (const auto &o : shared->outcomes) pending.push_back(o.id);
      const std::string lease_until =
          clock::iso8601(std::chrono::system_clock::now() + m_settings.lease);
      lock.unlock();
      m_writer.submit(
          [pending, owner, lease_until](store::WriteContext &context) {
            for (auto id : pending) jobs::extend_lease(context.sql(), id, owner, lease_until);
          },
          [](const Result<void> &) {}, store::Priority::background);
      lock.lock();
    }
    if (shared->remaining > 0) {
      // The writer is stuck: leave the leases to expire and be recovered.
      spdlog::error("worker {}: a batch did not commit within {} s", owner,
                    std::chrono::duration_cast<std::chrono::seconds>(k_batch_timeout).count());
      return;
    }
  }
  checkpoint("after_commit");

  static thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  std::vector<std::int64_t> finished; // acknowledged together, after the loop
  for (const auto &outcome : shared->outcomes) {
    if (outcome.result) {
      m_succeeded.fetch_add(1);
      if (m_outcomes != nullptr) {
        m_outcomes->with({"succeeded"}).inc();
        m_attempts->inc();
        if (const auto created = clock::parse_iso8601(outcome.created_at)) {
          m_intake_to_success->observe(
              std::chrono::duration<double>(std::chrono::system_clock::now() - *created).count());
        }
      }
      finished.push_back(outcome.id);
      continue;
    }
    if (outcome.lease_lost) continue; // another worker has it
    const std::string error = outcome.result.error().detail;
    const auto retry_time = std::chrono::system_clock::now() +
                            backoff_delay(m_settings.backoff, outcome.attempts, jitter(random));
    const std::string retry_at = clock::iso8601(retry_time);
    const auto id = outcome.id;
    const int max_attempts = m_settings.max_attempts;
    const std::string instance = m_settings.instance;
    const auto *alerts = m_settings.alerts;
    log::with_fields(
        spdlog::level::warn,
        fmt::format("job {} attempt {} failed: {}", id, outcome.attempts, error),
        {{"job_id", id}, {"attempt", outcome.attempts}, {"request_id", outcome.request_id}});
    auto status = std::make_shared<std::optional<jobs::JobStatus>>();
    const int number = outcome.attempts;
    const bool recorded = m_writer.submit_and_wait(
        [id, owner, error, retry_at, max_attempts, instance, alerts, status, number, started,
         outbound = m_settings.outbound](store::WriteContext &context) {
          // lease_lost: another worker has the job; nothing is recorded.
          if (auto failed = jobs::fail_attempt(context.sql(), id, owner, error, retry_at,
                                               max_attempts, instance, alerts, outbound)) {
            *status = *failed;
            context.prepared<jobs::AttemptRecorder>().record(
                attempt_record(id, number, owner, started,
                               **status == jobs::JobStatus::dead ? "dead" : "failed", error));
          }
        },
        std::chrono::seconds(30), store::Priority::background);
    if (recorded && *status && m_outcomes != nullptr) {
      m_outcomes->with({**status == jobs::JobStatus::dead ? "dead" : "failed_attempt"}).inc();
      m_attempts->inc();
    }
    if (recorded && *status == jobs::JobStatus::queued) {
      m_queue.retry_at(id, retry_time);
    } else if (recorded) {
      finished.push_back(id);
    }
    // Not recorded: the lease expires and the job is recovered.
  }
  m_queue.acknowledge(finished);
}

} // namespace usher::worker
