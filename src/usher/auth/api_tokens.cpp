#include <usher/auth/api_tokens.hpp>

#include <mutex>

#include <fmt/format.h>

#include <usher/health/health_log.hpp>
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

// One digest, through the unique index on token_hash.
constexpr const char *k_select_live_token =
    "SELECT id, name, role FROM api_tokens WHERE token_hash = :hash AND revoked_at IS NULL";

constexpr const char *k_select_tokens =
    "SELECT id, name, role, created_at, last_used_at, revoked_at, revoked_by FROM api_tokens "
    "WHERE id > :after ORDER BY id LIMIT :limit";

constexpr const char *k_revoke_token =
    "UPDATE api_tokens SET revoked_at = :now, revoked_by = :actor "
    "WHERE id = :id AND revoked_at IS NULL";

constexpr const char *k_touch_token = "UPDATE api_tokens SET last_used_at = :at WHERE id = :id";

// Tokens read per statement by list_tokens (there are few; this bounds a page).
constexpr int k_token_page = 500;

std::optional<std::string> optional_text(const std::string &value, soci::indicator indicator) {
  if (indicator != soci::i_ok) return std::nullopt;
  return value;
}

std::vector<TokenInfo> select_tokens(soci::session &sql, long long after, int limit) {
  std::vector<TokenInfo> tokens;
  long long id = 0;
  std::string name, role, created_at, last_used_at, revoked_at, revoked_by;
  soci::indicator last_used_ind = soci::i_null, revoked_ind = soci::i_null,
                  revoked_by_ind = soci::i_null;
  soci::statement st =
      (sql.prepare << k_select_tokens, soci::use(after), soci::use(limit), soci::into(id),
       soci::into(name), soci::into(role), soci::into(created_at),
       soci::into(last_used_at, last_used_ind), soci::into(revoked_at, revoked_ind),
       soci::into(revoked_by, revoked_by_ind));
  st.execute();
  while (st.fetch()) {
    tokens.push_back(TokenInfo{id, name, parse_role(role).value_or(Role::sales_manager), created_at,
                               optional_text(last_used_at, last_used_ind),
                               optional_text(revoked_at, revoked_ind),
                               optional_text(revoked_by, revoked_by_ind)});
  }
  return tokens;
}

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

std::vector<TokenInfo> list_tokens(soci::session &sql) {
  std::vector<TokenInfo> tokens;
  for (;;) {
    auto page = select_tokens(sql, tokens.empty() ? 0 : tokens.back().id, k_token_page);
    const bool last = page.size() < static_cast<std::size_t>(k_token_page);
    tokens.insert(tokens.end(), page.begin(), page.end());
    if (last) return tokens;
  }
}

Result<Revocation> revoke_token(soci::session &sql, std::int64_t id, const std::string &actor,
                                const std::string &instance) {
  const long long token_id = id;
  const std::string now = clock::now_iso8601();
  soci::statement revoke =
      (sql.prepare << k_revoke_token, soci::use(now), soci::use(actor), soci::use(token_id));
  revoke.execute(true);
  const bool changed = revoke.get_affected_rows() > 0;
  auto found = select_tokens(sql, token_id - 1, 1);
  if (found.empty() || found.front().id != id) {
    return fail(ErrorKind::not_found, "token_not_found", fmt::format("no API token {}", id));
  }
  if (changed) {
    const TokenInfo &token = found.front();
    health::record(sql, health::EventType::warning,
                   fmt::format("API token {} (\"{}\", {}) revoked by {}", token.id, token.name,
                               to_string(token.role), actor),
                   {{"token_id", token.id},
                    {"name", token.name},
                    {"role", to_string(token.role)},
                    {"by", actor}},
                   instance);
  }
  return Revocation{found.front(), changed};
}

void record_token_uses(soci::session &sql,
                       const std::vector<std::pair<std::int64_t, std::string>> &uses) {
  for (const auto &[id, at] : uses) {
    const long long token_id = id;
    sql << k_touch_token, soci::use(at), soci::use(token_id);
  }
}

