// POST /api/v1/users, GET /api/v1/users?email=, GET /api/v1/users/{id},
// POST /api/v1/users/{id}/activation.
#include <usher/http/api.hpp>

#include <charconv>
#include <string>

#include <usher/auth/activation.hpp>
#include <usher/idempotency/idempotency.hpp>
#include <usher/intake/service.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/provisioning/user_directory.hpp>

namespace usher::http {
namespace {

constexpr std::initializer_list<auth::Role> k_user_roles = {auth::Role::sales_manager,
                                                            auth::Role::admin};

// A 202 points at its job, also when it is replayed.
void add_location(Response &response, std::int64_t job_id) {
  if (response.status == 202) {
    response.headers.emplace_back("Location", "/api/v1/jobs/" + std::to_string(job_id));
  }
}

Response user_response(const provisioning::UserRecord &user) {
  return json_response(200, user.to_json());
}

// The answer to an intake outcome that was not refused.
Response outcome_response(intake::Outcome outcome) {
  if (outcome.kind == intake::OutcomeKind::replay) {
    // The first status and body, without the activation token; its job is
    // read back from the stored body.
    Response response{
        outcome.replay.status, std::move(outcome.replay.body), "application/json", {}};
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_object() && body.contains("job_id") && body["job_id"].is_number_integer()) {
      add_location(response, body["job_id"].get<std::int64_t>());
    }
    return response;
  }
  auto response = json_response(intake::stored_status(outcome.kind), outcome.answer);
  add_location(response, outcome.job_id);
  return response;
}

} // namespace

// Parse, hand to the intake service, answer its outcome.
void Api::create_user(const Request &req) {
  with_json_body(
      req, k_user_roles, [this, req](const auth::Principal &principal, const nlohmann::json &body) {
        auto user = provisioning::parse_new_user(body);
        if (!user) return reply_error(req, user.error());
        intake::Submission submission{std::move(*user), body, std::nullopt};
        if (auto header = req->header("Idempotency-Key")) {
          auto parsed = idempotency::parse_key(*header);
          if (!parsed) return reply_error(req, parsed.error());
          submission.idempotency_key = std::move(*parsed);
        }
        m_deps.services.intake.submit(std::move(submission),
                                      {principal.token_id, principal.actor(), req->request_id},
                                      [this, req](intake::Outcome outcome) {
                                        if (outcome.kind == intake::OutcomeKind::refused) {
                                          return reply_error(req, outcome.error);
                                        }
                                        reply(req, outcome_response(std::move(outcome)));
                                      });
      });
}

void Api::find_user_by_email(const Request &req) {
  authenticate(req, k_user_roles, [this, req](const auth::Principal &) {
    const auto email_param = req->query_param("email");
    if (!email_param) {
      return reply_error(req, Error{ErrorKind::invalid, "field_required",
                                    "the email query parameter is required", "email"});
    }
    auto email = provisioning::normalise_email(*email_param);
    if (!email) return reply_error(req, email.error());
    m_deps.services.users.find_by_email(std::move(*email),
                                        answer<provisioning::UserRecord>(req, user_response));
  });
}

// Resend: a new activation token, the earlier ones revoked (SPEC §3). The
// body, if any, is not read: the account id in the path is the whole request.
void Api::resend_activation(const Request &req) {
  authenticate(req, k_user_roles, [this, req, id_text = req->param("id")](const auth::Principal &) {
    std::int64_t id = 0;
    std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    m_deps.services.accounts.reissue_activation(
        id, answer<auth::ReissuedActivation>(req, [](const auth::ReissuedActivation &reissued) {
          return json_response(200, {{"user_id", reissued.account_id},
                                     {"email", reissued.email},
                                     {"invitation", "invited"},
                                     {"activation_token", reissued.token},
                                     {"activation_expires_at", reissued.expires_at}});
        }));
  });
}

void Api::get_user(const Request &req) {
  authenticate(req, k_user_roles, [this, req, id_text = req->param("id")](const auth::Principal &) {
    std::int64_t id = 0;
    std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    m_deps.services.users.find_by_id(id, answer<provisioning::UserRecord>(req, user_response));
  });
}

} // namespace usher::http
