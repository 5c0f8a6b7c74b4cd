// The embedded, database-backed job queue: the jobs table is the queue. A
// claim is one guarded UPDATE (queued and due -> running with a lease) that
// goes through the process's WriteBatcher like every other write; dispatch
// only wakes local workers, and other processes find the row by polling.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <usher/queue/job_queue.hpp>
#include <usher/store/write_batcher.hpp>

namespace usher::queue {

class EmbeddedQueue final : public JobQueue {
public:
  // `poll_interval` bounds how long a job queued by another process, or due
  // for a retry, waits for a claim.
  // `announce` (optional): called on every dispatch to tell other processes
  // (PostgreSQL without Redis: a coalesced NOTIFY, store::CoalescedNotify).
  EmbeddedQueue(store::WriteBatcher &writer, std::chrono::milliseconds poll_interval,
                std::function<void()> announce = {});

  // Another process queued a job (a notification): idle workers look now.
  void wake();

  void dispatch(std::int64_t job_id, Dispatched done) override;
  std::vector<jobs::ClaimedJob> claim(const std::string &owner, int max,
                                      std::chrono::milliseconds lease,
                                      std::chrono::milliseconds wait) override;
  void acknowledge(const std::vector<std::int64_t> &) override {}
  void interrupt() override;
  QueueHealth health() const override { return QueueHealth{"embedded", true, "closed"}; }

private:
  store::WriteBatcher &m_writer;
  std::chrono::milliseconds m_poll_interval;
  std::function<void()> m_announce;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::uint64_t m_dispatched = 0; // bumped by dispatch(): there may be work
  // Per claiming owner (one per worker thread, a bounded set): the dispatch
  // count at its last look, when it looks again without one, and whether its
  // last look found work.
  struct OwnerState {
    std::uint64_t seen = 0;
    std::chrono::steady_clock::time_point next_poll{};
    bool found_work = false;
  };
  std::map<std::string, OwnerState> m_owners;
  bool m_interrupted = false;
};

} // namespace usher::queue
