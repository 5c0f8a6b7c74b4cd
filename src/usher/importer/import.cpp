#include <usher/importer/import.hpp>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <usher/provisioning/new_user.hpp>
#include <usher/util/crypto.hpp>
#include <usher/util/text.hpp>

namespace usher::importer {
namespace {

// Shared by the reading thread and the completions, which may outlive a
// run that gave up waiting.
struct Tracker {
  std::mutex mutex;
  std::condition_variable answered;
  std::size_t in_flight = 0;
  Summary summary;
};

void add_reject(Summary &summary, std::size_t line, std::string email, std::string code,
                std::string reason) {
  ++summary.rejected;
  summary.rejects.push_back(Reject{line, std::move(email), std::move(code), std::move(reason)});
}

// Files written by hand or by spreadsheets: blanks around a value are not
// part of it; an empty optional field is absent.
std::string field_at(const std::vector<std::string> &record, std::size_t index) {
  return std::string(text::trim(record[index]));
}

} // namespace

Result<Columns> parse_header(const std::vector<std::string> &header) {
  Columns columns;
  columns.count = header.size();
  std::optional<std::size_t> email;
  std::optional<std::size_t> full_name;
  for (std::size_t i = 0; i < header.size(); ++i) {
    const std::string name = text::ascii_lower(text::trim(header[i]));
    std::optional<std::size_t> *slot = nullptr;
    if (name == "email") slot = &email;
    if (name == "full_name") slot = &full_name;
    if (name == "phone") slot = &columns.phone;
    if (name == "product") slot = &columns.product;
    if (slot == nullptr) {
      return fail(ErrorKind::invalid, "unknown_column",
                  "the header names a column usher does not know: \"" + name +
                      "\" (the columns are email, full_name, phone, product)",
                  "");
    }
    if (slot->has_value()) {
      return fail(ErrorKind::invalid, "duplicate_column",
                  "the header names the column " + name + " twice", "");
    }
    *slot = i;
  }
  if (!email || !full_name) {
    return fail(ErrorKind::invalid, "missing_column",
                "the header must name the columns email and full_name (phone and product are "
                "optional)",
                "");
  }
  columns.email = *email;
  columns.full_name = *full_name;
  return columns;
}

std::string row_key(const std::string &email_normalized) {
  return "import:" + crypto::sha256_hex(email_normalized);
}

Summary run(CsvReader &reader, const Columns &columns, intake::Service *intake,
            const std::function<bool(const std::string &)> &exists, const Options &options) {
  auto tracker = std::make_shared<Tracker>();
  std::unordered_map<std::string, std::size_t> seen; // normalised email -> line
  const auto report = [&] {
    if (!options.progress) return;
    Summary snapshot;
    {
      std::lock_guard lock(tracker->mutex);
      snapshot.rows = tracker->summary.rows;
      snapshot.created = tracker->summary.created;
      snapshot.queued = tracker->summary.queued;
      snapshot.existed = tracker->summary.existed;
      snapshot.rejected = tracker->summary.rejected;
    }
    options.progress(snapshot);
  };
  const auto wait_for = [&](auto done, const char *what) {
    std::unique_lock lock(tracker->mutex);
    if (!tracker->answered.wait_for(lock, options.answer_timeout, done)) {
      throw std::runtime_error(std::string("no answer from the database for ") +
                               std::to_string(options.answer_timeout.count() / 1000) + " s " +
                               what +
                               "; the rows answered so far are recorded, and running the "
                               "same file again creates nothing twice");
    }
  };

  while (auto record = reader.next()) {
    const std::size_t line = reader.line();
    {
      std::lock_guard lock(tracker->mutex);
      ++tracker->summary.rows;
    }
    if (tracker->summary.rows % options.progress_every == 0) report();
    const std::string raw_email =
        columns.email < record->size() ? field_at(*record, columns.email) : std::string();
    if (record->size() != columns.count) {
      std::lock_guard lock(tracker->mutex);
      add_reject(tracker->summary, line, raw_email, "field_count",
                 std::to_string(record->size()) + " fields where the header names " +
                     std::to_string(columns.count));
      continue;
    }
    nlohmann::json body = {{"email", raw_email},
                           {"full_name", field_at(*record, columns.full_name)}};
    if (columns.phone) {
      if (auto phone = field_at(*record, *columns.phone); !phone.empty()) body["phone"] = phone;
    }
    std::string product = columns.product ? field_at(*record, *columns.product) : std::string();
    if (product.empty() && options.product) product = *options.product;
    if (!product.empty()) body["product"] = product;

    auto user = provisioning::parse_new_user(body);
    if (!user) {
      std::lock_guard lock(tracker->mutex);
      add_reject(tracker->summary, line, raw_email, user.error().code, user.error().detail);
      continue;
    }
    const std::string email = user->email;
    if (const auto [first, inserted] = seen.emplace(email, line); !inserted) {
      std::lock_guard lock(tracker->mutex);
      add_reject(tracker->summary, line, raw_email, "duplicate_in_file",
                 "the same email as line " + std::to_string(first->second));
      continue;
    }
    if (intake == nullptr) {
      const bool existed = exists && exists(email);
      std::lock_guard lock(tracker->mutex);
      ++(existed ? tracker->summary.existed : tracker->summary.created);
      continue;
    }

    wait_for([&] { return tracker->in_flight < options.max_in_flight; }, "while handing rows over");
    {
      std::lock_guard lock(tracker->mutex);
      ++tracker->in_flight;
    }
    intake::Submission submission{std::move(*user), body, row_key(email)};
    intake->submit(
        std::move(submission), options.caller,
        [tracker, line, raw_email, keep = options.keep_tokens](intake::Outcome outcome) {
          std::lock_guard lock(tracker->mutex);
          auto &summary = tracker->summary;
          switch (outcome.kind) {
          case intake::OutcomeKind::queued:
          case intake::OutcomeKind::created:
            ++(outcome.kind == intake::OutcomeKind::queued ? summary.queued : summary.created);
            if (keep && outcome.answer.contains("activation_token")) {
              summary.tokens.push_back(
                  IssuedToken{outcome.answer.value("email", raw_email),
                              outcome.answer["activation_token"].get<std::string>()});
            }
            break;
          case intake::OutcomeKind::replay:
            ++summary.existed; // imported by an earlier run
            break;
          case intake::OutcomeKind::refused:
            if (outcome.error.code == "user_exists" ||
                outcome.error.code == "idempotency_key_reused") {
              ++summary.existed;
            } else {
              add_reject(summary, line, raw_email, outcome.error.code, outcome.error.detail);
            }
            break;
          }
          --tracker->in_flight;
          tracker->answered.notify_all();
        });
  }
  wait_for([&] { return tracker->in_flight == 0; }, "for the last rows");
  report();
  std::lock_guard lock(tracker->mutex);
  return std::move(tracker->summary);
}

} // namespace usher::importer
