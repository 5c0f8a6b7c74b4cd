// Bounds how long a PostgreSQL round trip may block a thread. A server that
// stops answering (a hung host, a frozen process, a silent network) is not
// covered by statement_timeout (the server enforces it) nor by TCP (the
// kernel may keep acknowledging): libpq would wait for ever. While a guard is
// armed, the watchdog thread shuts the session's socket down once the limit
// passes, so the blocked call fails with a connection error that the owner
// handles like any other (503, drop the session, reconnect next time).
// Deadlines are read from an injectable clock::Clock, so the unit tests
// (tests/unit/stall_watchdog_test.cpp) move time instead of waiting for it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

#include <soci/soci.h>

#include <usher/util/clock.hpp>

namespace usher::store {

class StallWatchdog {
public:
  // `clock` must outlive the watchdog.
  explicit StallWatchdog(const clock::Clock &clock = clock::system_clock()) : m_clock(clock) {}
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog &) = delete;
  StallWatchdog &operator=(const StallWatchdog &) = delete;

  // Armed from construction to destruction (or disarm()); fired() says
  // whether the watchdog cut the connection. A guard on a session that is
  // not PostgreSQL's (or on no watchdog) does nothing.
  class Guard {
  public:
    Guard() = default;
    Guard(StallWatchdog *watchdog, std::uint64_t id) : m_watchdog(watchdog), m_id(id) {}
    Guard(Guard &&other) noexcept;
    Guard &operator=(Guard &&other) noexcept;
    ~Guard() { disarm(); }
    // Once it returns the watchdog no longer touches the session. True when
    // the watchdog had cut the connection.
    bool disarm();
    // The limit counts again from now: for a caller whose work is a series
    // of round trips (the writer's batch), the bound applies to each step's
    // progress, not to the whole, so a server that answers slowly is not cut
    // while one that stops answering still is, `limit` after its last
    // answer. False (and nothing changes) when the watchdog had already cut
    // the connection; an empty or disarmed guard stays as it is.
    bool extend(std::chrono::milliseconds limit);

  private:
    StallWatchdog *m_watchdog = nullptr;
    std::uint64_t m_id = 0;
    bool m_fired = false;
  };

  Guard arm(soci::session &sql, std::chrono::milliseconds limit);
  // The same on a socket: shut down once `limit` has passed on the clock
  // (arm() uses the session's socket; tests use a socketpair).
  Guard arm_socket(int fd, std::chrono::milliseconds limit);

  // One pass of the watchdog thread, now: shuts down the socket of every
  // armed guard whose limit has passed; returns how many it cut. The thread
  // does this by itself; tests call it after moving their clock.
  std::size_t fire_expired();

private:
  struct Entry {
    int fd;
    std::chrono::steady_clock::time_point deadline;
    bool fired = false;
  };
  void run();
  bool release(std::uint64_t id);
  bool extend(std::uint64_t id, std::chrono::milliseconds limit);
  // Under m_mutex: fire_expired(), and when the next deadline falls.
  std::size_t fire_expired_locked(std::chrono::steady_clock::time_point &next);

  const clock::Clock &m_clock;

  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::map<std::uint64_t, Entry> m_armed;
  std::uint64_t m_next_id = 1;
  bool m_stopping = false;
  std::thread m_thread; // started on the first arm()
};

} // namespace usher::store
