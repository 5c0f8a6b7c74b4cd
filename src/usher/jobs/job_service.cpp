#include <usher/jobs/job_service.hpp>

#include <optional>
#include <utility>

namespace usher::jobs {
namespace {

Error job_not_found(const char *detail) {
  return Error{ErrorKind::not_found, "job_not_found", detail, ""};
}

// Who may see a job: an admin, or the token that created it.
bool may_see(const auth::Principal &viewer,
             const std::optional<std::int64_t> &created_by_token_id) {
  return viewer.role == auth::Role::admin || created_by_token_id == viewer.token_id;
}

Error not_theirs() {
  return Error{ErrorKind::forbidden, "forbidden", "only the job's creator or an admin may see it",
               ""};
}

} // namespace

void JobService::get(std::int64_t id, const auth::Principal &viewer, store::Completion<Job> done) {
  store::read_async<Job>(
      m_pool,
      [id, viewer](soci::session &sql) -> Result<Job> {
        auto job = find(sql, id);
        if (!job) return tl::unexpected(job_not_found("no job with that id"));
        if (!may_see(viewer, job->created_by_token_id)) return tl::unexpected(not_theirs());
        return std::move(*job);
      },
      std::move(done));
}

void JobService::list(ListFilter filter, store::Completion<std::vector<Job>> done) {
  store::read_async<std::vector<Job>>(
      m_pool,
      [filter](soci::session &sql) { return Result<std::vector<Job>>(jobs::list(sql, filter)); },
      std::move(done));
}

void JobService::retry(std::int64_t id, std::string actor, store::Completion<Job> done) {
  store::write_async<Job>(
      m_writer,
      [id, actor = std::move(actor), instance = m_instance](store::WriteContext &context) {
        return retry_dead(context.sql(), id, actor, instance);
      },
      [this, id, done = std::move(done)](Result<Job> retried) {
        if (retried && m_requeue) m_requeue(id);
        done(std::move(retried));
      });
}

void JobService::stats(store::Completion<QueueStats> done) {
  store::read_async<QueueStats>(
      m_pool, [](soci::session &sql) { return Result<QueueStats>(jobs::stats(sql)); },
      std::move(done));
}

void JobService::timeline(std::int64_t id, const auth::Principal &viewer,
                          store::Completion<Timeline> done) {
  store::read_async<Timeline>(
      m_pool,
      [id, viewer](soci::session &sql) -> Result<Timeline> {
        auto found = jobs::timeline(sql, id);
        if (!found) return tl::unexpected(job_not_found("no job with that id"));
        if (!may_see(viewer, found->job.created_by_token_id)) return tl::unexpected(not_theirs());
        return std::move(*found);
      },
      std::move(done));
}

void JobService::timeline_for_email(std::string email_normalized,
                                    store::Completion<Timeline> done) {
  store::read_async<Timeline>(
      m_pool,
      [email = std::move(email_normalized)](soci::session &sql) -> Result<Timeline> {
        const auto id = newest_job_for_email(sql, email);
        auto found = id ? jobs::timeline(sql, *id) : std::nullopt;
        if (!found) return tl::unexpected(job_not_found("no request for that email"));
        return std::move(*found);
      },
      std::move(done));
}

} // namespace usher::jobs
