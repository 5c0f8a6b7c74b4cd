// A Redis pub/sub channel: publish() from any thread (sent by a background
// thread, never blocking the caller) and a subscriber thread that calls
// `on_message` for every message. The subscriber reconnects after any
// failure (backoff up to 2 s) and calls `on_subscribed` every time it has
// (re)subscribed, so the owner can catch up on what it missed meanwhile.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <usher/config/config.hpp>
#include <usher/redis/connection.hpp>

namespace usher::redis {

class Channel {
public:
  using OnMessage = std::function<void(const std::string &payload)>;
  using OnSubscribed = std::function<void()>;

  Channel(config::RedisEndpoint endpoint, Timeouts timeouts, std::string name);
  ~Channel();
  Channel(const Channel &) = delete;
  Channel &operator=(const Channel &) = delete;

  // Starts the subscriber (and the publisher thread).
  void start(OnMessage on_message, OnSubscribed on_subscribed);
  // Starts only the publisher thread.
  void start_publisher();
  void stop();

  // Queues `payload` for publishing; dropped (with a warning) when Redis
  // is unreachable: subscribers then catch up through their cache TTL.
  void publish(std::string payload);

  bool subscribed() const { return m_subscribed.load(); }

private:
  void run_subscriber(const OnMessage &on_message, const OnSubscribed &on_subscribed);
  void run_publisher();

  config::RedisEndpoint m_endpoint;
  Timeouts m_timeouts;
  std::string m_name;
  std::atomic<bool> m_stopping{false};
  std::atomic<bool> m_subscribed{false};
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<std::string> m_outbox;
  std::thread m_subscriber;
  std::thread m_publisher;
};

// The channel on which every instance announces a change of the system
// mode (SPEC §5), and its message: "VERSION MODE" (subscribers reload the
// mode from the database; the message is for people watching the channel).
inline std::string mode_channel(const std::string &prefix) { return prefix + "mode"; }
inline std::string mode_message(std::int64_t version, const std::string &mode) {
  return std::to_string(version) + " " + mode;
}

} // namespace usher::redis
