#include <usher/redis/connection.hpp>

#include <cerrno>
#include <memory>
#include <utility>

#include <poll.h>
#include <sys/time.h>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

namespace usher::redis {
namespace {

struct ReplyDeleter {
  void operator()(redisReply *reply) const { freeReplyObject(reply); }
};
using OwnedReply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Reply copy(const redisReply &raw) {
  Reply reply;
  switch (raw.type) {
  case REDIS_REPLY_STRING: reply.type = Reply::Type::string; break;
  case REDIS_REPLY_ARRAY: reply.type = Reply::Type::array; break;
  case REDIS_REPLY_INTEGER: reply.type = Reply::Type::integer; break;
  case REDIS_REPLY_STATUS: reply.type = Reply::Type::status; break;
  case REDIS_REPLY_ERROR: reply.type = Reply::Type::error; break;
  default: reply.type = Reply::Type::nil; break;
  }
  reply.integer = raw.integer;
  if (raw.str != nullptr) reply.text.assign(raw.str, raw.len);
  reply.elements.reserve(raw.elements);
  for (std::size_t i = 0; i < raw.elements; ++i) reply.elements.push_back(copy(*raw.element[i]));
  return reply;
}

// argv form of `command` (binary-safe), pointing into it.
struct Argv {
  explicit Argv(const Command &command) {
    pointers.reserve(command.size());
    lengths.reserve(command.size());
    for (const auto &part : command) {
      pointers.push_back(part.data());
      lengths.push_back(part.size());
    }
  }
  std::vector<const char *> pointers;
  std::vector<std::size_t> lengths;
};

} // namespace

Connection::Connection(config::RedisEndpoint endpoint, Timeouts timeouts)
    : m_endpoint(std::move(endpoint)), m_timeouts(timeouts) {}

Connection::~Connection() { close(); }

void Connection::close() {
  if (m_context != nullptr) redisFree(m_context);
  m_context = nullptr;
}

int Connection::fd() const { return m_context != nullptr ? m_context->fd : -1; }

Result<void> Connection::fail_and_close(const std::string &what) {
  std::string detail = what;
  if (m_context != nullptr && m_context->err != 0) {
    detail = fmt::format("{}: {}", what, m_context->errstr);
  }
  close();
  return fail(ErrorKind::unavailable, "redis_unavailable",
              fmt::format("Redis at {}:{}: {}", m_endpoint.host, m_endpoint.port, detail));
}

void Connection::set_timeout(std::chrono::milliseconds timeout) {
  redisSetTimeout(m_context, to_timeval(timeout));
}

Result<void> Connection::ensure_connected() {
  if (m_context != nullptr) return {};
  m_context = redisConnectWithTimeout(m_endpoint.host.c_str(), m_endpoint.port,
                                      to_timeval(m_timeouts.connect));
  if (m_context == nullptr) return fail_and_close("cannot allocate a connection");
  if (m_context->err != 0) return fail_and_close("connect");
  set_timeout(m_timeouts.command);
  if (!m_endpoint.password.empty()) {
    auto auth = run({"AUTH", m_endpoint.password});
    if (!auth) return tl::unexpected(auth.error());
    if (auth->is_error()) return fail_and_close("AUTH refused"); // never echo the password
  }
  if (m_endpoint.db != 0) {
    auto select = run({"SELECT", std::to_string(m_endpoint.db)});
    if (!select) return tl::unexpected(select.error());
    if (select->is_error()) return fail_and_close("SELECT " + select->text);
  }
  return {};
}

Result<Reply> Connection::run(const Command &command,
                              std::optional<std::chrono::milliseconds> timeout) {
  if (auto connected = ensure_connected(); !connected) return tl::unexpected(connected.error());
  if (timeout) set_timeout(*timeout);
  Argv argv(command);
  OwnedReply raw(
      static_cast<redisReply *>(redisCommandArgv(m_context, static_cast<int>(argv.pointers.size()),
                                                 argv.pointers.data(), argv.lengths.data())));
  if (!raw) return tl::unexpected(fail_and_close(command.empty() ? "" : command[0]).error());
  if (timeout) set_timeout(m_timeouts.command);
  return copy(*raw);
}

Result<std::vector<Reply>> Connection::pipeline(const std::vector<Command> &commands) {
  if (auto connected = ensure_connected(); !connected) return tl::unexpected(connected.error());
  for (const auto &command : commands) {
    Argv argv(command);
    if (redisAppendCommandArgv(m_context, static_cast<int>(argv.pointers.size()),
                               argv.pointers.data(), argv.lengths.data()) != REDIS_OK) {
      return tl::unexpected(fail_and_close("pipeline").error());
    }
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void *raw_reply = nullptr;
    if (redisGetReply(m_context, &raw_reply) != REDIS_OK || raw_reply == nullptr) {
      return tl::unexpected(fail_and_close("pipeline").error());
    }
    OwnedReply raw(static_cast<redisReply *>(raw_reply));
    replies.push_back(copy(*raw));
  }
  return replies;
}

Result<std::optional<Reply>> Connection::read_push(std::chrono::milliseconds timeout) {
  if (auto connected = ensure_connected(); !connected) return tl::unexpected(connected.error());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    void *raw_reply = nullptr;
    if (redisGetReplyFromReader(m_context, &raw_reply) != REDIS_OK) {
      return tl::unexpected(fail_and_close("read").error());
    }
    if (raw_reply != nullptr) {
      OwnedReply raw(static_cast<redisReply *>(raw_reply));
      return std::optional<Reply>(copy(*raw));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<Reply>();
    pollfd poll_fd{m_context->fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return tl::unexpected(fail_and_close("poll").error());
    if (ready == 0) return std::optional<Reply>();
    if (redisBufferRead(m_context) != REDIS_OK) {
      return tl::unexpected(fail_and_close("read").error());
    }
  }
}

} // namespace usher::redis
