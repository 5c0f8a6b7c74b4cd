// POST /api/v1/webhooks/{provider} (SPEC §9): a purchase at a payment
// provider becomes a provisioning request through the same intake as
// POST /api/v1/users. The signature is the authentication: it is verified
// over the raw body before anything in the body is read, and a refusal is
// logged by its verdict only, never with the payload.
#include <usher/http/api.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/spdlog.h>

#include <usher/intake/service.hpp>
#include <usher/webhooks/event.hpp>
#include <usher/webhooks/signature.hpp>

namespace usher::http {
namespace {

const std::vector<std::string> &secrets_of(const config::Config &config,
                                           webhooks::Provider provider) {
  switch (provider) {
  case webhooks::Provider::stripe: return config.webhook_secrets_stripe;
  case webhooks::Provider::lemonsqueezy: return config.webhook_secrets_lemonsqueezy;
  case webhooks::Provider::generic: return config.webhook_secrets_generic;
  }
  return config.webhook_secrets_generic;
}

Error no_such_webhook() {
  return Error{ErrorKind::not_found, "not_found", "no such resource or method", ""};
}

Error refused_signature(webhooks::Verdict verdict) {
  return Error{ErrorKind::invalid, std::string(webhooks::verdict_code(verdict)),
               "the webhook's signature does not verify", ""};
}

// The answer to an intake outcome, for the provider: never the activation
// token, and an existing account is a success (a 4xx would be retried for days).
Response webhook_answer(intake::Outcome outcome) {
  switch (outcome.kind) {
  case intake::OutcomeKind::replay:
    return Response{outcome.replay.status, std::move(outcome.replay.body), "application/json", {}};
  case intake::OutcomeKind::queued:
  case intake::OutcomeKind::created:
    outcome.answer.erase("activation_token");
    return json_response(intake::stored_status(outcome.kind), outcome.answer);
  case intake::OutcomeKind::refused: break;
  }
  if (outcome.error.code == "user_exists") return json_response(200, {{"status", "exists"}});
  return problem_response(outcome.error);
}

} // namespace

void Api::receive_webhook(const Request &req) {
  const auto provider = webhooks::parse_provider(req->param("provider"));
  if (!provider) return reply_error(req, no_such_webhook());
  const auto &secrets = secrets_of(m_deps.config, *provider);
  if (secrets.empty()) return reply_error(req, no_such_webhook());
  const auto name = webhooks::provider_name(*provider);
  if (req->body.size() > k_max_body) {
    spdlog::warn("webhook {} refused: the body is larger than 64 KiB", name);
    return reply_error(req, Error{ErrorKind::too_large, "payload_too_large",
                                  "the request body is larger than 64 KiB", ""});
  }

  // The exact raw body, before anything in it is parsed.
  const auto header = req->header(webhooks::signature_header(*provider));
  const auto verdict = webhooks::verify(
      *provider, header ? std::optional<std::string_view>(*header) : std::nullopt, req->body,
      {secrets, m_deps.config.webhook_tolerance}, clock::system_clock());
  if (verdict != webhooks::Verdict::ok) {
    spdlog::warn("webhook {} refused from {}: {}", name, req->remote_address,
                 webhooks::verdict_code(verdict));
    return reply_error(req, refused_signature(verdict));
  }

  auto event = webhooks::parse_event(*provider, req->body);
  if (!event) {
    spdlog::warn("webhook {} refused: {} ({})", name, event.error().code, event.error().field);
    return reply_error(req, event.error());
  }
  if (const auto *ignored = std::get_if<webhooks::Ignored>(&*event)) {
    spdlog::info("webhook {}: event type '{}' ignored", name, ignored->event_type);
    return reply(req, json_response(200, {{"status", "ignored"}}));
  }

  auto &purchase = std::get<webhooks::Purchase>(*event);
  const std::string key = webhooks::intake_key(*provider, purchase);
  // The redelivery of one event carries the same buyer: its fingerprint.
  nlohmann::json fingerprinted = purchase.user.to_json();
  intake::Submission submission{std::move(purchase.user), std::move(fingerprinted), key};
  const provisioning::Creator caller{0, "webhook:" + std::string(name), req->request_id};
  m_deps.services.intake.submit(
      std::move(submission), caller,
      [this, req, name, event_id = purchase.event_id](intake::Outcome outcome) {
        Response response = webhook_answer(std::move(outcome));
        spdlog::info("webhook {} event {}: {}", name, event_id, response.status);
        reply(req, std::move(response));
      });
}

} // namespace usher::http
