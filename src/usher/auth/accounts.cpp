#include <usher/auth/accounts.hpp>

#include <exception>
#include <optional>
#include <utility>

namespace usher::auth {
namespace {

Error invalid_credentials() {
  return Error{ErrorKind::unauthenticated, "invalid_credentials", "wrong email or password", ""};
}

Error hashing_busy() {
  return Error{ErrorKind::unavailable, k_hashing_busy,
               "too many password checks at once; retry shortly", ""};
}

Error hashing_failed(const std::exception &e) {
  return Error{ErrorKind::internal, "internal", e.what(), ""};
}

} // namespace

template <typename T>
void Accounts::on_hashing(const store::Completion<T> &done, HashingPool::Task task) {
  if (!m_hashing.submit(std::move(task))) done(tl::unexpected(hashing_busy()));
}

void Accounts::activate(std::string token_hash, std::string password,
                        store::Completion<std::int64_t> done) {
  auto hash_and_store = [this, token_hash, password = std::move(password),
                         done = std::move(done)](const Result<std::int64_t> &account) {
    if (!account) return done(tl::unexpected(account.error()));
    on_hashing(done, [this, token_hash, password, done] {
      std::string password_hash;
      try {
        password_hash = crypto::hash_password(password, m_settings.password_cost);
      } catch (const std::exception &e) {
        return done(tl::unexpected(hashing_failed(e)));
      }
      store::write_async<std::int64_t>(
          m_writer,
          [token_hash, password_hash = std::move(password_hash)](store::WriteContext &context) {
            return auth::activate(context.sql(), token_hash, password_hash);
          },
          done);
    });
  };
  store::read_async<std::int64_t>(
      m_pool,
      [token_hash = std::move(token_hash)](soci::session &sql) {
        return find_activation(sql, token_hash);
      },
      std::move(hash_and_store));
}

void Accounts::login(std::string email_normalized, std::string password,
                     store::Completion<Session> done) {
  auto verify_and_start = [this, password = std::move(password), done = std::move(done)](
                              const Result<std::optional<LoginAccount>> &found) {
    if (!found) return done(tl::unexpected(found.error()));
    on_hashing(done, [this, password, account = *found, done] {
      const bool known = account && account->password_hash;
      bool verified = false;
      try {
        const std::string &dummy = dummy_password_hash();
        verified = crypto::verify_password(password, known ? *account->password_hash : dummy);
      } catch (const std::exception &e) {
        return done(tl::unexpected(hashing_failed(e)));
      }
      if (!known || !verified) return done(tl::unexpected(invalid_credentials()));
      store::write_async<Session>(
          m_writer,
          [account_id = account->account_id,
           ttl = m_settings.session_ttl](store::WriteContext &context) {
            return Result<Session>(create_session(context.sql(), account_id, ttl));
          },
          done);
    });
  };
  store::read_async<std::optional<LoginAccount>>(
      m_pool,
      [email = std::move(email_normalized)](soci::session &sql) {
        return Result<std::optional<LoginAccount>>(find_login(sql, email));
      },
      std::move(verify_and_start));
}

const std::string &Accounts::dummy_password_hash() {
  std::call_once(m_dummy_once, [this] {
    m_dummy_hash = crypto::hash_password("usher-no-such-account", m_settings.password_cost);
  });
  return m_dummy_hash;
}

void Accounts::reissue_activation(std::int64_t account_id,
                                  store::Completion<ReissuedActivation> done) {
  store::write_async<ReissuedActivation>(
      m_writer,
      [account_id, ttl = m_settings.activation_ttl](store::WriteContext &context) {
        return auth::reissue_activation(context.sql(), account_id, std::chrono::system_clock::now(),
                                        ttl);
      },
      std::move(done));
}

} // namespace usher::auth