nlohmann::json to_json(const TokenInfo &token) {
  const auto optional = [](const std::optional<std::string> &value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  };
  return {{"id", token.id},
          {"name", token.name},
          {"role", to_string(token.role)},
          {"created_at", token.created_at},
          {"last_used_at", optional(token.last_used_at)},
          {"revoked_at", optional(token.revoked_at)},
          {"revoked_by", optional(token.revoked_by)}};
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

TokenRegistry::TokenRegistry(TokenLookupLimits limits, Clock clock)
    : m_limits(limits), m_clock(std::move(clock)) {}

std::optional<Principal> TokenRegistry::find(const std::string &token_hash) const {
  std::shared_lock lock(m_mutex);
  if (auto it = m_by_hash.find(token_hash); it != m_by_hash.end()) return it->second;
  return std::nullopt;
}

void TokenRegistry::resolve(const std::string &token_hash, const Runner &run, Resolved resolved) {
  {
    std::unique_lock lock(m_mutex);
    if (auto it = m_by_hash.find(token_hash); it != m_by_hash.end()) {
      const Principal principal = it->second;
      lock.unlock();
      return resolved(principal);
    }
    if (auto miss = m_misses.find(token_hash); miss != m_misses.end()) {
      if (m_clock() < miss->second) {
        lock.unlock();
        return resolved(std::nullopt);
      }
      m_misses.erase(miss); // expired; its place in m_miss_order is skipped later
    }
    if (auto waiting = m_in_flight.find(token_hash); waiting != m_in_flight.end()) {
      waiting->second.push_back(std::move(resolved));
      return;
    }
    if (m_in_flight.size() >= m_limits.concurrent_lookups) {
      lock.unlock();
      return resolved(fail(ErrorKind::unavailable, "unavailable",
                           "too many unknown tokens are being checked; retry shortly"));
    }
    m_in_flight[token_hash].push_back(std::move(resolved));
  }
  const auto unavailable = [this, token_hash] {
    finish_lookup(token_hash, fail(ErrorKind::unavailable, "database_unavailable",
                                   "the token could not be checked; retry shortly"));
  };
  const bool queued = run(
      [this, token_hash](soci::session &sql) {
        long long id = 0;
        std::string name, role;
        soci::indicator found = soci::i_null;
        sql << k_select_live_token, soci::use(token_hash), soci::into(id, found), soci::into(name),
            soci::into(role);
        std::optional<Principal> principal;
        if (sql.got_data() && found == soci::i_ok) {
          principal = Principal{id, name, parse_role(role).value_or(Role::sales_manager)};
        }
        finish_lookup(token_hash, principal);
      },
      unavailable);
  if (!queued) unavailable();
}

void TokenRegistry::finish_lookup(const std::string &token_hash,
                                  const Result<std::optional<Principal>> &found) {
  std::vector<Resolved> waiting;
  {
    std::unique_lock lock(m_mutex);
    auto it = m_in_flight.find(token_hash);
    if (it == m_in_flight.end()) return; // answered already (a waiter threw, then `failed` ran)
    waiting = std::move(it->second);
    m_in_flight.erase(it);
    if (found && *found) {
      m_by_hash[token_hash] = **found;
    } else if (found) {
      while (m_misses.size() >= m_limits.remembered_misses && !m_miss_order.empty()) {
        m_misses.erase(m_miss_order.front());
        m_miss_order.pop_front();
      }
      // Expired entries leave m_misses early; the order may name them still.
      while (m_miss_order.size() > 2 * m_limits.remembered_misses) m_miss_order.pop_front();
      m_misses[token_hash] = m_clock() + m_limits.miss_ttl;
      m_miss_order.push_back(token_hash);
    }
  }
  for (auto &resolved : waiting) resolved(found);
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
}

void TokenRegistry::forget(std::int64_t token_id) {
  std::unique_lock lock(m_mutex);
  std::erase_if(m_by_hash,
                [token_id](const auto &entry) { return entry.second.token_id == token_id; });
}

void TokenRegistry::note_use(std::int64_t token_id) {
  const auto now = m_clock();
  std::lock_guard lock(m_uses_mutex);
  auto [noted, first] = m_noted.try_emplace(token_id, now);
  if (!first) {
    if (now - noted->second < k_last_used_resolution) return;
    noted->second = now;
  }
  m_unwritten.emplace_back(token_id, clock::now_iso8601());
}

std::vector<std::pair<std::int64_t, std::string>> TokenRegistry::take_uses() {
  std::lock_guard lock(m_uses_mutex);
  return std::exchange(m_unwritten, {});
}

std::size_t TokenRegistry::lookups_in_flight() const {
  std::shared_lock lock(m_mutex);
  return m_in_flight.size();
}

} // namespace usher::auth
