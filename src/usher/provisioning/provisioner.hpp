// A customer's records: the account (identity), its tripwire_users profile
// and its activation token, written in the caller's transaction; and the
// lookups of a customer. The normalised-email unique constraints decide who
// wins a race, never a read-then-write. The job that asks for these records
// and the one routine that writes them for every caller are in
// jobs/provisioner.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/provisioning/new_user.hpp>
#include <usher/store/dialect.hpp>
#include <usher/util/error.hpp>

namespace usher::provisioning {

// Who asked for the account.
struct Creator {
  std::int64_t token_id = 0;
  std::string actor; // "NAME (token ID)"
  // The request's id (util/request_id.hpp), kept with its job; empty: none.
  std::string request_id;
};

struct CreatedUser {
  std::int64_t user_id = 0;
  std::int64_t job_id = 0;
  std::string activation_token; // clear: returned once, never stored or logged
};

// The account of an email, and whether this call created it.
struct AccountRef {
  std::int64_t id = 0;
  bool created = false;
};

// The statements that write a customer's records, prepared once per
// connection and re-executed for every user (the writer's hot path). Each
// write is idempotent: whatever ran before (a crash, a duplicate delivery),
// running it again ends in one account, one profile and one token.
class AccountStatements {
public:
  explicit AccountStatements(soci::session &sql);

  // The account of `email` (normalised), created unless it exists.
  AccountRef get_or_create(const std::string &email);

  // The profile of `account_id` for `user`, unless it exists already.
  void insert_profile_if_absent(std::int64_t account_id, const NewUser &user,
                                const Creator &creator);

  // The activation token `hash` of `account_id`, unless it is there already.
  void insert_activation_if_absent(std::int64_t account_id, const std::string &hash,
                                   const std::string &expires_at);

private:
  // Bound parameters: each statement reads them when it executes.
  std::string m_email;
  std::string m_full_name;
  std::string m_phone;
  soci::indicator m_phone_ind = soci::i_null;
  std::string m_product;
  soci::indicator m_product_ind = soci::i_null;
  std::string m_created_by;
  long long m_token_id = 0;
  std::string m_now;
  std::string m_activation_hash;
  std::string m_activation_expires_at;
  long long m_user_id = 0;

  store::InsertWithId m_insert_account;
  soci::statement m_select_account;
  soci::statement m_insert_profile;
  soci::statement m_insert_activation;
};

// The user_exists conflict (409) for `email`.
tl::unexpected<Error> user_exists(const std::string &email);

struct UserRecord {
  std::int64_t id = 0;
  std::string email;
  std::string created_at;
  std::optional<std::string> activated_at;
  std::optional<std::string> full_name; // the profile; unset if it does not exist yet
  std::optional<std::string> phone;
  std::optional<std::string> product;
  std::optional<std::string> created_by;
  // The latest unused activation token's expiry (unset: none left), and
  // what that makes the account: invited, activated or expired.
  std::optional<std::string> activation_expires_at;
  std::string invitation;

  nlohmann::json to_json() const;
};

// "activated" once a password is set; "invited" while an unused activation
// token expires after `now`; "expired" otherwise (usher users resend, or
// POST /api/v1/users/{id}/activation, issues a new one).
std::string invitation_state(bool activated, const std::optional<std::string> &expires_at,
                             const std::string &now);

std::optional<UserRecord> find_user_by_email(soci::session &sql,
                                             const std::string &email_normalized);
std::optional<UserRecord> find_user_by_id(soci::session &sql, std::int64_t id);

// True when the normalised email has an account or an active or succeeded job
// (not a dead one): what makes a new request for it 409 user_exists.
bool email_taken(soci::session &sql, const std::string &email_normalized);

} // namespace usher::provisioning
