#include <usher/idempotency/idempotency.hpp>

#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>

namespace usher::idempotency {
namespace {

constexpr const char *k_find_key =
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys "
    "WHERE token_id = :token_id AND idempotency_key = :key";

constexpr const char *k_insert_key =
    "INSERT INTO idempotency_keys (token_id, idempotency_key, fingerprint, status_code, "
    "response_body, created_at) VALUES (:token_id, :key, :fp, :status, :body, :now) "
    "ON CONFLICT DO NOTHING RETURNING id";

constexpr const char *k_prune_keys = "DELETE FROM idempotency_keys WHERE created_at < :cutoff";

} // namespace

Result<std::string> parse_key(std::string_view header) {
  if (header.empty() || header.size() > k_max_key) {
    return fail(ErrorKind::invalid, "idempotency_key_invalid",
                "Idempotency-Key must be 1 to 255 characters", "Idempotency-Key");
  }
  for (const char c : header) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x21 || b > 0x7E) {
      return fail(ErrorKind::invalid, "idempotency_key_invalid",
                  "Idempotency-Key must be visible ASCII characters", "Idempotency-Key");
    }
  }
  return std::string(header);
}

std::string fingerprint(const nlohmann::json &body) { return crypto::sha256_hex(body.dump()); }

Result<std::optional<StoredResponse>> find(soci::session &sql, std::int64_t token_id,
                                           const std::string &key, const std::string &fp) {
  const long long id = token_id;
  std::string stored_fp;
  StoredResponse response;
  sql << k_find_key, soci::use(id), soci::use(key), soci::into(stored_fp),
      soci::into(response.status), soci::into(response.body);
  if (!sql.got_data()) return std::optional<StoredResponse>{};
  if (stored_fp != fp) {
    return fail(ErrorKind::unprocessable, "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body", "Idempotency-Key");
  }
  return std::optional<StoredResponse>{std::move(response)};
}

bool store(soci::session &sql, std::int64_t token_id, const std::string &key, const std::string &fp,
           const StoredResponse &response) {
  const long long id = token_id;
  const std::string now = clock::now_iso8601();
  long long row_id = 0;
  sql << k_insert_key, soci::use(id), soci::use(key), soci::use(fp), soci::use(response.status),
      soci::use(response.body), soci::use(now), soci::into(row_id);
  return sql.got_data();
}

void replace(soci::session &sql, std::int64_t token_id, const std::string &key,
             const StoredResponse &response) {
  const long long id = token_id;
  sql << "UPDATE idempotency_keys SET status_code = :status, response_body = :body "
         "WHERE token_id = :token_id AND idempotency_key = :key",
      soci::use(response.status), soci::use(response.body), soci::use(id), soci::use(key);
}

long long prune(soci::session &sql, const std::string &cutoff) {
  soci::statement st = (sql.prepare << k_prune_keys, soci::use(cutoff));
  st.execute(true);
  return st.get_affected_rows();
}

bool InFlight::begin(std::int64_t token_id, const std::string &key) {
  std::lock_guard lock(m_mutex);
  return m_keys.emplace(token_id, key).second;
}

void InFlight::end(std::int64_t token_id, const std::string &key) {
  std::lock_guard lock(m_mutex);
  m_keys.erase({token_id, key});
}

} // namespace usher::idempotency
