#include <usher/auth/api_tokens.hpp>

#include <mutex>

#include <fmt/format.h>

#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/text.hpp>

namespace usher::auth {
namespace {

constexpr const char *k_insert_token =
    "INSERT INTO api_tokens (name, role, token_hash, created_at) "
    "VALUES (:name, :role, :hash, :created_at) RETURNING id";

constexpr const char *k_select_live_tokens =
    "SELECT id, name, role, token_hash FROM api_tokens WHERE revoked_at IS NULL";

} // namespace

const char *to_string(Role role) { return role == Role::admin ? "admin" : "sales_manager"; }

std::optional<Role> parse_role(std::string_view text) {
  if (text == "admin") return Role::admin;
  if (text == "sales_manager") return Role::sales_manager;
  return std::nullopt;
}

std::string Principal::actor() const { return fmt::format("{} (token {})", name, token_id); }

CreatedToken create_token(soci::session &sql, Role role, const std::string &name) {
  CreatedToken created;
  created.token = crypto::random_token("usher_");
  const std::string hash = crypto::sha256_hex(created.token);
  const std::string role_text = to_string(role);
  const std::string now = clock::now_iso8601();
  long long id = 0;
  sql << k_insert_token, soci::use(name), soci::use(role_text), soci::use(hash), soci::use(now),
      soci::into(id);
  created.id = id;
  return created;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = text::trim(authorization);
  constexpr std::string_view k_scheme = "bearer";
  if (authorization.size() <= k_scheme.size() + 1) return std::nullopt;
  if (!text::iequals(authorization.substr(0, k_scheme.size()), k_scheme)) return std::nullopt;
  if (authorization[k_scheme.size()] != ' ') return std::nullopt;
  auto token = text::trim(authorization.substr(k_scheme.size() + 1));
  if (token.empty() || token.size() > 512) return std::nullopt;
  for (const char c : token) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return std::nullopt;
    }
  }
  return token;
}

TokenRegistry::TokenRegistry(std::chrono::milliseconds reload_interval)
    : m_reload_interval(reload_interval) {}

std::optional<Principal> TokenRegistry::find(const std::string &token_hash) const {
  std::shared_lock lock(m_mutex);
  if (auto it = m_by_hash.find(token_hash); it != m_by_hash.end()) return it->second;
  return std::nullopt;
}

bool TokenRegistry::reload_due() const {
  std::shared_lock lock(m_mutex);
  return std::chrono::steady_clock::now() - m_loaded_at >= m_reload_interval;
}

void TokenRegistry::reload(soci::session &sql) {
  std::unordered_map<std::string, Principal> loaded;
  long long id = 0;
  std::string name, role, hash;
  soci::statement st = (sql.prepare << k_select_live_tokens, soci::into(id), soci::into(name),
                        soci::into(role), soci::into(hash));
  st.execute();
  while (st.fetch()) {
    loaded[hash] = Principal{id, name, parse_role(role).value_or(Role::sales_manager)};
  }
  std::unique_lock lock(m_mutex);
  m_by_hash = std::move(loaded);
  m_loaded_at = std::chrono::steady_clock::now();
}

} // namespace usher::auth
