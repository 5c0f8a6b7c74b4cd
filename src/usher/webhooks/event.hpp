// The purchase events of SPEC §9 read from a verified webhook body: a
// purchase becomes a provisioning request keyed by the provider's event id;
// any other event type is acknowledged and ignored. Knows nothing of HTTP.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include <usher/provisioning/new_user.hpp>
#include <usher/util/error.hpp>
#include <usher/webhooks/signature.hpp>

namespace usher::webhooks {

inline constexpr std::size_t k_max_event_id = 200;

struct Purchase {
  std::string event_id;
  provisioning::NewUser user;
};

// Another event type: answered 200 {"status":"ignored"} and nothing written.
struct Ignored {
  std::string event_type; // as sent (cut to 100 bytes), for the log
};

using Event = std::variant<Purchase, Ignored>;

// `webhook:{provider}:{event id}`: the idempotency key of the intake.
std::string intake_key(Provider provider, const Purchase &purchase);

// Reads `raw_body` as `provider`'s event. Errors (ErrorKind::invalid):
// webhook_body_not_json, webhook_event_invalid (field names what is wrong).
// A purchase without a buyer name is named after the email's local part.
Result<Event> parse_event(Provider provider, std::string_view raw_body);

} // namespace usher::webhooks
