// Jobs: GET /api/v1/jobs/{id} for its creator or an admin, and the admin's
// view of the queue (list, retry a dead job, counts).
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/jobs/job_store.hpp>

namespace usher::http {
namespace {

constexpr std::initializer_list<auth::Role> k_admin = {auth::Role::admin};

Error job_not_found() {
  return Error{ErrorKind::not_found, "job_not_found", "no job with that id", ""};
}

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

} // namespace

void Api::get_job(const Request &req) {
  const auto id = id_param(req->param("id"));
  authenticate(req, {auth::Role::sales_manager, auth::Role::admin},
               [this, req, id](const auth::Principal &principal) {
                 on_pool(req, [this, req, id, principal](soci::session &sql) {
                   const auto job = jobs::find(sql, id);
                   if (!job) return reply_error(req, job_not_found());
                   if (principal.role != auth::Role::admin &&
                       job->created_by_token_id != principal.token_id) {
                     return reply_error(req,
                                        Error{ErrorKind::forbidden, "forbidden",
                                              "only the job's creator or an admin may see it", ""});
                   }
                   reply(req, json_response(200, job->to_json()));
                 });
               });
}

void Api::list_jobs(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    auto filter = parse_job_filter(req->query);
    if (!filter) return reply_error(req, filter.error());
    on_pool(req, [this, req, filter = *filter](soci::session &sql) {
      const auto found = jobs::list(sql, filter);
      nlohmann::json items = nlohmann::json::array();
      for (const auto &job : found) items.push_back(job.to_json());
      nlohmann::json next = nullptr;
      if (static_cast<int>(found.size()) == filter.limit && !found.empty()) next = found.back().id;
      reply(req, json_response(200, {{"jobs", items}, {"next_before_id", next}}));
    });
  });
}

void Api::retry_job(const Request &req) {
  const auto id = id_param(req->param("id"));
  authenticate(req, k_admin, [this, req, id](const auth::Principal &principal) {
    auto outcome = std::make_shared<Result<jobs::Job>>();
    on_writer(
        req,
        [this, outcome, id, actor = principal.actor()](store::WriteContext &context) {
          *outcome = jobs::retry_dead(context.sql(), id, actor, m_deps.config.instance);
          if (!*outcome) throw store::AbortWrite(outcome->error());
        },
        [this, req, outcome, id](const Result<void> &written) {
          if (!written) return reply_error(req, written.error());
          // A failed dispatch leaves the job to the queue's sweeper.
          m_deps.queue.dispatch(id, {});
          reply(req, json_response(200, (*outcome)->to_json()));
        });
  });
}

void Api::queue_overview(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    on_pool(req, [this, req](soci::session &sql) {
      auto body = jobs::stats(sql).to_json();
      body["queue"] = m_deps.queue.health().to_json();
      reply(req, json_response(200, body));
    });
  });
}

} // namespace usher::http
