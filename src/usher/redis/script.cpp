#include <usher/redis/script.hpp>

#include <utility>

namespace usher::redis {
namespace {

bool is_noscript(const Reply &reply) {
  return reply.is_error() && reply.text.rfind("NOSCRIPT", 0) == 0;
}

// `verb` (EVALSHA or EVAL), the script's SHA-1 or text, then `args`.
Command command(const char *verb, const std::string &script, const ScriptArgs &args) {
  Command command;
  command.reserve(args.size() + 2);
  command.emplace_back(verb);
  command.push_back(script);
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

} // namespace

Script::Script(std::string text) : m_text(std::move(text)) {}

Result<std::string> Script::sha1(Connection &redis) const {
  {
    std::lock_guard lock(m_known->mutex);
    if (!m_known->sha1.empty()) return m_known->sha1;
  }
  // Two threads may both load it the first time: Redis names a text the same
  // way each time, so the second answer is the first's.
  auto loaded = redis.run({"SCRIPT", "LOAD", m_text});
  if (!loaded) return tl::unexpected(loaded.error());
  if (loaded->is_error() || loaded->text.empty()) {
    return fail(ErrorKind::unavailable, "redis_error", "SCRIPT LOAD: " + loaded->text);
  }
  std::lock_guard lock(m_known->mutex);
  m_known->sha1 = loaded->text;
  return m_known->sha1;
}

Result<Reply> Script::run(Connection &redis, const ScriptArgs &args) const {
  const auto sha1 = this->sha1(redis);
  if (!sha1) return tl::unexpected(sha1.error());
  auto reply = redis.run(command("EVALSHA", *sha1, args));
  if (!reply || !is_noscript(*reply)) return reply;
  // Not run: Redis restarted or flushed its scripts. Once by text, which loads it again.
  return redis.run(command("EVAL", m_text, args));
}

Result<std::vector<Reply>> Script::run_each(Connection &redis,
                                            const std::vector<ScriptArgs> &calls) const {
  const auto sha1 = this->sha1(redis);
  if (!sha1) return tl::unexpected(sha1.error());
  std::vector<Command> commands;
  commands.reserve(calls.size());
  for (const auto &args : calls) commands.push_back(command("EVALSHA", *sha1, args));
  auto replies = redis.pipeline(commands);
  if (!replies) return replies;
  // Only the calls answered NOSCRIPT did not run (a flush can come between
  // two calls of one pipeline): those, and only those, are sent again by text.
  std::vector<std::size_t> missed;
  for (std::size_t i = 0; i < replies->size(); ++i) {
    if (is_noscript((*replies)[i])) missed.push_back(i);
  }
  if (missed.empty()) return replies;
  std::vector<Command> again;
  again.reserve(missed.size());
  for (const auto i : missed) again.push_back(command("EVAL", m_text, calls[i]));
  auto retried = redis.pipeline(again);
  if (!retried) return tl::unexpected(retried.error());
  for (std::size_t k = 0; k < missed.size(); ++k) (*replies)[missed[k]] = std::move((*retried)[k]);
  return replies;
}

} // namespace usher::redis
