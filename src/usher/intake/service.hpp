// Intake: what happens to one request for a new customer, whoever sends it
// (the HTTP API today; the CLI, imports and webhooks later). The service
// owns the Idempotency-Key decision (replay, 422, 409), the mode choice, the
// durable write through the WriteBatcher, enqueue or inline provisioning or
// fallback, and the hand-over to the queue; it returns an Outcome value that
// says which happened. It knows no HTTP: http/users_api.cpp maps outcomes to
// status codes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include <usher/health/folded_event.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/metrics/registry.hpp>
#include <usher/provisioning/new_user.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/queue/job_queue.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/util/error.hpp>
#include <usher/webhooks/outbox.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::intake {

// A validated request (provisioning::parse_new_user) and the body it came
// in, whose fingerprint an Idempotency-Key is checked against.
struct Submission {
  provisioning::NewUser user;
  nlohmann::json body;
  std::optional<std::string> idempotency_key; // already checked (idempotency::parse_key)
};

enum class OutcomeKind {
  queued,  // a job row is committed and the queue took it; a worker provisions it
  created, // provisioned at once (sync_direct, or the fallback when `fallback`)
  replay,  // the Idempotency-Key's first answer, as stored
  refused, // nothing was written: `error` says why
};

struct Outcome {
  OutcomeKind kind = OutcomeKind::refused;
  std::int64_t job_id = 0;
  // created: provisioned inline because the queue could not take the job
  // (its circuit was open, or the dispatch failed).
  bool fallback = false;
  // queued, created: the answer, with the activation token (shown once);
  // replay: the stored answer, without it.
  nlohmann::json answer;
  idempotency::StoredResponse replay; // replay: the first status and body
  // refused: user_exists or idempotency_key_in_flight (conflict),
  // idempotency_key_reused (unprocessable), unavailable.
  Error error;
};

struct Settings {
  std::chrono::hours activation_ttl{24 * 7};
  std::chrono::milliseconds job_lease{30000}; // the fallback's lease on a queued job
  std::string instance;
  const alerts::AlertPolicy *alerts = nullptr; // fallbacks alert through it (null: logged only)
  metrics::Counter *fallbacks = nullptr;       // counts them (null: not counted)
  // Where the user.provisioned events go (null: nowhere).
  const webhooks::OutboundTargets *outbound = nullptr;
};

class Service {
public:
  // Runs exactly once per submit, on any thread (the caller's, the writer's
  // or a queue's dispatcher), possibly before submit returns.
  using Completion = std::function<void(Outcome)>;

  Service(store::WriteBatcher &writer, system::ModeCache &mode, queue::JobQueue &queue,
          idempotency::InFlight &in_flight, Settings settings);

  void submit(Submission submission, const provisioning::Creator &caller, Completion done);

  // Fallback occurrences counted but not yet written to the health log.
  long long fallbacks_pending() const { return m_fallbacks.pending(); }

private:
  struct Pending;
  void write(const std::shared_ptr<Pending> &pending);
  void after_commit(const std::shared_ptr<Pending> &pending, const Result<void> &written);
  void provision_fallback(const std::shared_ptr<Pending> &pending, const std::string &why);
  void finish(const std::shared_ptr<Pending> &pending, Outcome outcome);
  void record_fallback(std::int64_t job_id, const std::string &why, const std::string &request_id);

  store::WriteBatcher &m_writer;
  system::ModeCache &m_mode;
  queue::JobQueue &m_queue;
  idempotency::InFlight &m_in_flight;
  Settings m_settings;
  // A CRITICAL "queue_unavailable" event (folded and throttled per SPEC §6).
  health::FoldedEvent m_fallbacks;
};

// The status an outcome's answer is stored and replayed with (SPEC §3):
// 202 queued, 201 created.
int stored_status(OutcomeKind kind);

} // namespace usher::intake
