#include <usher/redis/job_stream.hpp>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include <usher/util/clock.hpp>

namespace usher::redis {
namespace {

// The server's clock decides what is due, so instances with skewed clocks agree.
constexpr const char *k_now_ms = "local t = redis.call('TIME') "
                                 "local now = tonumber(t[1]) * 1000 + "
                                 "math.floor(tonumber(t[2]) / 1000) ";

// KEYS: known, stream, delayed. ARGV: job id, run_at_ms.
const std::string k_dispatch = std::string("if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then "
                                           "return 0 end ") +
                               k_now_ms +
                               "if tonumber(ARGV[2]) > now then "
                               "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) "
                               "else redis.call('XADD', KEYS[2], '*', 'job', ARGV[1]) end "
                               "return 1";

// KEYS: delayed, stream. ARGV: limit.
const std::string k_promote =
    std::string(k_now_ms) +
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1]) "
    "for _, id in ipairs(ids) do "
    "redis.call('ZREM', KEYS[1], id) redis.call('XADD', KEYS[2], '*', 'job', id) end "
    "return #ids";

// KEYS: stream, known. ARGV: group, entry id ('' for none), job id. A
// flushed Redis has no group: XACK's error is ignored.
const std::string k_acknowledge = "if ARGV[2] ~= '' then "
                                  "redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2]) "
                                  "redis.call('XDEL', KEYS[1], ARGV[2]) end "
                                  "redis.call('SREM', KEYS[2], ARGV[3]) return 1";

// KEYS: stream, delayed. ARGV: group, entry id, job id, run_at_ms.
const std::string k_reschedule = "if ARGV[2] ~= '' then "
                                 "redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2]) "
                                 "redis.call('XDEL', KEYS[1], ARGV[2]) end "
                                 "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) return 1";

Error script_error(const Reply &reply) {
  return Error{ErrorKind::unavailable, "redis_error", "Redis answered: " + reply.text, ""};
}

std::optional<std::int64_t> parse_id(const std::string &text) {
  std::int64_t id = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || ptr != text.data() + text.size() || id <= 0) return std::nullopt;
  return id;
}

// Entries of an XREADGROUP or XAUTOCLAIM reply: [[id, [field, value, ...]], ...].
void collect_entries(const Reply &entries, std::vector<Delivery> &out) {
  for (const auto &entry : entries.elements) {
    if (entry.elements.size() < 2) continue;
    const Reply &fields = entry.elements[1];
    Delivery delivery;
    delivery.entry_id = entry.elements[0].text;
    for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      if (fields.elements[i].text == "job") {
        if (auto id = parse_id(fields.elements[i + 1].text)) delivery.job_id = *id;
      }
    }
    // An entry without a job id is not ours to run; it is acknowledged away.
    out.push_back(std::move(delivery));
  }
}

bool is_nogroup(const Reply &reply) {
  return reply.is_error() && reply.text.rfind("NOGROUP", 0) == 0;
}

} // namespace

StreamKeys StreamKeys::with_prefix(const std::string &prefix) {
  return StreamKeys{prefix + "jobs", prefix + "known", prefix + "delayed", "workers"};
}

JobStream::JobStream(StreamKeys keys)
    : m_keys(std::move(keys)), m_dispatch(k_dispatch), m_promote(k_promote),
      m_acknowledge(k_acknowledge), m_reschedule(k_reschedule) {}

Result<std::vector<bool>> JobStream::dispatch(Connection &redis,
                                              const std::vector<Dispatch> &jobs) const {
  std::vector<ScriptArgs> calls;
  calls.reserve(jobs.size());
  for (const auto &job : jobs) {
    calls.push_back({"3", m_keys.known, m_keys.stream, m_keys.delayed, std::to_string(job.job_id),
                     std::to_string(job.run_at_ms)});
  }
  auto replies = m_dispatch.run_each(redis, calls);
  if (!replies) return tl::unexpected(replies.error());
  std::vector<bool> added;
  added.reserve(replies->size());
  for (const auto &reply : *replies) {
    if (reply.is_error()) return tl::unexpected(script_error(reply));
    added.push_back(reply.integer == 1);
  }
  return added;
}

Result<long long> JobStream::promote_due(Connection &redis, int limit) const {
  auto reply = m_promote.run(redis, {"2", m_keys.delayed, m_keys.stream, std::to_string(limit)});
  if (!reply) return tl::unexpected(reply.error());
  if (reply->is_error()) return tl::unexpected(script_error(*reply));
  return reply->integer;
}

Result<void> JobStream::ensure_group(Connection &redis) const {
  auto reply = redis.run({"XGROUP", "CREATE", m_keys.stream, m_keys.group, "0", "MKSTREAM"});
  if (!reply) return tl::unexpected(reply.error());
  if (reply->is_error() && reply->text.rfind("BUSYGROUP", 0) != 0) {
    return tl::unexpected(script_error(*reply));
  }
  return {};
}

