// Admin endpoints: the kill switch and the health log.
#include <usher/http/api.hpp>

#include <charconv>
#include <limits>
#include <regex>

#include <usher/health/health_log.hpp>

namespace usher::http {
namespace {

constexpr int k_default_log_limit = 50;
constexpr int k_max_log_limit = 500;

Error bad_param(const char *name, const std::string &why) {
  return Error{ErrorKind::invalid, "query_invalid", std::string(name) + " " + why, name};
}

std::optional<long long> parse_positive(std::string_view text, long long max) {
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value < 1 || value > max) {
    return std::nullopt;
  }
  return value;
}

// "2026-11-28", "2026-11-28T16:00:00Z" or with a fraction, rewritten to the
// stored form "YYYY-MM-DDTHH:MM:SS.mmmZ" so that SQL's text comparison is a
// time comparison (done on text: no overflow for far-away years).
std::optional<std::string> normalise_since(const std::string &value) {
  static const std::regex k_iso(R"((\d{4}-\d{2}-\d{2})(T(\d{2}:\d{2}:\d{2})(\.(\d{1,9}))?Z?)?)");
  std::smatch m;
  if (!std::regex_match(value, m, k_iso)) return std::nullopt;
  std::string millis = m[5].matched ? m[5].str() : "";
  millis = (millis + "000").substr(0, 3);
  const std::string time = m[3].matched ? m[3].str() : "00:00:00";
  return m[1].str() + "T" + time + "." + millis + "Z";
}

Result<health::Filter> parse_log_filter(const std::optional<NameValues> &query) {
  if (!query) return tl::unexpected(bad_param("query", "is not a valid query string"));
  health::Filter filter;
  filter.limit = k_default_log_limit;
  for (const auto &[name_view, value_view] : *query) {
    const std::string name(name_view);
    const std::string value(value_view);
    if (name == "type") {
      filter.type = health::parse_event_type(value);
      if (!filter.type) {
        return tl::unexpected(
            bad_param("type", "must be INFO, WARNING, ERROR, SWITCH or CRITICAL"));
      }
    } else if (name == "since") {
      auto since = normalise_since(value);
      if (!since) return tl::unexpected(bad_param("since", "must be an ISO 8601 UTC time"));
      filter.since = std::move(*since);
    } else if (name == "limit") {
      auto limit = parse_positive(value, k_max_log_limit);
      if (!limit) return tl::unexpected(bad_param("limit", "must be 1 to 500"));
      filter.limit = static_cast<int>(*limit);
    } else if (name == "before_id") {
      auto before = parse_positive(value, std::numeric_limits<long long>::max());
      if (!before) return tl::unexpected(bad_param("before_id", "must be a positive id"));
      filter.before_id = *before;
    } else {
      return tl::unexpected(
          Error{ErrorKind::invalid, "unknown_field", "unknown query parameter", "query"});
    }
  }
  return filter;
}

} // namespace

nlohmann::json Api::mode_json(const system::ModeState &state) {
  return {{"mode", system::to_string(state.mode)},
          {"effective_mode", system::to_string(effective_mode(state.mode))},
          {"version", state.version},
          {"updated_at", state.updated_at},
          {"updated_by", state.updated_by},
          {"queue", m_deps.queue.health().to_json()}};
}

void Api::get_mode(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    m_deps.services.mode.current(
        answer<system::ModeState>(req, [this](const system::ModeState &state) {
          return json_response(200, mode_json(state));
        }));
  });
}

void Api::put_mode(const Request &req) {
  auto on_body = [this, req](const auth::Principal &principal, const nlohmann::json &body) {
    auto change = system::parse_mode_change(body);
    if (!change) return reply_error(req, change.error());
    change->actor = principal.actor();
    m_deps.services.mode.change(
        std::move(*change),
        answer<system::ModeChangeResult>(req, [this](const system::ModeChangeResult &result) {
          if (result.changed && m_mode_switches != nullptr) m_mode_switches->inc();
          auto answered = mode_json(result.state);
          answered["changed"] = result.changed;
          return json_response(200, answered);
        }));
  };
  with_json_body(req, k_admin, std::move(on_body));
}

void Api::health_logs(const Request &req) {
  authenticate(req, k_admin, [this, req](const auth::Principal &) {
    auto filter = parse_log_filter(req->query);
    if (!filter) return reply_error(req, filter.error());
    m_deps.services.health_log.list(
        *filter, answer<std::vector<health::Event>>(
                     req, [limit = filter->limit](const std::vector<health::Event> &events) {
                       nlohmann::json items = nlohmann::json::array();
                       for (const auto &e : events) items.push_back(health::to_json(e));
                       nlohmann::json next = nullptr;
                       if (static_cast<int>(events.size()) == limit && !events.empty()) {
                         next = events.back().id;
                       }
                       return json_response(200, {{"events", items}, {"next_before_id", next}});
                     }));
  });
}

} // namespace usher::http
