#include <usher/redis/channel.hpp>

#include <algorithm>

#include <spdlog/spdlog.h>

namespace usher::redis {
namespace {
constexpr std::size_t k_outbox_limit = 100;
constexpr auto k_poll = std::chrono::milliseconds(200);
constexpr auto k_max_backoff = std::chrono::milliseconds(2000);
} // namespace

Channel::Channel(config::RedisEndpoint endpoint, Timeouts timeouts, std::string name)
    : m_endpoint(std::move(endpoint)), m_timeouts(timeouts), m_name(std::move(name)) {}

Channel::~Channel() { stop(); }

void Channel::start(OnMessage on_message, OnSubscribed on_subscribed) {
  start_publisher();
  m_subscriber = std::thread(
      [this, on_message = std::move(on_message), on_subscribed = std::move(on_subscribed)] {
        run_subscriber(on_message, on_subscribed);
      });
}

void Channel::start_publisher() {
  if (!m_publisher.joinable()) m_publisher = std::thread([this] { run_publisher(); });
}

void Channel::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping.store(true);
  }
  m_wake.notify_all();
  if (m_subscriber.joinable()) m_subscriber.join();
  if (m_publisher.joinable()) m_publisher.join();
}

void Channel::publish(std::string payload) {
  {
    std::lock_guard lock(m_mutex);
    if (m_outbox.size() >= k_outbox_limit) m_outbox.pop_front();
    m_outbox.push_back(std::move(payload));
  }
  m_wake.notify_all();
}

void Channel::run_publisher() {
  Connection connection(m_endpoint, m_timeouts);
  for (;;) {
    std::string payload;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [this] { return m_stopping.load() || !m_outbox.empty(); });
      if (m_outbox.empty()) return;
      payload = std::move(m_outbox.front());
      m_outbox.pop_front();
    }
    // One retry on a fresh connection: a pooled one may predate a Redis restart.
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto sent = connection.run({"PUBLISH", m_name, payload});
      if (sent && !sent->is_error()) break;
      if (attempt == 1) {
        spdlog::warn("could not publish on {}: {}; other instances follow within their cache TTL",
                     m_name, sent ? sent->text : sent.error().detail);
      }
    }
  }
}

void Channel::run_subscriber(const OnMessage &on_message, const OnSubscribed &on_subscribed) {
  Connection connection(m_endpoint, m_timeouts);
  auto backoff = std::chrono::milliseconds(100);
  while (!m_stopping.load()) {
    if (!m_subscribed.load()) {
      auto reply = connection.run({"SUBSCRIBE", m_name});
      if (!reply || reply->is_error()) {
        connection.close();
        std::unique_lock lock(m_mutex);
        m_wake.wait_for(lock, backoff, [this] { return m_stopping.load(); });
        backoff = std::min(backoff * 2, k_max_backoff);
        continue;
      }
      m_subscribed.store(true);
      backoff = std::chrono::milliseconds(100);
      spdlog::info("subscribed to {}", m_name);
      if (on_subscribed) on_subscribed();
    }
    auto pushed = connection.read_push(k_poll);
    if (!pushed) {
      m_subscribed.store(false);
      spdlog::warn("subscription to {} lost, reconnecting: {}", m_name, pushed.error().detail);
      continue;
    }
    if (!*pushed) continue; // nothing within the poll: check for stop, wait again
    const Reply &message = **pushed;
    if (message.elements.size() == 3 && message.elements[0].text == "message" && on_message) {
      on_message(message.elements[2].text);
    }
  }
}

} // namespace usher::redis
