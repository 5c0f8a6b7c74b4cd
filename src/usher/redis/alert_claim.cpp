// The outage alert claim in Redis (see alert_claim.hpp).
#include <usher/redis/alert_claim.hpp>

namespace usher::redis {
namespace {

// KEYS[1] the claim, ARGV[1] the holder, ARGV[2] milliseconds.
constexpr const char *k_keep = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                               "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
constexpr const char *k_release =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], 'resolved by ' .. ARGV[1], 'PX', ARGV[2]) return 1 end return 0";

Result<void> checked(const Result<Reply> &reply) {
  if (!reply) return tl::unexpected(reply.error());
  if (reply->is_error()) return fail(ErrorKind::unavailable, "redis_error", reply->text);
  return {};
}

} // namespace

std::string database_outage_key(const std::string &prefix) {
  return prefix + "alerts:database_outage";
}

AlertClaim::AlertClaim(config::RedisEndpoint endpoint, Timeouts timeouts, std::string key,
                       std::string holder)
    : m_connection(std::move(endpoint), timeouts), m_key(std::move(key)),
      m_holder(std::move(holder)), m_keep(k_keep), m_release(k_release) {}

Result<bool> AlertClaim::take(std::chrono::milliseconds ttl) {
  const auto reply =
      m_connection.run({"SET", m_key, m_holder, "NX", "PX", std::to_string(ttl.count())});
  if (auto ok = checked(reply); !ok) return tl::unexpected(ok.error());
  return !reply->is_nil();
}

Result<void> AlertClaim::keep(std::chrono::milliseconds ttl) {
  return checked(m_keep.run(m_connection, {"1", m_key, m_holder, std::to_string(ttl.count())}));
}

Result<void> AlertClaim::release(std::chrono::milliseconds grace) {
  return checked(
      m_release.run(m_connection, {"1", m_key, m_holder, std::to_string(grace.count())}));
}

Result<std::string> AlertClaim::holder() {
  const auto reply = m_connection.run({"GET", m_key});
  if (auto ok = checked(reply); !ok) return tl::unexpected(ok.error());
  return reply->is_nil() ? std::string() : reply->text;
}

} // namespace usher::redis
