// Structured log lines: the fields a log call carries (alert id, chat, ...)
// and the one-line JSON form LOG_FORMAT=json writes (app/logging.cpp installs
// the sink; docs/configuration.md, LOG_FORMAT).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <usher/util/clock.hpp>

namespace usher::log {

// One line of LOG_FORMAT=json: {"time","level","instance","message", then
// each member of `fields` (a JSON object) except those four names}. Always
// one valid JSON line whatever the text holds: quotes, newlines and control
// characters are escaped, invalid UTF-8 becomes U+FFFD. Ends with '\n'.
std::string json_line(clock::WallTime time, std::string_view level, std::string_view instance,
                      std::string_view message, const nlohmann::json &fields);

// Logs `message` with structured fields (a JSON object, e.g. {{"alert_id", 7}}):
// LOG_FORMAT=json writes them as members of the line; the text format writes
// the message alone, so the message must say what matters by itself.
void with_fields(spdlog::level::level_enum level, std::string_view message,
                 const nlohmann::json &fields);

// The fields of the with_fields() call running on this thread, or an empty
// object: read by the JSON sink while spdlog hands it that call's message.
const nlohmann::json &current_fields();

} // namespace usher::log
