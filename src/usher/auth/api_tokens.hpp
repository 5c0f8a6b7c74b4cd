// API tokens: created once (the clear token is shown once and never stored),
// kept as SHA-256 digests, checked from memory on every request.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/util/error.hpp>

namespace usher::auth {

enum class Role { admin, sales_manager };

const char *to_string(Role role);
std::optional<Role> parse_role(std::string_view text);

// Who is calling: the token's id, name and role.
struct Principal {
  std::int64_t token_id = 0;
  std::string name;
  Role role = Role::sales_manager;

  // "NAME (token ID)": how actions are attributed in events and rows.
  std::string actor() const;
};

struct CreatedToken {
  std::int64_t id = 0;
  std::string token; // the clear token: show once, never log
};

// Inserts a new token inside the caller's transaction.
CreatedToken create_token(soci::session &sql, Role role, const std::string &name);

// What an operator may see of a token: never the token or its digest.
struct TokenInfo {
  std::int64_t id = 0;
  std::string name;
  Role role = Role::sales_manager;
  std::string created_at;
  std::optional<std::string> last_used_at; // to the minute (TokenRegistry::note_use)
  std::optional<std::string> revoked_at;
  std::optional<std::string> revoked_by;
};

// Every token, revoked ones too, by id.
std::vector<TokenInfo> list_tokens(soci::session &sql);

// Revokes token `id` inside the caller's transaction and records a WARNING
// event naming `actor`; not_found when there is no such token. Revoking a
// revoked token changes nothing and records nothing (`changed` false).
struct Revocation {
  TokenInfo token;
  bool changed = false;
};
Result<Revocation> revoke_token(soci::session &sql, std::int64_t id, const std::string &actor,
                                const std::string &instance);

// Writes `last_used_at` of the tokens in `uses` (id, ISO 8601 time).
void record_token_uses(soci::session &sql,
                       const std::vector<std::pair<std::int64_t, std::string>> &uses);

nlohmann::json to_json(const TokenInfo &token);

// The bearer token inside an Authorization header value, or nullopt when the
// value is not "Bearer <token>" (the scheme compares case-insensitively).
std::optional<std::string_view> bearer_token(std::string_view authorization);

// How a digest the registry does not hold is looked up (docs/architecture.md).
struct TokenLookupLimits {
  // Digests looked up in the database at once; a miss past it is refused as
  // unavailable (503), so garbage tokens cannot become a database storm.
  std::size_t concurrent_lookups = 8;
  // Digests found unknown, answered from memory for `miss_ttl` (the oldest
  // is forgotten past `remembered_misses`). A token created later has a new
  // random digest, so it is never among them.
  std::size_t remembered_misses = 10000;
  std::chrono::milliseconds miss_ttl{10000};
};

// Every live token, by digest, held in memory: reloaded whole at start-up
// and every second (so a token revoked anywhere is refused within about a
// second), and a digest it does not hold is looked up in the database at
// once (so a token works the moment `usher token create` returns).
class TokenRegistry {
public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // The principal, nullopt for an unknown or revoked token, or an error
  // (unavailable) when the lookup could not be made.
  using Resolved = std::function<void(const Result<std::optional<Principal>> &)>;
  // Runs `lookup` with a database session off the caller's thread; false
  // when it cannot be queued. `failed` runs instead when the session cannot
  // be opened or `lookup` throws.
  using Runner = std::function<bool(std::function<void(soci::session &)> lookup,
                                    std::function<void()> failed)>;

  explicit TokenRegistry(
      TokenLookupLimits limits = {}, Clock clock = [] { return std::chrono::steady_clock::now(); });

  // From memory only.
  std::optional<Principal> find(const std::string &token_hash) const;

  // Answers `resolved` for a digest: from memory when it can (a live token,
  // or a digest found unknown within miss_ttl), else by a point lookup of
  // that digest through `run`, one per digest at a time (callers asking
  // meanwhile get its answer too). `resolved` may run on the calling thread.
  void resolve(const std::string &token_hash, const Runner &run, Resolved resolved);

  // Replaces the live tokens with those in the database.
  void reload(soci::session &sql);

  // Drops a revoked token at once (other instances drop it on their reload).
  void forget(std::int64_t token_id);

  // Notes that `token_id` was used; a use is kept for writing at most once a
  // `k_last_used_resolution` per token, so `last used` costs no write per
  // request.
  void note_use(std::int64_t token_id);
  // The uses noted since the last call (id, ISO 8601 time), to write.
  std::vector<std::pair<std::int64_t, std::string>> take_uses();

  static constexpr std::chrono::minutes k_last_used_resolution{1};

  // Lookups running now (for tests).
  std::size_t lookups_in_flight() const;

private:
  void finish_lookup(const std::string &token_hash, const Result<std::optional<Principal>> &found);

  const TokenLookupLimits m_limits;
  const Clock m_clock;
  mutable std::shared_mutex m_mutex;
  std::unordered_map<std::string, Principal> m_by_hash;
  std::unordered_map<std::string, std::vector<Resolved>> m_in_flight;
  // Unknown digests with when they may be looked up again, oldest first.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> m_misses;
  std::deque<std::string> m_miss_order;
  std::mutex m_uses_mutex;
  // When each token's use was last noted, and the uses not written yet.
  std::unordered_map<std::int64_t, std::chrono::steady_clock::time_point> m_noted;
  std::vector<std::pair<std::int64_t, std::string>> m_unwritten;
};

} // namespace usher::auth
