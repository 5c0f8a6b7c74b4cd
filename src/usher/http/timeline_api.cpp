// One customer's story (SPEC §8): GET /api/v1/admin/jobs/{id}/timeline for an
// admin or the job's creator, and GET /api/v1/admin/timeline?email=E (admin)
// for the newest job of an email.
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/jobs/job_service.hpp>
#include <usher/jobs/timeline.hpp>
#include <usher/provisioning/new_user.hpp>

namespace usher::http {
namespace {

Response timeline_response(const jobs::Timeline &timeline) {
  return json_response(200, timeline.to_json());
}

} // namespace

void Api::job_timeline(const Request &req) {
  std::int64_t id = 0;
  const auto text = req->param("id");
  std::from_chars(text.data(), text.data() + text.size(), id);
  authenticate(req, {auth::Role::sales_manager, auth::Role::admin},
               [this, req, id](const auth::Principal &principal) {
                 m_deps.services.jobs.timeline(id, principal,
                                               answer<jobs::Timeline>(req, timeline_response));
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
    m_deps.services.jobs.timeline_for_email(std::move(*email),
                                            answer<jobs::Timeline>(req, timeline_response));
  });
}

} // namespace usher::http
