// One customer's story (SPEC §8): GET /api/v1/admin/jobs/{id}/timeline for an
// admin or the job's creator, and GET /api/v1/admin/timeline?email=E (admin)
// for the newest job of an email.
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/jobs/timeline.hpp>
#include <usher/provisioning/new_user.hpp>

namespace usher::http {
namespace {

Error job_not_found(const std::string &detail) {
  return Error{ErrorKind::not_found, "job_not_found", detail, ""};
}

} // namespace

void Api::job_timeline(const Request &req) {
  std::int64_t id = 0;
  const auto text = req->param("id");
  std::from_chars(text.data(), text.data() + text.size(), id);
  authenticate(req, {auth::Role::sales_manager, auth::Role::admin},
               [this, req, id](const auth::Principal &principal) {
                 on_pool(req, [this, req, id, principal](soci::session &sql) {
                   auto found = jobs::timeline(sql, id);
                   if (!found) return reply_error(req, job_not_found("no job with that id"));
                   if (principal.role != auth::Role::admin &&
                       found->job.created_by_token_id != principal.token_id) {
                     return reply_error(req,
                                        Error{ErrorKind::forbidden, "forbidden",
                                              "only the job's creator or an admin may see it", ""});
                   }
                   reply(req, json_response(200, found->to_json()));
                 });
               });
}

void Api::timeline_by_email(const Request &req) {
  authenticate(req, {auth::Role::admin}, [this, req](const auth::Principal &) {
    const auto email_param = req->query_param("email");
    if (!email_param) {
      return reply_error(req, Error{ErrorKind::invalid, "field_required",
                                    "the email query parameter is required", "email"});
    }
    auto email = provisioning::normalise_email(*email_param);
    if (!email) return reply_error(req, email.error());
    on_pool(req, [this, req, email = std::move(*email)](soci::session &sql) {
      const auto id = jobs::newest_job_for_email(sql, email);
      auto found = id ? jobs::timeline(sql, *id) : std::nullopt;
      if (!found) return reply_error(req, job_not_found("no request for that email"));
      reply(req, json_response(200, found->to_json()));
    });
  });
}

} // namespace usher::http
