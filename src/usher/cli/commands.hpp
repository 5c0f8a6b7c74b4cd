// The administrative commands that work on the database directly, so they
// work while the API is down. Each prints its result on stdout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <usher/auth/api_tokens.hpp>
#include <usher/config/config.hpp>
#include <usher/system/system_mode.hpp>

namespace usher::cli {

int migrate(const config::Config &config);
// `usher backup PATH`: a consistent copy of the running SQLite database
// (store::backup); throws when PATH exists or the copy fails.
int backup(const config::Config &config, const std::string &path);
// `usher restore PATH`: the backup at PATH becomes the database of
// DATABASE_URL, which must not exist (store::restore); usher is stopped.
int restore(const config::Config &config, const std::string &path);
// `usher migrate-data --from sqlite:PATH --to postgresql://...`: every table
// copied into an empty PostgreSQL database and the counts compared
// (store::copy_database); throws when the copy fails (nothing committed).
int migrate_data(const config::Config &config, const std::string &from, const std::string &to);
int create_token(const config::Config &config, auth::Role role, const std::string &name);
// `usher users resend EMAIL`: a new activation token for an account not yet
// activated (printed once, last line), the earlier ones revoked; throws
// when there is no such account or it is activated.
int resend_activation(const config::Config &config, const std::string &email);
// `usher token list`: one line per token (never the token or its digest).
int list_tokens(const config::Config &config);
// `usher token revoke ID`: exit 1 when there is no such token.
int revoke_token(const config::Config &config, std::int64_t id);
int mode_get(const config::Config &config);
int mode_set(const config::Config &config, system::SystemMode mode, const std::string &reason);
int logs(const config::Config &config, const std::optional<std::string> &type, int limit);
int list_jobs(const config::Config &config, const std::optional<std::string> &status, int limit);
int retry_job(const config::Config &config, std::int64_t id);
// `usher jobs show ID`: the job's timeline (SPEC §8), one line per entry, or
// the API's JSON with `json`; throws when there is no such job.
int show_job(const config::Config &config, std::int64_t id, bool json);

// `usher alerts test`: sends a test message to every TELEGRAM_ADMIN_CHAT_ID
// at once (not through the outbox); throws with Telegram's description
// when any chat did not get it, or when alerts are not configured.
int alerts_test(const config::Config &config);

} // namespace usher::cli
