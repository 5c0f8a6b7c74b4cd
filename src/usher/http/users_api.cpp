// POST /api/v1/users, GET /api/v1/users?email=, GET /api/v1/users/{id},
// POST /api/v1/users/{id}/activation.
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/auth/activation.hpp>
#include <usher/intake/service.hpp>
#include <usher/provisioning/provisioner.hpp>

namespace usher::http {
namespace {

constexpr std::initializer_list<auth::Role> k_user_roles = {auth::Role::sales_manager,
                                                            auth::Role::admin};

// A 202 points at its job, also when it is replayed.
Response with_location(Response response) {
  if (response.status == 202) {
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_object() && body.contains("job_id")) {
      response.headers.emplace_back("Location", "/api/v1/jobs/" + body["job_id"].dump());
    }
  }
  return response;
}

Error user_not_found() {
  return Error{ErrorKind::not_found, "user_not_found", "no account with that email or id", ""};
}

// The answer to an intake outcome that was not refused.
Response outcome_response(intake::Outcome outcome) {
  if (outcome.kind == intake::OutcomeKind::replay) {
    // The first status and body, without the activation token.
    return with_location(
        Response{outcome.replay.status, std::move(outcome.replay.body), "application/json", {}});
  }
  return with_location(json_response(intake::stored_status(outcome.kind), outcome.answer));
}

} // namespace

// Parse, hand to the intake service, answer its outcome.
void Api::create_user(const Request &req) {
  with_json_body(req, k_user_roles,
                 [this, req](const auth::Principal &principal, const nlohmann::json &body) {
                   auto user = provisioning::parse_new_user(body);
                   if (!user) return reply_error(req, user.error());
                   intake::Submission submission{std::move(*user), body, std::nullopt};
                   if (auto header = req->header("Idempotency-Key")) {
                     auto parsed = idempotency::parse_key(*header);
                     if (!parsed) return reply_error(req, parsed.error());
                     submission.idempotency_key = std::move(*parsed);
                   }
                   m_intake.submit(std::move(submission),
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
    on_pool(req, [this, req, email = std::move(*email)](soci::session &sql) {
      auto user = provisioning::find_user_by_email(sql, email);
      if (!user) return reply_error(req, user_not_found());
      reply(req, json_response(200, user->to_json()));
    });
  });
}

// Resend: a new activation token, the earlier ones revoked (SPEC §3). The
// body, if any, is not read: the account id in the path is the whole request.
void Api::resend_activation(const Request &req) {
  authenticate(req, k_user_roles, [this, req, id_text = req->param("id")](const auth::Principal &) {
    std::int64_t id = 0;
    std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    auto outcome = std::make_shared<Result<auth::ReissuedActivation>>();
    on_writer(
        req,
        [this, outcome, id](store::WriteContext &context) {
          *outcome = auth::reissue_activation(context.sql(), id, std::chrono::system_clock::now(),
                                              m_deps.config.activation_ttl);
          if (!*outcome) throw store::AbortWrite(outcome->error());
        },
        [this, req, outcome](const Result<void> &written) {
          if (!written) return reply_error(req, written.error());
          const auto &reissued = **outcome;
          reply(req, json_response(200, {{"user_id", reissued.account_id},
                                         {"email", reissued.email},
                                         {"invitation", "invited"},
                                         {"activation_token", reissued.token},
                                         {"activation_expires_at", reissued.expires_at}}));
        });
  });
}

void Api::get_user(const Request &req) {
  authenticate(req, k_user_roles, [this, req, id_text = req->param("id")](const auth::Principal &) {
    std::int64_t id = 0;
    std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    on_pool(req, [this, req, id](soci::session &sql) {
      auto user = provisioning::find_user_by_id(sql, id);
      if (!user) return reply_error(req, user_not_found());
      reply(req, json_response(200, user->to_json()));
    });
  });
}

} // namespace usher::http
