#include <usher/provisioning/user_directory.hpp>

#include <optional>
#include <utility>

namespace usher::provisioning {
namespace {

Result<UserRecord> found_or_not(std::optional<UserRecord> user) {
  if (!user) {
    return tl::unexpected(
        Error{ErrorKind::not_found, "user_not_found", "no account with that email or id", ""});
  }
  return std::move(*user);
}

} // namespace

void UserDirectory::find_by_email(std::string email_normalized,
                                  store::Completion<UserRecord> done) {
  store::read_async<UserRecord>(
      m_pool,
      [email = std::move(email_normalized)](soci::session &sql) {
        return found_or_not(find_user_by_email(sql, email));
      },
      std::move(done));
}

void UserDirectory::find_by_id(std::int64_t id, store::Completion<UserRecord> done) {
  store::read_async<UserRecord>(
      m_pool, [id](soci::session &sql) { return found_or_not(find_user_by_id(sql, id)); },
      std::move(done));
}

} // namespace usher::provisioning
