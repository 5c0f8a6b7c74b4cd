// POST /api/v1/users, GET /api/v1/users?email=, GET /api/v1/users/{id}.
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/jobs/job_store.hpp>
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

Response replay_response(const idempotency::StoredResponse &stored) {
  return with_location(Response{stored.status, stored.body, "application/json", {}});
}

Error user_not_found() {
  return Error{ErrorKind::not_found, "user_not_found", "no account with that email or id", ""};
}

} // namespace

void Api::create_user(const Request &req, const restinio::router::route_params_t &) {
  with_json_body(
      req, k_user_roles, [this, req](const auth::Principal &principal, const nlohmann::json &body) {
        auto user = provisioning::parse_new_user(body);
        if (!user) return reply_error(req, user.error());

        std::optional<std::string> key;
        if (auto header = req->header().try_get_field("Idempotency-Key")) {
          auto parsed = idempotency::parse_key(*header);
          if (!parsed) return reply_error(req, parsed.error());
          key = std::move(*parsed);
        }
        const std::string fingerprint = key ? idempotency::fingerprint(body) : std::string();
        if (key && !m_deps.idempotency.begin(principal.token_id, *key)) {
          return reply_error(req, Error{ErrorKind::conflict, "idempotency_key_in_flight",
                                        "a request with this Idempotency-Key is still in progress",
                                        "Idempotency-Key"});
        }

        auto outcome = std::make_shared<Result<Response>>();
        auto dispatch_job = std::make_shared<std::int64_t>(0);
        const provisioning::Creator creator{principal.token_id, principal.actor()};
        const auto token_id = principal.token_id;
        auto apply = [this, outcome, dispatch_job, user = std::move(*user), key, fingerprint,
                      creator, token_id](store::WriteContext &context) {
          soci::session &sql = context.sql();
          if (key) {
            auto stored = idempotency::find(sql, token_id, *key, fingerprint);
            if (!stored) {
              *outcome = tl::unexpected(stored.error());
              return;
            }
            if (*stored) {
              // A replay: the first status and body, without the activation token.
              *outcome = replay_response(**stored);
              return;
            }
          }
          // The mode is read here, on the writer thread: a cache refresh may
          // touch the database, which the I/O thread never does.
          const auto mode = effective_mode(m_deps.mode.get());
          nlohmann::json answer;
          std::string activation_token;
          int status = 0;
          if (mode == system::SystemMode::async_queue) {
            auto queued = context.prepared<jobs::IntakeStatements>().enqueue(
                user, creator, m_deps.config.activation_ttl);
            if (!queued) throw store::AbortWrite(queued.error());
            status = 202;
            answer = {{"status", "queued"},
                      {"job_id", queued->job_id},
                      {"email", user.email},
                      {"mode", "async_queue"}};
            activation_token = std::move(queued->activation_token);
            *dispatch_job = queued->job_id;
          } else {
            auto created =
                context.prepared<provisioning::ProvisioningStatements>().create_user_inline(
                    user, creator, m_deps.config.activation_ttl);
            if (!created) throw store::AbortWrite(created.error());
            status = 201;
            answer = {{"status", "created"},       {"user_id", created->user_id},
                      {"job_id", created->job_id}, {"email", user.email},
                      {"mode", "sync_direct"},     {"fallback", false}};
            activation_token = std::move(created->activation_token);
          }
          if (key &&
              !idempotency::store(sql, token_id, *key, fingerprint, {status, answer.dump()})) {
            throw store::AbortWrite(Error{
                ErrorKind::conflict, "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still in progress", "Idempotency-Key"});
          }
          answer["activation_token"] = std::move(activation_token);
          *outcome = with_location(json_response(status, answer));
        };
        auto done = [this, req, outcome, dispatch_job, key, token_id](const Result<void> &written) {
          if (key) m_deps.idempotency.end(token_id, *key);
          if (!written) return reply_error(req, written.error());
          if (!*outcome) return reply_error(req, outcome->error());
          // The row is committed: now the queue may hand it to a worker.
          if (*dispatch_job != 0) m_deps.queue.dispatch(*dispatch_job);
          reply(req, std::move(**outcome));
        };
        if (!m_deps.writer.submit(std::move(apply), std::move(done))) {
          if (key) m_deps.idempotency.end(token_id, *key);
          reply_error(req, Error{ErrorKind::unavailable, "unavailable",
                                 "too many writes are waiting; retry shortly", ""});
        }
      });
}

void Api::find_user_by_email(const Request &req, const restinio::router::route_params_t &) {
  authenticate(req, k_user_roles, [this, req](const auth::Principal &) {
    auto query =
        restinio::try_parse_query<restinio::parse_query_traits::relaxed>(req->header().query());
    if (!query || !query->has("email")) {
      return reply_error(req, Error{ErrorKind::invalid, "field_required",
                                    "the email query parameter is required", "email"});
    }
    auto email =
        provisioning::normalise_email(restinio::cast_to<std::string>(*query->get_param("email")));
    if (!email) return reply_error(req, email.error());
    on_pool(req, [this, req, email = std::move(*email)](soci::session &sql) {
      auto user = provisioning::find_user_by_email(sql, email);
      if (!user) return reply_error(req, user_not_found());
      reply(req, json_response(200, user->to_json()));
    });
  });
}

void Api::get_user(const Request &req, const restinio::router::route_params_t &params) {
  authenticate(req, k_user_roles,
               [this, req, id_text = std::string(params["id"])](const auth::Principal &) {
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
