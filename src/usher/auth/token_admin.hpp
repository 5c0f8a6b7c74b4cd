// API tokens for callers that must not hold a database session (the HTTP
// API): the point lookup of a digest the TokenRegistry does not hold, the
// list and revocation, run on the BlockingPool and the WriteBatcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <usher/auth/api_tokens.hpp>
#include <usher/store/async.hpp>

namespace usher::auth {

class TokenAdmin {
public:
  TokenAdmin(TokenRegistry &registry, store::BlockingPool &pool, store::WriteBatcher &writer,
             std::string instance)
      : m_registry(registry), m_pool(pool), m_writer(writer), m_instance(std::move(instance)) {}

  // TokenRegistry::resolve, its lookups on the pool.
  void resolve(const std::string &token_hash, TokenRegistry::Resolved resolved);
  // Every token, newest first (never the token or its digest).
  void list(store::Completion<std::vector<TokenInfo>> done);
  // Revokes token `id` for `actor`; once committed this instance refuses it
  // at once, the others at their next registry reload.
  void revoke(std::int64_t id, std::string actor, store::Completion<Revocation> done);

private:
  TokenRegistry &m_registry;
  store::BlockingPool &m_pool;
  store::WriteBatcher &m_writer;
  std::string m_instance;
};

} // namespace usher::auth
