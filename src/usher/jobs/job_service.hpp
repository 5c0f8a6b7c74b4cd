// Jobs for callers that must not hold a database session (the HTTP API):
// one job (for its creator or an admin), the admin's list, counts and
// timelines, and the retry of a dead job, run on the BlockingPool and the
// WriteBatcher and completing with the values of jobs/job_store.hpp and
// jobs/timeline.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <usher/auth/api_tokens.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/jobs/timeline.hpp>
#include <usher/store/async.hpp>

namespace usher::jobs {

class JobService {
public:
  // Hands a job that is queued again to the queue (the queue's dispatch; a
  // failed hand-over leaves it to the queue's sweeper).
  using Requeue = std::function<void(std::int64_t job_id)>;

  JobService(store::BlockingPool &pool, store::WriteBatcher &writer, std::string instance,
             Requeue requeue)
      : m_pool(pool), m_writer(writer), m_instance(std::move(instance)),
        m_requeue(std::move(requeue)) {}

  // Job `id` when `viewer` is an admin or created it (job_not_found,
  // forbidden).
  void get(std::int64_t id, const auth::Principal &viewer, store::Completion<Job> done);
  void list(ListFilter filter, store::Completion<std::vector<Job>> done);
  // Queues dead job `id` again for `actor` and hands it to the queue.
  void retry(std::int64_t id, std::string actor, store::Completion<Job> done);
  void stats(store::Completion<QueueStats> done);
  // The timeline of job `id`, for an admin or its creator.
  void timeline(std::int64_t id, const auth::Principal &viewer, store::Completion<Timeline> done);
  // The timeline of the newest job for a normalised email.
  void timeline_for_email(std::string email_normalized, store::Completion<Timeline> done);

private:
  store::BlockingPool &m_pool;
  store::WriteBatcher &m_writer;
  std::string m_instance;
  Requeue m_requeue;
};

} // namespace usher::jobs
