// Which of several instances sharing one database sends the alert about an
// outage of that database (docs/alerts.md, "Database outage"). The first to
// take the claim (SET NX PX) sends the CRITICAL and, when the database
// answers again, the RESOLVED; it keeps the claim alive while the outage
// lasts, so that a claim whose holder died expires and another instance
// takes over. On release the key stays for a grace period, so that an
// instance that sees the database back a moment later does not open a new
// outage of its own.
#pragma once

#include <chrono>
#include <string>

#include <usher/config/config.hpp>
#include <usher/redis/connection.hpp>
#include <usher/redis/script.hpp>
#include <usher/util/error.hpp>

namespace usher::redis {

// The claim's key under the configured prefix.
std::string database_outage_key(const std::string &prefix);

class AlertClaim {
public:
  // `holder` names this process (unique among the instances: instance name
  // and process id).
  AlertClaim(config::RedisEndpoint endpoint, Timeouts timeouts, std::string key,
             std::string holder);

  // True when this process took the claim (nobody held it); false when
  // another holds it or it is in its grace period.
  Result<bool> take(std::chrono::milliseconds ttl);
  // Extends the claim to `ttl` from now when this process holds it.
  Result<void> keep(std::chrono::milliseconds ttl);
  // Marks the outage over when this process holds the claim: the key stays
  // `grace` longer with a value that no instance holds.
  Result<void> release(std::chrono::milliseconds grace);
  // Who holds the claim now ("" when nobody), for the log.
  Result<std::string> holder();

private:
  Connection m_connection;
  std::string m_key;
  std::string m_holder;
  Script m_keep;
  Script m_release;
};

} // namespace usher::redis
