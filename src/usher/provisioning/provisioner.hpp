// Creating a customer: the account (identity), its tripwire_users profile,
// its activation token and the job row that records the request, all in the
// caller's transaction. The normalised-email unique constraints decide who
// wins a race, never a read-then-write.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/provisioning/new_user.hpp>
#include <usher/util/error.hpp>

namespace usher::provisioning {

// Who asked for the account.
struct Creator {
  std::int64_t token_id = 0;
  std::string actor; // "NAME (token ID)"
};

struct CreatedUser {
  std::int64_t user_id = 0;
  std::int64_t job_id = 0;
  std::string activation_token; // clear: returned once, never stored or logged
};

// The statements of inline provisioning, prepared once per connection and
// re-executed for every user (the writer's hot path).
class ProvisioningStatements {
public:
  explicit ProvisioningStatements(soci::session &sql);

  // Provisions `user` inline and records a succeeded job. On user_exists
  // (409) the caller must roll back: an account may already have been written.
  Result<CreatedUser> create_user_inline(const NewUser &user, const Creator &creator,
                                         std::chrono::hours activation_ttl);

  // A queued job, provisioned by a worker holding its lease: account
  // get-or-create by normalised email, profile and activation token
  // insert-if-absent, then the job's running -> succeeded transition guarded
  // by `owner`'s lease. Whatever ran before (a crash, a duplicate delivery)
  // this ends in one account and one profile. `checkpoint` is called after
  // each step (fault injection in tests). Fails with lease_lost (the caller
  // rolls back) when another worker owns the job now.
  Result<std::int64_t> provision_queued(std::int64_t job_id, const std::string &owner,
                                        const NewUser &user, const Creator &creator,
                                        const std::optional<std::string> &activation_hash,
                                        const std::optional<std::string> &activation_expires_at,
                                        const std::function<void(const char *step)> &checkpoint);

private:
  // The profile of `m_user_id` for `user`, unless it exists already.
  void insert_profile(const NewUser &user, const Creator &creator);

  // Bound parameters: each statement reads them when it executes.
  std::string m_email;
  std::string m_full_name;
  std::string m_phone;
  soci::indicator m_phone_ind = soci::i_null;
  std::string m_product;
  soci::indicator m_product_ind = soci::i_null;
  std::string m_created_by;
  long long m_token_id = 0;
  std::string m_payload;
  std::string m_now;
  std::string m_activation_hash;
  std::string m_activation_expires_at;
  long long m_user_id = 0;
  long long m_job_id = 0;
  std::string m_owner;

  soci::statement m_insert_account;
  soci::statement m_insert_profile;
  soci::statement m_insert_job;
  soci::statement m_insert_activation;
  soci::statement m_ensure_account;
  soci::statement m_select_account;
  soci::statement m_complete_job;
};

// One-off form of ProvisioningStatements::create_user_inline.
Result<CreatedUser> create_user_inline(soci::session &sql, const NewUser &user,
                                       const Creator &creator, std::chrono::hours activation_ttl);

struct UserRecord {
  std::int64_t id = 0;
  std::string email;
  std::string created_at;
  std::optional<std::string> activated_at;
  std::optional<std::string> full_name; // the profile; unset if it does not exist yet
  std::optional<std::string> phone;
  std::optional<std::string> product;
  std::optional<std::string> created_by;

  nlohmann::json to_json() const;
};

std::optional<UserRecord> find_user_by_email(soci::session &sql,
                                             const std::string &email_normalized);
std::optional<UserRecord> find_user_by_id(soci::session &sql, std::int64_t id);

} // namespace usher::provisioning
