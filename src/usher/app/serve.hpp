// `usher serve`: builds every part from the configuration, runs the HTTP API
// until SIGTERM/SIGINT, then shuts down gracefully.
#pragma once

#include <usher/config/config.hpp>

namespace usher::app {

// Returns the process exit status.
int serve(const config::Config &config);

// `usher worker`: the worker alone, until SIGTERM/SIGINT.
int run_worker(const config::Config &config);

} // namespace usher::app
