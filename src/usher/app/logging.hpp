// Process logs on stderr, as text or one JSON object per line (LOG_FORMAT;
// the line's form and structured fields: util/log_fields.hpp).
#pragma once

#include <string>

#include <usher/config/config.hpp>

namespace usher::app {

// Installs the process logger; the one piece of process-wide state usher
// keeps, set once here before any thread starts.
void setup_logging(config::LogFormat format, const std::string &instance);

} // namespace usher::app
