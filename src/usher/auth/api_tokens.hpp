// API tokens: created once (the clear token is shown once and never stored),
// kept as SHA-256 digests, checked from memory on every request.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <soci/soci.h>

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

// The bearer token inside an Authorization header value, or nullopt when the
// value is not "Bearer <token>" (the scheme compares case-insensitively).
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Every live token, by digest, held in memory. A digest that is not there
// may be a token created since the last load: reload() at most once per
// `reload_interval`, so garbage tokens cannot turn into a database storm.
class TokenRegistry {
public:
  explicit TokenRegistry(std::chrono::milliseconds reload_interval = std::chrono::seconds(1));

  std::optional<Principal> find(const std::string &token_hash) const;

  // True when a miss may be answered by reloading now.
  bool reload_due() const;

  // Replaces the registry with the tokens in the database.
  void reload(soci::session &sql);

private:
  std::chrono::milliseconds m_reload_interval;
  mutable std::shared_mutex m_mutex;
  std::unordered_map<std::string, Principal> m_by_hash;
  std::chrono::steady_clock::time_point m_loaded_at{};
};

} // namespace usher::auth
