#include <usher/jobs/provisioner.hpp>

#include <usher/auth/activation.hpp>
#include <usher/util/clock.hpp>

namespace usher::jobs {
namespace {

// The job of a sync_direct request, written in the state it commits in:
// succeeded, one attempt, no lease, no activation hash (the timeline tells
// inline jobs by it); its user_id follows once the account is known. The
// unique index on active_email (the email of every job not dead) refuses it
// while another job for the email is active, before anything is written.
constexpr const char *k_insert_inline_job =
    "INSERT INTO jobs (email, email_normalized, active_email, payload, status, attempts, "
    "created_by_token_id, run_after, created_at, updated_at, request_id) "
    "VALUES (:email, :norm, :active, :payload, 'succeeded', 1, :token_id, :now, :now2, :now3, "
    ":request_id) ON CONFLICT DO NOTHING";

constexpr const char *k_set_inline_user = "UPDATE jobs SET user_id = :user_id WHERE id = :id";

constexpr const char *k_complete_job =
    "UPDATE jobs SET status = 'succeeded', user_id = :user_id, lease_owner = NULL, "
    "lease_expires_at = NULL, last_error = NULL, updated_at = :now "
    "WHERE id = :id AND status = 'running' AND lease_owner = :owner";

void step(const Provisioner::Checkpoint &checkpoint, const char *name) {
  if (checkpoint) checkpoint(name);
}

} // namespace

Provisioner::Provisioner(soci::session &sql)
    : m_sql(sql), m_accounts(sql), m_insert_inline_job(sql),
      m_complete_job((sql.prepare << k_complete_job, soci::use(m_user_id), soci::use(m_now),
                      soci::use(m_job_id), soci::use(m_owner))),
      m_set_inline_user(
          (sql.prepare << k_set_inline_user, soci::use(m_user_id), soci::use(m_job_id))) {
  auto &insert = m_insert_inline_job.statement();
  insert.exchange(soci::use(m_email)); // :email
  insert.exchange(soci::use(m_email)); // :norm
  insert.exchange(soci::use(m_email)); // :active
  insert.exchange(soci::use(m_payload));
  insert.exchange(soci::use(m_token_id));
  insert.exchange(soci::use(m_now)); // run_after
  insert.exchange(soci::use(m_now)); // created_at
  insert.exchange(soci::use(m_now)); // updated_at
  insert.exchange(soci::use(m_request_id, m_request_id_indicator));
  m_insert_inline_job.prepare(k_insert_inline_job);
}

Provisioned Provisioner::create_customer(const ClaimedJob &job, const Checkpoint &checkpoint) {
  const auto account = m_accounts.get_or_create(job.user.email);
  step(checkpoint, "account");

  m_accounts.insert_profile_if_absent(account.id, job.user, job.creator);
  if (job.activation_hash && job.activation_expires_at) {
    m_accounts.insert_activation_if_absent(account.id, *job.activation_hash,
                                           *job.activation_expires_at);
  }
  step(checkpoint, "profile");
  return Provisioned{account.id, account.created};
}

tl::expected<Provisioned, TransitionError> Provisioner::provision(
    const ClaimedJob &job, const std::string &owner, const webhooks::OutboundTargets *outbound,
    const Checkpoint &checkpoint) {
  const auto provisioned = create_customer(job, checkpoint);

  step(checkpoint, "before_complete");
  m_now = clock::now_iso8601();
  m_user_id = provisioned.user_id;
  m_job_id = job.id;
  m_owner = owner;
  m_complete_job.execute(true);
  if (m_complete_job.get_affected_rows() != 1) {
    return tl::unexpected(TransitionError::lease_lost);
  }
  // The event exists exactly when the job succeeded: same transaction.
  webhooks::enqueue_user_provisioned(m_sql, outbound,
                                     {provisioned.user_id, job.id, job.user.email,
                                      job.user.full_name, job.user.product, job.creator.actor},
                                     m_now);
  return provisioned;
}

Result<provisioning::CreatedUser> Provisioner::provision_inline(
    const provisioning::NewUser &user, const provisioning::Creator &creator,
    std::chrono::hours activation_ttl, const webhooks::OutboundTargets *outbound) {
  const auto now = std::chrono::system_clock::now();
  m_now = clock::iso8601(now);
  m_email = user.email;
  m_payload = user.to_json().dump();
  m_token_id = creator.token_id;
  m_request_id = creator.request_id;
  m_request_id_indicator = creator.request_id.empty() ? soci::i_null : soci::i_ok;
  // A queued or running job for this email (async intake), or the job that
  // created its account, means "exists": nothing was written.
  const auto job_id = m_insert_inline_job.run();
  if (!job_id) return provisioning::user_exists(user.email);

  auto secret = auth::issue_activation_token(now);
  ClaimedJob job;
  job.id = *job_id;
  job.attempts = 1;
  job.user = user;
  job.creator = creator;
  job.activation_hash = std::move(secret.hash);
  job.activation_expires_at = clock::iso8601(now + activation_ttl);
  const auto provisioned = create_customer(job, {});
  // sync_direct creates accounts, it never adopts one.
  if (!provisioned.account_created) return provisioning::user_exists(user.email);
  m_user_id = provisioned.user_id;
  m_job_id = job.id;
  m_set_inline_user.execute(true);
  webhooks::enqueue_user_provisioned(
      m_sql, outbound,
      {provisioned.user_id, job.id, user.email, user.full_name, user.product, creator.actor},
      m_now);
  return provisioning::CreatedUser{provisioned.user_id, job.id, std::move(secret.token)};
}

Result<provisioning::CreatedUser> provision_inline(soci::session &sql,
                                                   const provisioning::NewUser &user,
                                                   const provisioning::Creator &creator,
                                                   std::chrono::hours activation_ttl) {
  Provisioner provisioner(sql);
  return provisioner.provision_inline(user, creator, activation_ttl);
}

} // namespace usher::jobs
