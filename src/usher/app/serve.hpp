// `usher serve`: builds every part from the configuration, runs the HTTP API
// until SIGTERM/SIGINT, then shuts down gracefully.
#pragma once

#include <optional>
#include <string>

#include <usher/config/config.hpp>

namespace usher::app {

// Returns the process exit status.
int serve(const config::Config &config);

// `usher worker`: the worker alone, until SIGTERM/SIGINT.
int run_worker(const config::Config &config);

// `usher import FILE.csv` (docs/operations.md "Importing buyers").
struct ImportRequest {
  std::string file;
  std::optional<std::string> product; // for rows without one
  bool dry_run = false;
  std::optional<std::string>
      tokens_path;          // where activation tokens go (created 0600, never overwritten)
  std::string rejects_path; // written when a row is rejected
};

// Exit status 0 when every row was imported or existed, 1 when a row was
// rejected (listed in the rejects file); throws for a file usher cannot
// read as CSV with the right header.
int run_import(const config::Config &config, const ImportRequest &request);

} // namespace usher::app
