// A Lua script run by its SHA-1 (EVALSHA): a call sends 40 bytes instead of
// the script's text, and Redis does not hash the text again on every call.
// Redis forgets its scripts when it restarts or on SCRIPT FLUSH; a call it
// answers NOSCRIPT is sent once more by text (EVAL, which caches the script
// again), so the next calls find it.
#pragma once

#include <string>
#include <vector>

#include <usher/redis/connection.hpp>
#include <usher/util/error.hpp>

namespace usher::redis {

// What follows the script in EVAL: the number of keys, the keys, the arguments.
using ScriptArgs = std::vector<std::string>;

class Script {
public:
  // `text` is the Lua source; its SHA-1 is computed here, as Redis computes it.
  explicit Script(std::string text);

  const std::string &text() const { return m_text; }
  const std::string &sha1() const { return m_sha1; }

  // One call. An error reply of the script is a reply, as with Connection::run.
  Result<Reply> run(Connection &redis, const ScriptArgs &args) const;

  // One call per element of `calls` in one round trip (two when Redis had
  // forgotten the script); the replies in order.
  Result<std::vector<Reply>> run_each(Connection &redis,
                                      const std::vector<ScriptArgs> &calls) const;

private:
  std::string m_text;
  std::string m_sha1;
};

} // namespace usher::redis
