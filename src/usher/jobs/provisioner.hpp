// The one provisioning routine. Every path that creates a customer ends
// here: sync_direct (intake, inline), the worker (a claimed queued job) and
// the fallback (intake, a queued job the queue could not take). It runs in
// the caller's transaction on the writer's connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <soci/soci.h>

#include <tl/expected.hpp>

#include <usher/jobs/job_store.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/util/error.hpp>
#include <usher/webhooks/outbox.hpp>

namespace usher::jobs {

struct Provisioned {
  std::int64_t user_id = 0;
  bool account_created = false; // false: the account was there already
};

// Prepared once per connection (WriteContext::prepared<Provisioner>()).
class Provisioner {
public:
  explicit Provisioner(soci::session &sql);

  // Called after each step with its name (account, profile,
  // before_complete): the crash tests' fault injection; empty in production.
  using Checkpoint = std::function<void(const char *step)>;

  // Provisions `job`, leased to `owner`: account get-or-create by normalised
  // email, profile and activation token insert-if-absent, then the job's
  // running -> succeeded transition guarded by `owner`'s lease. Whatever ran
  // before (a crash, a duplicate delivery), this ends in one account and one
  // profile. With the transition, in the same transaction, the
  // `user.provisioned` event is written to the webhook outbox for each of
  // `outbound`'s URLs (nothing, and no statement, when it is null or empty).
  // lease_lost: the caller rolls back.
  tl::expected<Provisioned, TransitionError> provision(
      const ClaimedJob &job, const std::string &owner,
      const webhooks::OutboundTargets *outbound = nullptr, const Checkpoint &checkpoint = {});

  // sync_direct: records the request as a job that succeeded and creates
  // its customer at once, as provision() does; the job gets its user_id and
  // the `user.provisioned` event in the same transaction. user_exists (409)
  // when the email has an active job (nothing was written) or already an
  // account (the caller must then roll back).
  Result<provisioning::CreatedUser> provision_inline(
      const provisioning::NewUser &user, const provisioning::Creator &creator,
      std::chrono::hours activation_ttl, const webhooks::OutboundTargets *outbound = nullptr);

private:
  // The customer of `job`: account get-or-create by normalised email,
  // profile and activation token insert-if-absent.
  Provisioned create_customer(const ClaimedJob &job, const Checkpoint &checkpoint);

  soci::session &m_sql;
  provisioning::AccountStatements m_accounts;

  // Bound parameters: each statement reads them when it executes.
  std::string m_email;
  std::string m_payload;
  long long m_token_id = 0;
  std::string m_request_id;
  soci::indicator m_request_id_indicator = soci::i_null;
  std::string m_now;
  std::string m_owner;
  long long m_user_id = 0;
  long long m_job_id = 0;

  store::InsertWithId m_insert_inline_job;
  soci::statement m_complete_job;
  soci::statement m_set_inline_user;
};

// One-off form of Provisioner::provision_inline (tests, tools).
Result<provisioning::CreatedUser> provision_inline(soci::session &sql,
                                                   const provisioning::NewUser &user,
                                                   const provisioning::Creator &creator,
                                                   std::chrono::hours activation_ttl);

} // namespace usher::jobs
