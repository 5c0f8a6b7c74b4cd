#include <usher/auth/token_admin.hpp>

#include <utility>

namespace usher::auth {

void TokenAdmin::resolve(const std::string &token_hash, TokenRegistry::Resolved resolved) {
  m_registry.resolve(
      token_hash,
      [this](std::function<void(soci::session &)> lookup, std::function<void()> failed) {
        return m_pool.submit(std::move(lookup), std::move(failed));
      },
      std::move(resolved));
}

void TokenAdmin::list(store::Completion<std::vector<TokenInfo>> done) {
  store::read_async<std::vector<TokenInfo>>(
      m_pool, [](soci::session &sql) { return Result<std::vector<TokenInfo>>(list_tokens(sql)); },
      std::move(done));
}

void TokenAdmin::revoke(std::int64_t id, std::string actor, store::Completion<Revocation> done) {
  store::write_async<Revocation>(
      m_writer,
      [id, actor = std::move(actor), instance = m_instance](store::WriteContext &context) {
        return revoke_token(context.sql(), id, actor, instance);
      },
      [this, id, done = std::move(done)](Result<Revocation> revoked) {
        if (revoked) m_registry.forget(id);
        done(std::move(revoked));
      });
}

} // namespace usher::auth