Result<std::vector<Delivery>> JobStream::read(Connection &redis, const std::string &consumer,
                                              int count, std::chrono::milliseconds block) const {
  // BLOCK 0 would wait for ever: the shortest wait is 1 ms.
  block = std::max(block, std::chrono::milliseconds(1));
  const Command command{"XREADGROUP", "GROUP",
                        m_keys.group, consumer,
                        "COUNT",      std::to_string(count),
                        "BLOCK",      std::to_string(block.count()),
                        "STREAMS",    m_keys.stream,
                        ">"};
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto reply = redis.run(command, block + redis.timeouts().command);
    if (!reply) return tl::unexpected(reply.error());
    if (is_nogroup(*reply)) {
      // A new or flushed Redis: make the group, then read again once.
      if (auto made = ensure_group(redis); !made) return tl::unexpected(made.error());
      continue;
    }
    if (reply->is_error()) return tl::unexpected(script_error(*reply));
    std::vector<Delivery> deliveries;
    for (const auto &stream : reply->elements) {
      if (stream.elements.size() >= 2) collect_entries(stream.elements[1], deliveries);
    }
    return deliveries;
  }
  return std::vector<Delivery>{};
}

Result<std::vector<Delivery>> JobStream::reclaim_idle(Connection &redis,
                                                      const std::string &consumer,
                                                      std::chrono::milliseconds min_idle,
                                                      int count) const {
  auto reply = redis.run({"XAUTOCLAIM", m_keys.stream, m_keys.group, consumer,
                          std::to_string(min_idle.count()), "0-0", "COUNT", std::to_string(count)});
  if (!reply) return tl::unexpected(reply.error());
  if (is_nogroup(*reply)) return std::vector<Delivery>{};
  if (reply->is_error()) return tl::unexpected(script_error(*reply));
  std::vector<Delivery> deliveries;
  if (reply->elements.size() >= 2) collect_entries(reply->elements[1], deliveries);
  return deliveries;
}

Result<void> JobStream::acknowledge(Connection &redis,
                                    const std::vector<Delivery> &deliveries) const {
  if (deliveries.empty()) return {};
  std::vector<ScriptArgs> calls;
  calls.reserve(deliveries.size());
  for (const auto &d : deliveries) {
    calls.push_back(
        {"2", m_keys.stream, m_keys.known, m_keys.group, d.entry_id, std::to_string(d.job_id)});
  }
  auto replies = m_acknowledge.run_each(redis, calls);
  if (!replies) return tl::unexpected(replies.error());
  for (const auto &reply : *replies) {
    if (reply.is_error()) return tl::unexpected(script_error(reply));
  }
  return {};
}

Result<void> JobStream::reschedule(Connection &redis, const Delivery &delivery,
                                   std::int64_t run_at_ms) const {
  auto reply =
      m_reschedule.run(redis, {"2", m_keys.stream, m_keys.delayed, m_keys.group, delivery.entry_id,
                               std::to_string(delivery.job_id), std::to_string(run_at_ms)});
  if (!reply) return tl::unexpected(reply.error());
  if (reply->is_error()) return tl::unexpected(script_error(*reply));
  return {};
}

Result<long long> JobStream::forget_idle_consumers(Connection &redis,
                                                   std::chrono::milliseconds idle) const {
  auto reply = redis.run({"XINFO", "CONSUMERS", m_keys.stream, m_keys.group});
  if (!reply) return tl::unexpected(reply.error());
  if (reply->is_error()) return 0; // no stream or no group yet: nothing to forget
  long long forgotten = 0;
  for (const auto &consumer : reply->elements) {
    // A flat list of field, value pairs: name, pending, idle (and inactive on 7.2+).
    std::string name;
    long long pending = -1, idle_ms = -1;
    for (std::size_t i = 0; i + 1 < consumer.elements.size(); i += 2) {
      const auto &field = consumer.elements[i].text;
      const auto &value = consumer.elements[i + 1];
      if (field == "name") name = value.text;
      if (field == "pending") pending = value.integer;
      if (field == "idle") idle_ms = value.integer;
    }
    if (name.empty() || pending != 0 || idle_ms < idle.count()) continue;
    auto deleted = redis.run({"XGROUP", "DELCONSUMER", m_keys.stream, m_keys.group, name});
    if (!deleted) return tl::unexpected(deleted.error());
    if (!deleted->is_error()) ++forgotten;
  }
  return forgotten;
}

std::int64_t unix_ms(const std::string &iso8601) {
  const auto parsed = clock::parse_iso8601(iso8601);
  if (!parsed) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(parsed->time_since_epoch()).count();
}

} // namespace usher::redis
