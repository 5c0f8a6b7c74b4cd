// POST /api/v1/users, GET /api/v1/users?email=, GET /api/v1/users/{id}.
#include <usher/http/api.hpp>

#include <charconv>

#include <usher/health/health_log.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/util/clock.hpp>

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

// What one POST /api/v1/users has decided so far.
struct Api::CreateUserState {
  Result<Response> outcome = Response{};
  std::int64_t queued_job = 0; // a job to hand to the queue after the commit
  std::string email;
  std::string activation_token;
  std::optional<std::string> key;
  std::int64_t token_id = 0;
  // Provisioned inline because the queue was down: recorded after the commit.
  std::int64_t fallback_job = 0;
  std::string fallback_reason;
};

namespace {

nlohmann::json created_answer(std::int64_t user_id, std::int64_t job_id, const std::string &email,
                              system::SystemMode mode, bool fallback) {
  return {{"status", "created"},
          {"user_id", user_id},
          {"job_id", job_id},
          {"email", email},
          {"mode", system::to_string(mode)},
          {"fallback", fallback}};
}

} // namespace

void Api::record_fallback(std::int64_t job_id, const std::string &why) {
  m_fallbacks.add({{"reason", why}, {"job_id", job_id}});
}

void Api::create_user(const Request &req, const restinio::router::route_params_t &) {
  with_json_body(
      req, k_user_roles, [this, req](const auth::Principal &principal, const nlohmann::json &body) {
        auto user = provisioning::parse_new_user(body);
        if (!user) return reply_error(req, user.error());

        auto state = std::make_shared<CreateUserState>();
        state->token_id = principal.token_id;
        state->email = user->email;
        if (auto header = req->header().try_get_field("Idempotency-Key")) {
          auto parsed = idempotency::parse_key(*header);
          if (!parsed) return reply_error(req, parsed.error());
          state->key = std::move(*parsed);
        }
        const std::string fingerprint = state->key ? idempotency::fingerprint(body) : std::string();
        if (state->key && !m_deps.idempotency.begin(principal.token_id, *state->key)) {
          return reply_error(req, Error{ErrorKind::conflict, "idempotency_key_in_flight",
                                        "a request with this Idempotency-Key is still in progress",
                                        "Idempotency-Key"});
        }

        const provisioning::Creator creator{principal.token_id, principal.actor()};
        auto apply = [this, state, user = std::move(*user), fingerprint,
                      creator](store::WriteContext &context) {
          soci::session &sql = context.sql();
          const auto &key = state->key;
          if (key) {
            auto stored = idempotency::find(sql, state->token_id, *key, fingerprint);
            if (!stored) {
              state->outcome = tl::unexpected(stored.error());
              return;
            }
            if (*stored) {
              // A replay: the first status and body, without the activation token.
              state->outcome = replay_response(**stored);
              return;
            }
          }
          // The mode is read here, on the writer thread: a cache refresh may
          // touch the database, which the I/O thread never does.
          const auto mode = m_deps.mode.get();
          nlohmann::json answer;
          int status = 0;
          if (mode == system::SystemMode::async_queue && m_deps.queue.accepting()) {
            auto queued = context.prepared<jobs::IntakeStatements>().enqueue(
                user, creator, m_deps.config.activation_ttl);
            if (!queued) throw store::AbortWrite(queued.error());
            status = 202;
            answer = {{"status", "queued"},
                      {"job_id", queued->job_id},
                      {"email", user.email},
                      {"mode", "async_queue"}};
            state->activation_token = std::move(queued->activation_token);
            state->queued_job = queued->job_id;
          } else {
            // sync_direct, or async_queue while the queue is down (its circuit
            // is open): provisioned inline at once, without waiting on it.
            auto created =
                context.prepared<provisioning::ProvisioningStatements>().create_user_inline(
                    user, creator, m_deps.config.activation_ttl);
            if (!created) throw store::AbortWrite(created.error());
            const bool fallback = mode == system::SystemMode::async_queue;
            status = 201;
            answer = created_answer(created->user_id, created->job_id, user.email, mode, fallback);
            if (fallback) {
              state->fallback_job = created->job_id;
              state->fallback_reason = "the queue's circuit is open";
            }
            state->activation_token = std::move(created->activation_token);
          }
          if (key && !idempotency::store(sql, state->token_id, *key, fingerprint,
                                         {status, answer.dump()})) {
            throw store::AbortWrite(Error{
                ErrorKind::conflict, "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still in progress", "Idempotency-Key"});
          }
          answer["activation_token"] = state->activation_token;
          state->outcome = with_location(json_response(status, answer));
        };
        auto done = [this, req, state](const Result<void> &written) {
          if (!written) return finish_create(req, *state, tl::unexpected(written.error()));
          if (state->outcome && state->fallback_job != 0) {
            record_fallback(state->fallback_job, state->fallback_reason);
          }
          if (!state->outcome || state->queued_job == 0) {
            return finish_create(req, *state, std::move(state->outcome));
          }
          // The row is committed: now the queue may take it. If it cannot, the
          // job is provisioned inline (201, "fallback": true).
          m_deps.queue.dispatch(state->queued_job, [this, req, state](const Result<void> &sent) {
            if (sent) return finish_create(req, *state, std::move(state->outcome));
            provision_fallback(req, state, sent.error().detail);
          });
        };
        if (!m_deps.writer.submit(std::move(apply), std::move(done))) {
          finish_create(req, *state,
                        tl::unexpected(Error{ErrorKind::unavailable, "unavailable",
                                             "too many writes are waiting; retry shortly", ""}));
        }
      });
}

void Api::finish_create(const Request &req, const CreateUserState &state,
                        Result<Response> outcome) {
  if (state.key) m_deps.idempotency.end(state.token_id, *state.key);
  if (!outcome) return reply_error(req, outcome.error());
  reply(req, std::move(*outcome));
}

void Api::provision_fallback(const Request &req, const std::shared_ptr<CreateUserState> &state,
                             const std::string &why) {
  auto answer = std::make_shared<std::optional<nlohmann::json>>();
  const std::string owner = "inline:" + m_deps.config.instance;
  auto apply = [this, state, answer, owner, why](store::WriteContext &context) {
    soci::session &sql = context.sql();
    const std::string lease_until =
        clock::iso8601(std::chrono::system_clock::now() + m_deps.config.job_lease);
    auto claimed = jobs::claim_ids(sql, {state->queued_job}, owner, lease_until);
    if (claimed.empty()) return; // a worker has it after all: the 202 stands
    const auto &job = claimed.front();
    auto user_id = context.prepared<provisioning::ProvisioningStatements>().provision_queued(
        job.id, owner, job.user, job.creator, job.activation_hash, job.activation_expires_at,
        [](const char *) {});
    if (!user_id) throw store::AbortWrite(user_id.error());
    auto body =
        created_answer(*user_id, job.id, state->email, system::SystemMode::async_queue, true);
    if (state->key) idempotency::replace(sql, state->token_id, *state->key, {201, body.dump()});
    *answer = std::move(body);
  };
  auto done = [this, req, state, answer, why](const Result<void> &written) {
    if (written && *answer) record_fallback(state->queued_job, why);
    if (!written || !*answer) {
      // The job is durably queued and the queue's recovery finishes it:
      // the 202 is true.
      return finish_create(req, *state, std::move(state->outcome));
    }
    (**answer)["activation_token"] = state->activation_token;
    finish_create(req, *state, json_response(201, **answer));
  };
  if (!m_deps.writer.submit(std::move(apply), std::move(done))) {
    finish_create(req, *state, std::move(state->outcome));
  }
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
