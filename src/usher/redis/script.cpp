#include <usher/redis/script.hpp>

#include <utility>

#include <openssl/sha.h>

#include <usher/util/text.hpp>

namespace usher::redis {
namespace {

// Lower-case hex SHA-1 of `source`: the name Redis gives a script. Not a
// security digest (util/crypto has those).
std::string sha1_hex(const std::string &source) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char *>(source.data()), source.size(), digest);
  return text::to_hex(std::string_view(reinterpret_cast<const char *>(digest), sizeof digest));
}

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

Script::Script(std::string text) : m_text(std::move(text)), m_sha1(sha1_hex(m_text)) {}

Result<Reply> Script::run(Connection &redis, const ScriptArgs &args) const {
  auto reply = redis.run(command("EVALSHA", m_sha1, args));
  if (!reply || !is_noscript(*reply)) return reply;
  // Not run: Redis restarted or flushed its scripts. Once by text, which loads it again.
  return redis.run(command("EVAL", m_text, args));
}

Result<std::vector<Reply>> Script::run_each(Connection &redis,
                                            const std::vector<ScriptArgs> &calls) const {
  std::vector<Command> commands;
  commands.reserve(calls.size());
  for (const auto &args : calls) commands.push_back(command("EVALSHA", m_sha1, args));
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
