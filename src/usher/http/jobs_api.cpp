// Jobs: GET /api/v1/jobs/{id} for its creator or an admin, and the admin's
// view of the queue (list, retry a dead job, counts).
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/jobs/job_service.hpp>
#include <usher/jobs/job_store.hpp>

namespace usher::http {
namespace {

std::int64_t id_param(const std::string &text) {
  std::int64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id);
  return id;
}

Result<jobs::ListFilter> parse_job_filter(const std::optional<NameValues> &query) {
  auto bad = [](const char *name, const char *why) {
    return tl::unexpected(
        Error{ErrorKind::invalid, "query_invalid", std::string(name) + " " + why, name});
  };
  if (!query) return bad("query", "is not a valid query string");
  jobs::ListFilter filter;
  for (const auto &[name_view, value_view] : *query) {
    const std::string name(name_view);
    const std::string value(value_view);
    long long number = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    const bool is_number = ec == std::errc{} && ptr == value.data() + value.size() && number > 0;
    if (name == "status") {
      filter.status = jobs::parse_status(value);
      if (!filter.status) return bad("status", "must be queued, running, succeeded or dead");
    } else if (name == "limit") {
      if (!is_number || number > 500) return bad("limit", "must be 1 to 500");
      filter.limit = static_cast<int>(number);
    } else if (name == "before_id") {
      if (!is_number) return bad("before_id", "must be a positive id");
      filter.before_id = number;
    } else {
      return tl::unexpected(
          Error{ErrorKind::invalid, "unknown_field", "unknown query parameter", "query"});
    }
  }
  return filter;
}

Response job_response(const jobs::Job &job) { return json_response(200, job.to_json()); }

} // namespace

void Api::get_job(const Request &req) {
  const auto id = id_param(req->param("id"));
  authenticate(req, {auth::Role::sales_manager, auth::Role::admin},
               [this, req, id](const auth::Principal &principal) {
                 m_deps.services.jobs.get(id, principal, answer<jobs::Job>(req, job_response));
               });
}

void Api::list_jobs(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    auto filter = parse_job_filter(req->query);
    if (!filter) return reply_error(req, filter.error());
    m_deps.services.jobs.list(
        *filter, answer<std::vector<jobs::Job>>(
                     req, [limit = filter->limit](const std::vector<jobs::Job> &found) {
                       nlohmann::json items = nlohmann::json::array();
                       for (const auto &job : found) items.push_back(job.to_json());
                       nlohmann::json next = nullptr;
                       if (static_cast<int>(found.size()) == limit && !found.empty())
                         next = found.back().id;
                       return json_response(200, {{"jobs", items}, {"next_before_id", next}});
                     }));
  });
}

void Api::retry_job(const Request &req) {
  const auto id = id_param(req->param("id"));
  authenticate(req, k_admin, [this, req, id](const auth::Principal &principal) {
    m_deps.services.jobs.retry(id, principal.actor(), answer<jobs::Job>(req, job_response));
  });
}

void Api::queue_overview(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    m_deps.services.jobs.stats(answer<jobs::QueueStats>(req, [this](const jobs::QueueStats &stats) {
      auto body = stats.to_json();
      body["queue"] = m_deps.queue.health().to_json();
      return json_response(200, body);
    }));
  });
}

} // namespace usher::http
