// One customer's story (SPEC §8): the request, each worker attempt, the
// health events about the job and the alerts sent for them, in time order,
// read from the rows that intake, the worker, the health log and the alert
// outbox already write.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <usher/jobs/job_store.hpp>

namespace usher::jobs {

struct Timeline {
  Job job;
  std::string created_by; // "NAME (token ID)", from the request
  // {"at", "kind", ...} objects sorted by `at` (ISO 8601 sorts as text);
  // at equal times a request comes before an attempt, an attempt before an
  // event, an event before its alerts.
  nlohmann::json entries = nlohmann::json::array();

  nlohmann::json to_json() const;
};

// The timeline of job `job_id`; nullopt when there is no such job.
std::optional<Timeline> timeline(soci::session &sql, std::int64_t job_id);

// The newest job (dead ones included) for a normalised email; nullopt when
// the email was never requested.
std::optional<std::int64_t> newest_job_for_email(soci::session &sql,
                                                 const std::string &email_normalized);

} // namespace usher::jobs
