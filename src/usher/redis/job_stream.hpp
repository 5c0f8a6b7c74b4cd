// The Redis side of the job queue: a stream with one consumer group, a set
// of the job ids Redis holds and a sorted set of delayed retries, all under
// one key prefix (docs/architecture.md, "Redis queue"). Every operation that
// touches more than one key is one Lua script, so it is atomic.
//
//   {prefix}jobs      stream, entries {job: ID}; group "workers"
//   {prefix}known     set of job ids that have an entry in `jobs` or `delayed`
//                     (de-duplication: a job id is sent at most once)
//   {prefix}delayed   sorted set: job id scored by its retry time (ms)
//
// A finished delivery is XACKed and XDELed and its id leaves `known`, so
// Redis holds only unfinished work.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <usher/redis/connection.hpp>
#include <usher/redis/script.hpp>
#include <usher/util/error.hpp>

namespace usher::redis {

struct StreamKeys {
  std::string stream;
  std::string known;
  std::string delayed;
  std::string group = "workers";

  static StreamKeys with_prefix(const std::string &prefix);
};

// One delivered entry.
struct Delivery {
  std::string entry_id;
  std::int64_t job_id = 0;
};

// A job to send: due at `run_at_ms` (Unix ms; 0 or past: now).
struct Dispatch {
  std::int64_t job_id = 0;
  std::int64_t run_at_ms = 0;
};

class JobStream {
public:
  explicit JobStream(StreamKeys keys);

  const StreamKeys &keys() const { return m_keys; }

  // Sends jobs in one round trip; for each, whether it was new to Redis
  // (false: Redis already held it, nothing was added).
  Result<std::vector<bool>> dispatch(Connection &redis, const std::vector<Dispatch> &jobs) const;

  // Moves delayed jobs whose time has come into the stream; how many.
  Result<long long> promote_due(Connection &redis, int limit) const;

  // New entries for `consumer`, waiting up to `block` for one.
  Result<std::vector<Delivery>> read(Connection &redis, const std::string &consumer, int count,
                                     std::chrono::milliseconds block) const;

  // Entries delivered to any consumer and not acknowledged for `min_idle`
  // (a dead or stuck worker's), taken over by `consumer`.
  Result<std::vector<Delivery>> reclaim_idle(Connection &redis, const std::string &consumer,
                                             std::chrono::milliseconds min_idle, int count) const;

  // Finished: the entries go, and their jobs leave `known`. An empty
  // entry id only clears `known`.
  Result<void> acknowledge(Connection &redis, const std::vector<Delivery> &deliveries) const;

  // The entry goes and the job waits in `delayed` until `run_at_ms`.
  Result<void> reschedule(Connection &redis, const Delivery &delivery,
                          std::int64_t run_at_ms) const;

  // Removes consumers (one per worker thread of every process that ever
  // ran) idle longer than `idle` with nothing pending; how many.
  Result<long long> forget_idle_consumers(Connection &redis, std::chrono::milliseconds idle) const;

  // Creates the stream and its group when missing (a new or flushed Redis).
  Result<void> ensure_group(Connection &redis) const;

private:
  StreamKeys m_keys;
  Script m_dispatch;
  Script m_promote;
  Script m_acknowledge;
  Script m_reschedule;
};

// Unix milliseconds of an ISO 8601 UTC time (0 when it does not parse).
std::int64_t unix_ms(const std::string &iso8601);

} // namespace usher::redis
