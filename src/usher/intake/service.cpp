#include <usher/intake/service.hpp>

#include <utility>

#include <usher/jobs/job_store.hpp>
#include <usher/jobs/provisioner.hpp>
#include <usher/util/clock.hpp>

namespace usher::intake {
namespace {

Error key_in_flight() {
  return Error{ErrorKind::conflict, "idempotency_key_in_flight",
               "a request with this Idempotency-Key is still in progress", "Idempotency-Key"};
}

Outcome refused(Error error) {
  Outcome outcome;
  outcome.kind = OutcomeKind::refused;
  outcome.error = std::move(error);
  return outcome;
}

nlohmann::json created_answer(std::int64_t user_id, std::int64_t job_id, const std::string &email,
                              system::SystemMode mode, bool fallback) {
  return {{"status", "created"},
          {"user_id", user_id},
          {"job_id", job_id},
          {"email", email},
          {"mode", system::to_string(mode)},
          {"fallback", fallback}};
}

} // namespace

int stored_status(OutcomeKind kind) { return kind == OutcomeKind::queued ? 202 : 201; }

// What one submission has decided so far; shared by the write, its
// completion, the dispatch and the fallback.
struct Service::Pending {
  Submission submission;
  provisioning::Creator caller;
  std::string fingerprint;
  Completion done;
  Outcome outcome;
  std::string activation_token;
  std::int64_t queued_job = 0; // a job to hand to the queue after the commit
  // Provisioned inline because the queue was down: recorded after the commit.
  std::int64_t fallback_job = 0;
  std::string fallback_reason;
};

Service::Service(store::WriteBatcher &writer, system::ModeCache &mode, queue::JobQueue &queue,
                 idempotency::InFlight &in_flight, Settings settings)
    : m_writer(writer), m_mode(mode), m_queue(queue), m_in_flight(in_flight),
      m_settings(std::move(settings)),
      m_fallbacks(writer, health::EventType::critical, queue::k_unavailable_message,
                  m_settings.instance,
                  health::Alerting{m_settings.alerts, queue::k_unavailable_condition}) {}

void Service::submit(Submission submission, const provisioning::Creator &caller, Completion done) {
  const auto &key = submission.idempotency_key;
  if (key && !m_in_flight.begin(caller.token_id, *key)) {
    done(refused(key_in_flight()));
    return;
  }
  auto pending = std::make_shared<Pending>();
  pending->fingerprint = key ? idempotency::fingerprint(submission.body) : std::string();
  pending->submission = std::move(submission);
  pending->caller = caller;
  pending->done = std::move(done);
  write(pending);
}

void Service::write(const std::shared_ptr<Pending> &pending) {
  auto apply = [this, pending](store::WriteContext &context) {
    soci::session &sql = context.sql();
    const auto &key = pending->submission.idempotency_key;
    const auto &user = pending->submission.user;
    const auto token_id = pending->caller.token_id;
    if (key) {
      auto stored = idempotency::find(sql, token_id, *key, pending->fingerprint);
      if (!stored) {
        pending->outcome = refused(stored.error());
        return;
      }
      if (*stored) {
        // A replay: the first status and body, without the activation token.
        pending->outcome.kind = OutcomeKind::replay;
        pending->outcome.replay = **stored;
        return;
      }
    }
    // The mode is read here, on the writer thread: a cache refresh may touch
    // the database, which the I/O thread never does.
    const auto mode = m_mode.get();
    Outcome outcome;
    if (mode == system::SystemMode::async_queue && m_queue.accepting()) {
      auto queued = context.prepared<jobs::IntakeStatements>().enqueue(user, pending->caller,
                                                                       m_settings.activation_ttl);
      if (!queued) throw store::AbortWrite(queued.error());
      outcome.kind = OutcomeKind::queued;
      outcome.job_id = queued->job_id;
      outcome.answer = {{"status", "queued"},
                        {"job_id", queued->job_id},
                        {"email", user.email},
                        {"mode", "async_queue"}};
      pending->activation_token = std::move(queued->activation_token);
      pending->queued_job = queued->job_id;
    } else {
      // sync_direct, or async_queue while the queue is down (its circuit is
      // open): provisioned inline at once, without waiting on it.
      auto created = context.prepared<jobs::Provisioner>().provision_inline(
          user, pending->caller, m_settings.activation_ttl, m_settings.outbound);
      if (!created) throw store::AbortWrite(created.error());
      outcome.kind = OutcomeKind::created;
      outcome.job_id = created->job_id;
      outcome.fallback = mode == system::SystemMode::async_queue;
      outcome.answer =
          created_answer(created->user_id, created->job_id, user.email, mode, outcome.fallback);
      if (outcome.fallback) {
        pending->fallback_job = created->job_id;
        pending->fallback_reason = "the queue's circuit is open";
      }
      pending->activation_token = std::move(created->activation_token);
    }
    if (key && !idempotency::store(sql, token_id, *key, pending->fingerprint,
                                   {stored_status(outcome.kind), outcome.answer.dump()})) {
      throw store::AbortWrite(key_in_flight());
    }
    outcome.answer["activation_token"] = pending->activation_token;
    pending->outcome = std::move(outcome);
  };
  auto done = [this, pending](const Result<void> &written) { after_commit(pending, written); };
  if (!m_writer.submit(std::move(apply), std::move(done))) {
    finish(pending, refused(Error{ErrorKind::unavailable, "unavailable",
                                  "too many writes are waiting; retry shortly", ""}));
  }
}

void Service::after_commit(const std::shared_ptr<Pending> &pending, const Result<void> &written) {
  if (!written) return finish(pending, refused(written.error()));
  if (pending->fallback_job != 0)
    record_fallback(pending->fallback_job, pending->fallback_reason, pending->caller.request_id);
  if (pending->queued_job == 0) return finish(pending, std::move(pending->outcome));
  // The row is committed: now the queue may take it. If it cannot, the job
  // is provisioned inline (created, with fallback).
  m_queue.dispatch(pending->queued_job, [this, pending](const Result<void> &sent) {
    if (sent) return finish(pending, std::move(pending->outcome));
    provision_fallback(pending, sent.error().detail);
  });
}

void Service::provision_fallback(const std::shared_ptr<Pending> &pending, const std::string &why) {
  auto answer = std::make_shared<std::optional<nlohmann::json>>();
  const std::string owner = "inline:" + m_settings.instance;
  auto apply = [this, pending, answer, owner](store::WriteContext &context) {
    soci::session &sql = context.sql();
    const std::string lease_until =
        clock::iso8601(std::chrono::system_clock::now() + m_settings.job_lease);
    auto claimed = jobs::claim_ids(sql, {pending->queued_job}, owner, lease_until);
    if (claimed.empty()) return; // a worker has it after all: the queued answer stands
    const auto &job = claimed.front();
    auto provisioned =
        context.prepared<jobs::Provisioner>().provision(job, owner, m_settings.outbound);
    if (!provisioned) throw store::AbortWrite(jobs::to_error(provisioned.error()));
    auto body = created_answer(provisioned->user_id, job.id, pending->submission.user.email,
                               system::SystemMode::async_queue, true);
    const auto &key = pending->submission.idempotency_key;
    if (key) idempotency::replace(sql, pending->caller.token_id, *key, {201, body.dump()});
    *answer = std::move(body);
  };
  auto done = [this, pending, answer, why](const Result<void> &written) {
    if (!written || !*answer) {
      // The job is durably queued and the queue's recovery finishes it: the
      // queued answer is true.
      return finish(pending, std::move(pending->outcome));
    }
    record_fallback(pending->queued_job, why, pending->caller.request_id);
    Outcome outcome;
    outcome.kind = OutcomeKind::created;
    outcome.job_id = pending->queued_job;
    outcome.fallback = true;
    outcome.answer = std::move(**answer);
    outcome.answer["activation_token"] = pending->activation_token;
    finish(pending, std::move(outcome));
  };
  if (!m_writer.submit(std::move(apply), std::move(done))) {
    finish(pending, std::move(pending->outcome));
  }
}

void Service::finish(const std::shared_ptr<Pending> &pending, Outcome outcome) {
  const auto &key = pending->submission.idempotency_key;
  if (key) m_in_flight.end(pending->caller.token_id, *key);
  auto done = std::move(pending->done);
  pending->done = nullptr;
  if (done) done(std::move(outcome));
}

void Service::record_fallback(std::int64_t job_id, const std::string &why,
                              const std::string &request_id) {
  if (m_settings.fallbacks != nullptr) m_settings.fallbacks->inc();
  nlohmann::json metadata = {{"reason", why}, {"job_id", job_id}};
  if (!request_id.empty()) metadata["request_id"] = request_id;
  m_fallbacks.add(metadata);
}

} // namespace usher::intake
