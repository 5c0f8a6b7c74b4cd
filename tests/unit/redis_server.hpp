// A real redis-server for unit tests: started on a free loopback port,
// killed when the object goes. Missing redis-server fails the test (CI
// must never skip what needs Redis); it is installed by scripts/install-deps.sh.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <usher/redis/connection.hpp>

extern char **environ;

namespace usher::testing {

class RedisServer {
public:
  RedisServer() : m_port(free_port()) { start(); }
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer &) = delete;
  RedisServer &operator=(const RedisServer &) = delete;

  std::uint16_t port() const { return m_port; }
  config::RedisEndpoint endpoint() const { return {"127.0.0.1", m_port, "", 0}; }

  void start() {
    const std::string port = std::to_string(m_port);
    const char *argv[] = {"redis-server", "--port",     port.c_str(),   "--bind", "127.0.0.1",
                          "--save",       "",           "--appendonly", "no",     "--daemonize",
                          "no",           "--loglevel", "warning",      nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const int spawned = posix_spawnp(&m_pid, "redis-server", &actions, nullptr,
                                     const_cast<char *const *>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      m_pid = 0;
      ADD_FAILURE() << "cannot start redis-server (scripts/install-deps.sh installs it)";
      return;
    }
    redis::Connection probe(endpoint(),
                            {std::chrono::milliseconds(100), std::chrono::milliseconds(500)});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto pong = probe.run({"PING"});
      if (pong && !pong->is_error()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "redis-server did not answer PING within 10 s";
  }

  // SIGKILL, as an outage.
  void kill() {
    if (m_pid <= 0) return;
    ::kill(m_pid, SIGKILL);
    int status = 0;
    waitpid(m_pid, &status, 0);
    m_pid = 0;
  }
  void pause() { ::kill(m_pid, SIGSTOP); }
  void resume() { ::kill(m_pid, SIGCONT); }

private:
  static std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
  }

  std::uint16_t m_port;
  pid_t m_pid = 0;
};

} // namespace usher::testing
