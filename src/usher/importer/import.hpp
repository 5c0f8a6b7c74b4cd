// `usher import FILE.csv`: the buyers who paid before usher existed, each
// row through the intake service (the same path as POST /api/v1/users, so
// the same validation, mode, queue and exactly-once guarantees) with a key
// of its own, so that a second run of the same file creates nothing new.
// The CLI (app/serve.cpp run_import) opens the file and builds the service;
// this part knows rows, outcomes and the summary.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <usher/importer/csv.hpp>
#include <usher/intake/service.hpp>
#include <usher/util/error.hpp>

namespace usher::importer {

// Where each field is in a record.
struct Columns {
  std::size_t count = 0;
  std::size_t email = 0;
  std::size_t full_name = 0;
  std::optional<std::size_t> phone;
  std::optional<std::size_t> product;
};

// The header row: `email` and `full_name` required, `phone` and `product`
// optional, in any order, compared case-insensitively after trimming. Any
// other column is an error: a misspelt one would otherwise be dropped.
Result<Columns> parse_header(const std::vector<std::string> &header);

// A row's key: the same email always gets the same key, so a row imported
// before is replayed, not created again (and a row whose details changed is
// refused as reused, which counts as existed).
std::string row_key(const std::string &email_normalized);

struct Reject {
  std::size_t line = 0;
  std::string email; // as written in the file
  std::string code;  // the API's error code (docs/api.md), or field_count, duplicate_in_file
  std::string reason;
};

struct IssuedToken {
  std::string email;
  std::string token; // clear: written only where the operator asked (--tokens)
};

struct Summary {
  std::size_t rows = 0;
  std::size_t created = 0; // provisioned at once (sync_direct, fallback); dry run: would be new
  std::size_t queued = 0;  // recorded; a worker creates the account
  std::size_t existed = 0; // an account or a request for the email existed already
  std::size_t rejected = 0;
  std::vector<Reject> rejects;
  std::vector<IssuedToken> tokens; // kept only with Options::keep_tokens
};

struct Options {
  std::optional<std::string> product; // for rows whose product is empty
  provisioning::Creator caller{0, "import", ""};
  std::size_t max_in_flight = 256;                 // rows handed to the intake, not yet answered
  std::chrono::milliseconds answer_timeout{60000}; // longest wait for one answer
  bool keep_tokens = false;
  // Called on the reading thread every `progress_every` rows and at the end.
  std::function<void(const Summary &)> progress;
  std::size_t progress_every = 500;
};

// Reads every record after the header and submits each valid row to
// `intake`. Without an intake (a dry run) nothing is written: `exists` says
// which normalised emails already have an account. Throws CsvError for a
// file that is not CSV, std::runtime_error when an answer takes longer than
// answer_timeout (rows answered so far are recorded; a re-run is safe).
Summary run(CsvReader &reader, const Columns &columns, intake::Service *intake,
            const std::function<bool(const std::string &)> &exists, const Options &options);

} // namespace usher::importer
