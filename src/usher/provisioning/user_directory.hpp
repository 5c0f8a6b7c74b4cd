// Reads of provisioned accounts for callers that must not hold a database
// session (the HTTP API): the lookups of provisioning/provisioner.hpp run
// on the BlockingPool and complete with the account or user_not_found.
#pragma once

#include <cstdint>
#include <string>

#include <usher/provisioning/provisioner.hpp>
#include <usher/store/async.hpp>

namespace usher::provisioning {

class UserDirectory {
public:
  explicit UserDirectory(store::BlockingPool &pool) : m_pool(pool) {}

  // The account of a normalised email (provisioning::normalise_email).
  void find_by_email(std::string email_normalized, store::Completion<UserRecord> done);
  void find_by_id(std::int64_t id, store::Completion<UserRecord> done);

private:
  store::BlockingPool &m_pool;
};

} // namespace usher::provisioning
