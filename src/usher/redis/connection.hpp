// One synchronous Redis connection (hiredis 0.14, RESP2), used by one thread
// at a time. Every command has a timeout; a connection that fails or times
// out is closed (hiredis cannot resume it) and the next call reconnects, so
// a restarted Redis is picked up without restarting usher.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <usher/config/config.hpp>
#include <usher/util/error.hpp>

struct redisContext;

namespace usher::redis {

// A reply, copied out of hiredis. An error reply ("-ERR ...") is a reply,
// not a failure: only I/O, timeouts and protocol errors fail a call.
struct Reply {
  enum class Type { nil, status, error, integer, string, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string text; // status, error and string replies
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }
};

struct Timeouts {
  std::chrono::milliseconds connect{100};
  std::chrono::milliseconds command{100};
};

using Command = std::vector<std::string>;

class Connection {
public:
  Connection(config::RedisEndpoint endpoint, Timeouts timeouts);
  ~Connection();
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;

  // One command; `timeout` replaces the command timeout for this call (a
  // blocking XREADGROUP waits longer than a normal command).
  Result<Reply> run(const Command &command,
                    std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Several commands in one round trip; the replies in order.
  Result<std::vector<Reply>> pipeline(const std::vector<Command> &commands);

  // The socket, for a subscriber that polls it (-1 when not connected).
  int fd() const;
  // Connects now (AUTH and SELECT included) unless connected.
  Result<void> ensure_connected();
  // Reads one pushed reply (pub/sub), waiting at most `timeout`; nullopt
  // when nothing arrived in time (the connection stays usable).
  Result<std::optional<Reply>> read_push(std::chrono::milliseconds timeout);

  void close();
  const Timeouts &timeouts() const { return m_timeouts; }
  bool connected() const { return m_context != nullptr; }

private:
  Result<void> fail_and_close(const std::string &what);
  void set_timeout(std::chrono::milliseconds timeout);

  config::RedisEndpoint m_endpoint;
  Timeouts m_timeouts;
  redisContext *m_context = nullptr;
};

} // namespace usher::redis
