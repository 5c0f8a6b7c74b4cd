// A DATABASE_URL of the form postgresql://user:pass@host:port/db?key=value
// turned into a libpq conninfo string. Lives in util/ because config/
// validates the URL at start-up and store/ connects with it.
#pragma once

#include <string>

#include <usher/util/error.hpp>

namespace usher::postgres_url {

// `url` parsed: user, password (percent-decoded), host, port and database
// name, plus every query parameter passed through unchanged in meaning
// (sslmode, sslrootcert, application_name, connect_timeout, ...). When the
// URL sets no connect_timeout, `default_connect_timeout_s` is added so that
// an unreachable host fails instead of hanging. The error's detail never
// contains the password.
Result<std::string> to_conninfo(const std::string &url, int default_connect_timeout_s = 10);

// `url` with the password replaced by "***" (for messages and logs).
std::string redacted(const std::string &url);

} // namespace usher::postgres_url
