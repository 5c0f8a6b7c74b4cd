// `usher`'s command line: the commands, their options and the settings flags,
// parsed with CLI11, then the configuration loaded and the command run.
#include <usher/cli/cli.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/app/logging.hpp>
#include <usher/app/serve.hpp>
#include <usher/cli/commands.hpp>
#include <usher/config/config.hpp>
#include <usher/store/database.hpp>
#include <usher/util/crypto.hpp>

namespace usher::cli {

int run(int argc, char **argv) {
  store::configure_sqlite_process(); // before any connection: see its comment
  CLI::App app{"usher: provisions customer accounts exactly once"};
  app.require_subcommand(1);
  app.fallthrough(); // settings flags are accepted after the command too

  std::string config_file;
  app.add_option("--config", config_file,
                 "TOML file with settings (keys: lower-case variable names)")
      ->check(CLI::ExistingFile);
  std::map<std::string, std::string> flags;
  std::map<std::string, std::string> flag_values;
  for (const auto &setting : config::settings()) {
    app.add_option(config::flag_name(setting.name), flag_values[setting.name],
                   setting.help + " [" + setting.name + "]");
  }

  auto *serve = app.add_subcommand("serve", "HTTP API and worker in one process");
  auto *worker = app.add_subcommand("worker", "the worker alone (scale-out)");
  auto *migrate = app.add_subcommand("migrate", "apply pending schema migrations and exit");

  auto *backup = app.add_subcommand(
      "backup",
      "write a consistent copy of the running SQLite database to PATH (never overwrites)");
  std::string backup_path;
  backup->add_option("path", backup_path, "where the copy goes; must not exist")->required();
  auto *restore = app.add_subcommand(
      "restore", "make the backup at PATH the database (usher stopped, old database moved aside)");
  std::string restore_path;
  restore->add_option("path", restore_path, "a file written by usher backup")
      ->required()
      ->check(CLI::ExistingFile);

  auto *migrate_data = app.add_subcommand(
      "migrate-data",
      "copy every table of an SQLite database into a new, empty PostgreSQL database and "
      "compare the counts (usher stopped; docs/operations.md)");
  std::string copy_from;
  std::string copy_to;
  migrate_data->add_option("--from", copy_from, "sqlite:PATH, the database to copy")->required();
  migrate_data->add_option("--to", copy_to, "postgresql://user:pass@host:port/db, empty")
      ->required();

  auto *token = app.add_subcommand("token", "API tokens");
  token->require_subcommand(1);
  auto *token_create = token->add_subcommand("create", "create a token; printed once, last line");
  std::string role_text;
  std::string token_name;
  token_create->add_option("--role", role_text, "admin or sales_manager")
      ->required()
      ->check(CLI::IsMember({"admin", "sales_manager"}));
  token_create->add_option("--name", token_name, "who or what the token is for")->required();
  auto *token_list = token->add_subcommand(
      "list", "list tokens: id, role, created, last used, revoked, name (never the token)");
  auto *token_revoke =
      token->add_subcommand("revoke", "revoke a token; every instance refuses it within 2 s");
  std::int64_t revoke_id = 0;
  token_revoke->add_option("id", revoke_id, "the token id")->required()->check(CLI::PositiveNumber);

  auto *users = app.add_subcommand("users", "customer accounts");
  users->require_subcommand(1);
  auto *users_resend = users->add_subcommand(
      "resend", "a new activation token for an account not yet activated (printed once, last "
                "line); earlier tokens stop working");
  std::string resend_email;
  users_resend->add_option("email", resend_email, "the account's email")->required();

  auto *import_cmd = app.add_subcommand(
      "import", "create accounts from a CSV file (header: email,full_name[,phone][,product]), each "
                "row through the same intake as the API; running it again creates nothing twice");
  app::ImportRequest import_request;
  import_cmd->add_option("file", import_request.file, "the CSV file")
      ->required()
      ->check(CLI::ExistingFile);
  import_cmd->add_option("--product", import_request.product, "the product of rows without one");
  import_cmd->add_flag("--dry-run", import_request.dry_run,
                       "check every row and say what would happen; write nothing");
  import_cmd->add_option(
      "--tokens", import_request.tokens_path,
      "write the new accounts' activation tokens to this file (created 0600; must "
      "not exist)");
  import_cmd->add_option("--rejects", import_request.rejects_path,
                         "where the rejected rows go, with the reason [default: FILE.rejects.csv]");

  auto *mode = app.add_subcommand("mode", "read or flip the kill switch");
  mode->require_subcommand(1);
  auto *mode_get = mode->add_subcommand("get", "print the system mode");
  auto *mode_set = mode->add_subcommand("set", "set the system mode");
  std::string mode_text;
  std::string reason;
  mode_set->add_option("mode", mode_text, "async_queue or sync_direct")
      ->required()
      ->check(CLI::IsMember({"async_queue", "sync_direct"}));
  mode_set->add_option("--reason", reason, "why (recorded in the SWITCH event)");

  auto *logs = app.add_subcommand("logs", "print recent health events, newest first");
  std::optional<std::string> log_type;
  int log_limit = 50;
  logs->add_option("--type", log_type, "INFO, WARNING, ERROR, SWITCH or CRITICAL");
  logs->add_option("--limit", log_limit, "how many events")->check(CLI::Range(1, 10000));

  auto *jobs =
      app.add_subcommand("jobs", "list jobs, newest first; `jobs retry ID` re-queues a dead one");
  std::optional<std::string> job_status;
  int job_limit = 50;
  jobs->add_option("--status", job_status, "queued, running, succeeded or dead");
  jobs->add_option("--limit", job_limit, "how many jobs")->check(CLI::Range(1, 10000));
  auto *jobs_retry = jobs->add_subcommand("retry", "re-queue a dead job");
  std::int64_t retry_id = 0;
  jobs_retry->add_option("id", retry_id, "the job id")->required()->check(CLI::PositiveNumber);
  auto *jobs_show = jobs->add_subcommand("show", "print one job's timeline, oldest entry first");
  std::int64_t show_id = 0;
  bool show_json = false;
  jobs_show->add_option("id", show_id, "the job id")->required()->check(CLI::PositiveNumber);
  jobs_show->add_flag("--json", show_json, "print the timeline as JSON (as the API answers)");

  auto *alerts_cmd = app.add_subcommand("alerts", "Telegram alerts");
  alerts_cmd->require_subcommand(1);
  auto *alerts_test = alerts_cmd->add_subcommand(
      "test",
      "send a test message to every TELEGRAM_ADMIN_CHAT_ID now; fails with Telegram's answer");

  auto *version = app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) return app.exit(e); // --help
    std::fprintf(stderr, "usher: %s\n", e.what());
    return 2;
  }

  if (version->parsed()) {
    std::printf("usher %s\n", USHER_VERSION);
    return 0;
  }

  for (const auto &setting : config::settings()) {
    if (app.count(config::flag_name(setting.name)) > 0)
      flags[setting.name] = flag_values[setting.name];
  }
  config::Sources sources;
  if (!config_file.empty()) sources.file = config_file;
  // config::load calls this before any thread starts (serve and the worker start theirs later)
  // and does not keep it; nothing in usher calls setenv.
  sources.env = [](const char *name) -> const char * {
    return std::getenv(name); // NOLINT(concurrency-mt-unsafe): single-threaded here, see above
  };
  sources.flags = std::move(flags);
  const auto config = config::load(sources);
  if (!config) {
    std::fprintf(stderr, "usher: invalid configuration: %s\n", config.error().detail.c_str());
    return 2;
  }

  try {
    app::setup_logging(config->log_format, config->instance);
    crypto::initialise();
    if (serve->parsed()) return app::serve(*config);
    if (worker->parsed()) return app::run_worker(*config);
    if (jobs_retry->parsed()) return cli::retry_job(*config, retry_id);
    if (jobs_show->parsed()) return cli::show_job(*config, show_id, show_json);
    if (jobs->parsed()) return cli::list_jobs(*config, job_status, job_limit);
    if (migrate->parsed()) return cli::migrate(*config);
    if (backup->parsed()) return cli::backup(*config, backup_path);
    if (restore->parsed()) return cli::restore(*config, restore_path);
    if (migrate_data->parsed()) return cli::migrate_data(*config, copy_from, copy_to);
    if (token_create->parsed()) {
      return create_token(*config, *auth::parse_role(role_text), token_name);
    }
    if (token_list->parsed()) return cli::list_tokens(*config);
    if (users_resend->parsed()) return cli::resend_activation(*config, resend_email);
    if (import_cmd->parsed()) {
      if (import_request.rejects_path.empty()) {
        import_request.rejects_path = import_request.file + ".rejects.csv";
      }
      return app::run_import(*config, import_request);
    }
    if (token_revoke->parsed()) return cli::revoke_token(*config, revoke_id);
    if (mode_get->parsed()) return cli::mode_get(*config);
    if (mode_set->parsed()) return cli::mode_set(*config, *system::parse_mode(mode_text), reason);
    if (logs->parsed()) return cli::logs(*config, log_type, log_limit);
    if (alerts_test->parsed()) return cli::alerts_test(*config);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "usher: %s\n", e.what());
    return 1;
  }
  return 1;
}

} // namespace usher::cli
