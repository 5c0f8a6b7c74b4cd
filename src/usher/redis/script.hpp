// A Lua script run by its SHA-1 (EVALSHA): a call sends 40 bytes instead of
// the script's text, and Redis does not hash the text again on every call.
// The SHA-1 is the name Redis gives the script when it is first loaded
// (SCRIPT LOAD, once per process and script): usher does not hash it itself,
// so serve needs no SHA-1 of its own (OpenSSL's would initialise its
// providers, about 2 MiB resident; docs/benchmarks.md "Memory").
// Redis forgets its scripts when it restarts or on SCRIPT FLUSH; a call it
// answers NOSCRIPT is sent once more by text (EVAL, which caches the script
// again under the same SHA-1), so the next calls find it.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <usher/redis/connection.hpp>
#include <usher/util/error.hpp>

namespace usher::redis {

// What follows the script in EVAL: the number of keys, the keys, the arguments.
using ScriptArgs = std::vector<std::string>;

class Script {
public:
  // `text` is the Lua source.
  explicit Script(std::string text);

  const std::string &text() const { return m_text; }

  // One call. An error reply of the script is a reply, as with Connection::run.
  Result<Reply> run(Connection &redis, const ScriptArgs &args) const;

  // One call per element of `calls` in one round trip (two when Redis had
  // forgotten the script); the replies in order.
  Result<std::vector<Reply>> run_each(Connection &redis,
                                      const std::vector<ScriptArgs> &calls) const;

private:
  // The script's SHA-1, loaded into `redis` (SCRIPT LOAD) the first time.
  Result<std::string> sha1(Connection &redis) const;

  struct Known {
    std::mutex mutex;
    std::string sha1; // empty until Redis named it
  };
  std::string m_text;
  std::unique_ptr<Known> m_known = std::make_unique<Known>(); // shared by const calls
};

} // namespace usher::redis
