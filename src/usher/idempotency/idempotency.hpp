// Idempotency-Key (IETF draft semantics, SPEC §3): the first response to a
// key is stored with a fingerprint of the request body; a repeat with the
// same body replays it, another body is 422, and a repeat while the first is
// still in flight is 409. Keys are scoped to the API token.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/util/error.hpp>

namespace usher::idempotency {

inline constexpr std::size_t k_max_key = 255;

// Checks a header value: 1 to 255 visible ASCII characters (no spaces).
Result<std::string> parse_key(std::string_view header);

// A digest of the request body that ignores key order and whitespace.
std::string fingerprint(const nlohmann::json &body);

struct StoredResponse {
  int status = 0;
  std::string body;
};

// The stored response for (`token_id`, `key`); 422 when it was stored for
// another body; nullopt when the key is new.
Result<std::optional<StoredResponse>> find(soci::session &sql, std::int64_t token_id,
                                           const std::string &key, const std::string &fingerprint);

// Stores the first response in the caller's transaction; false when another
// request stored one meanwhile (the caller rolls back and answers 409).
bool store(soci::session &sql, std::int64_t token_id, const std::string &key,
           const std::string &fingerprint, const StoredResponse &response);

// Replaces the response stored for (`token_id`, `key`): the request ended
// differently from what was first stored (a queued job provisioned inline
// when the queue refused it).
void replace(soci::session &sql, std::int64_t token_id, const std::string &key,
             const StoredResponse &response);

// Deletes keys created before `cutoff` (ISO 8601); returns how many.
long long prune(soci::session &sql, const std::string &cutoff);

// Keys whose first request is still being processed in this process.
class InFlight {
public:
  // False when (`token_id`, `key`) is already in flight.
  bool begin(std::int64_t token_id, const std::string &key);
  void end(std::int64_t token_id, const std::string &key);

private:
  std::mutex m_mutex;
  std::set<std::pair<std::int64_t, std::string>> m_keys;
};

} // namespace usher::idempotency
