// The seam through which the domain folders, never the HTTP handlers, use
// database sessions: work runs on the BlockingPool (reads) or in the
// WriteBatcher's next batch (writes) and completes, exactly once, with a
// domain value or an Error. Completions run on the pool's thread or the
// writer's completion thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <soci/soci.h>

#include <usher/store/blocking_pool.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/error.hpp>

namespace usher::store {

template <typename T>
using Completion = std::function<void(Result<T>)>;

// What a caller gets when the pool or the writer cannot take its work (queue
// full, stopping, or the database failed under it).
inline Error busy() {
  return Error{ErrorKind::unavailable, "unavailable",
               "usher cannot take this request right now; retry shortly", ""};
}

namespace detail {

// Calls `done` the first time only (a pool task that completed and then
// threw must not complete twice).
template <typename T>
class CompleteOnce {
public:
  explicit CompleteOnce(Completion<T> done) : m_done(std::move(done)) {}
  void operator()(Result<T> result) {
    if (!m_called.exchange(true)) m_done(std::move(result));
  }

private:
  Completion<T> m_done;
  std::atomic<bool> m_called{false};
};

} // namespace detail

// Runs `read` (Result<T>(soci::session &)) on a pool thread and completes
// with what it returns; busy() when the pool's queue is full, the session
// cannot be opened or `read` throws.
template <typename T, typename Read>
void read_async(BlockingPool &pool, Read read, Completion<T> done) {
  auto once = std::make_shared<detail::CompleteOnce<T>>(std::move(done));
  const bool queued =
      pool.submit([once, read = std::move(read)](soci::session &sql) { (*once)(read(sql)); },
                  [once] { (*once)(tl::unexpected(busy())); });
  if (!queued) (*once)(tl::unexpected(busy()));
}

// Runs `write` (Result<T>(WriteContext &)) in the writer's next batch and
// completes after the commit with what it returned. An error it returns
// rolls its own changes back (AbortWrite) and is the completion's error; so
// is a failed batch; busy() when the write queue is full.
template <typename T, typename Write>
void write_async(WriteBatcher &writer, Write write, Completion<T> done) {
  auto outcome = std::make_shared<std::optional<Result<T>>>();
  auto apply = [outcome, write = std::move(write)](WriteContext &context) {
    *outcome = write(context);
    if (!**outcome) throw AbortWrite((*outcome)->error());
  };
  auto finished = [outcome, done](const Result<void> &written) {
    if (!written) return done(tl::unexpected(written.error()));
    done(std::move(**outcome));
  };
  if (!writer.submit(std::move(apply), std::move(finished))) done(tl::unexpected(busy()));
}

// Pings the database from a pool thread: `done(true)` when it answered,
// `done(false)` when it failed or the session cannot be opened. False (and
// `done` never called) when the pool cannot take the probe.
inline bool probe_database(BlockingPool &pool, const std::function<void(bool ready)> &done) {
  return pool.submit(
      [done](soci::session &sql) {
        ping(sql);
        done(true);
      },
      [done] { done(false); });
}

} // namespace usher::store
