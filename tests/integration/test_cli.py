"""The command line: version, help, migrate, tokens, mode, logs, errors, configuration."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from usher_harness import ALL_TABLES, base_env, run_cli

HELP_COMMANDS = [
    [], ["serve"], ["migrate"], ["token"], ["token", "create"], ["mode"], ["mode", "get"],
    ["mode", "set"], ["logs"], ["version"],
]


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="usher-cli-")
        self.db = os.path.join(self.dir, "usher.db")
        self.env = base_env({"DATABASE_URL": f"sqlite:{self.db}", "USHER_INSTANCE": "itest-cli"})

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def usher(self, *args, env=None, timeout=30):
        return run_cli(list(args), env=env or self.env, timeout=timeout, cwd=self.dir)

    def ok(self, *args, **kw):
        result = self.usher(*args, **kw)
        self.assertEqual(result.returncode, 0,
                         f"usher {' '.join(args)}: {result.returncode} {result.stderr}")
        return result

    def assert_one_line_error(self, result, mention=None):
        self.assertNotEqual(result.returncode, 0, result.stdout)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"stderr is not one line: {result.stderr!r}")
        self.assertTrue(lines[0].startswith("usher: "), lines[0])
        if mention:
            self.assertIn(mention, lines[0])

    def tables(self, path=None):
        conn = sqlite3.connect(path or self.db, timeout=10)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()

    # --- basics -----------------------------------------------------------------
    def test_version(self):
        result = self.ok("version")
        self.assertRegex(result.stdout.strip(), r"^usher \d+\.\d+\.\d+")
        self.assertEqual(result.stdout.strip(), "usher 0.1.0")

    def test_help_on_every_command(self):
        for command in HELP_COMMANDS:
            with self.subTest(command=" ".join(command) or "(top level)"):
                result = self.usher(*command, "--help")
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertTrue(result.stdout.strip(), "help printed nothing")
                self.assertFalse(os.path.exists(self.db), "--help touched the database")

    def test_top_level_help_lists_commands(self):
        out = self.ok("--help").stdout
        for command in ("serve", "migrate", "token", "mode", "logs", "version"):
            self.assertIn(command, out)

    def test_migrate_creates_schema_and_is_repeatable(self):
        self.ok("migrate")
        self.assertTrue(set(ALL_TABLES) <= self.tables(), self.tables())
        self.ok("migrate")
        self.assertTrue(set(ALL_TABLES) <= self.tables())

    def test_token_create_prints_token_last(self):
        first = self.ok("token", "create", "--role", "admin", "--name", "ops").stdout
        second = self.ok("token", "create", "--role", "sales_manager", "--name", "sales").stdout
        tokens = [out.strip().splitlines()[-1].strip() for out in (first, second)]
        for token in tokens:
            self.assertRegex(token, r"^\S{16,}$")
        self.assertNotEqual(tokens[0], tokens[1])
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            rows = conn.execute("SELECT name, role FROM api_tokens ORDER BY id").fetchall()
            everything = "\n".join(str(r) for r in conn.execute("SELECT * FROM api_tokens"))
        finally:
            conn.close()
        self.assertEqual(rows, [("ops", "admin"), ("sales", "sales_manager")])
        for token in tokens:
            self.assertNotIn(token, everything, "a token is stored in clear")

    def test_token_create_errors(self):
        self.assert_one_line_error(self.usher("token", "create", "--role", "root", "--name", "x"))
        self.assert_one_line_error(self.usher("token", "create", "--role", "admin"))
        self.assert_one_line_error(self.usher("token", "create", "--name", "x"))

    def test_mode_get_and_set(self):
        got = self.ok("mode", "get").stdout.splitlines()
        self.assertEqual(got[0], "async_queue")
        switched = self.ok("mode", "set", "sync_direct", "--reason", "cli test").stdout.splitlines()
        self.assertEqual(switched[:2], ["sync_direct", "switched; version 2"])
        again = self.ok("mode", "set", "sync_direct", "--reason", "again").stdout.splitlines()
        self.assertEqual(again[:2], ["sync_direct", "unchanged; version 2"])
        self.assertEqual(self.ok("mode", "get").stdout.splitlines()[0], "sync_direct")
        back = self.ok("mode", "set", "async_queue").stdout.splitlines()
        self.assertEqual(back[:2], ["async_queue", "switched; version 3"])
        self.assert_one_line_error(self.usher("mode", "set", "turbo"))
        self.assert_one_line_error(self.usher("mode", "set"))
        self.assertEqual(self.ok("mode", "get").stdout.splitlines()[0], "async_queue")

    def test_logs(self):
        self.ok("mode", "set", "sync_direct", "--reason", "first-switch")
        self.ok("mode", "set", "async_queue", "--reason", "second-switch")
        out = self.ok("logs").stdout
        lines = [l for l in out.splitlines() if l.strip()]
        self.assertGreaterEqual(len(lines), 2)
        ids = [int(l.split()[0]) for l in lines]
        self.assertEqual(ids, sorted(ids, reverse=True), "logs are not newest first")
        switch_lines = [l for l in lines if l.split()[2] == "SWITCH"]
        self.assertEqual(len(switch_lines), 2, out)
        self.assertIn("second-switch", switch_lines[0])
        self.assertIn("first-switch", switch_lines[1])

        one = [l for l in self.ok("logs", "--type", "SWITCH", "--limit", "1").stdout.splitlines()
               if l.strip()]
        self.assertEqual(len(one), 1)
        self.assertIn("second-switch", one[0])
        self.assertRegex(one[0], r"^\d+ \d{4}-\d{2}-\d{2}T\S+ SWITCH ")

        none = self.ok("logs", "--type", "CRITICAL").stdout.strip()
        self.assertEqual(none, "")
        self.assert_one_line_error(self.usher("logs", "--type", "BOGUS"))
        self.assert_one_line_error(self.usher("logs", "--limit", "0"))
        self.assert_one_line_error(self.usher("logs", "--limit", "many"))

    # --- errors ------------------------------------------------------------------
    def test_unknown_command(self):
        self.assert_one_line_error(self.usher("frobnicate"))
        self.assertFalse(os.path.exists(self.db))

    def test_no_command(self):
        self.assert_one_line_error(self.usher())

    def test_unknown_flag(self):
        self.assert_one_line_error(self.usher("migrate", "--no-such-flag"))

    def test_invalid_settings_are_named(self):
        cases = [
            ("WORKER_CONCURRENCY=abc", {"WORKER_CONCURRENCY": "abc"}, [], "WORKER_CONCURRENCY"),
            ("WORKER_CONCURRENCY=0", {"WORKER_CONCURRENCY": "0"}, [], "WORKER_CONCURRENCY"),
            ("--worker-concurrency abc", {}, ["--worker-concurrency", "abc"], "WORKER_CONCURRENCY"),
            ("USHER_LISTEN=nope", {"USHER_LISTEN": "nope"}, [], "USHER_LISTEN"),
            ("USHER_LISTEN port 70000", {"USHER_LISTEN": "127.0.0.1:70000"}, [], "USHER_LISTEN"),
            ("DATABASE_URL=mysql://x", {"DATABASE_URL": "mysql://x"}, [], "DATABASE_URL"),
            ("START_WORKER=maybe", {"START_WORKER": "maybe"}, [], "START_WORKER"),
            ("LOG_FORMAT=xml", {"LOG_FORMAT": "xml"}, [], "LOG_FORMAT"),
            ("JOB_MAX_ATTEMPTS=-1", {"JOB_MAX_ATTEMPTS": "-1"}, [], "JOB_MAX_ATTEMPTS"),
            ("CONFIG_CACHE_TTL_MS=soon", {"CONFIG_CACHE_TTL_MS": "soon"}, [], "CONFIG_CACHE_TTL_MS"),
        ]
        for name, env, flags, variable in cases:
            for command in (["serve"], ["migrate"]):
                with self.subTest(case=name, command=command[0]):
                    merged = {**self.env, "USHER_LISTEN": "127.0.0.1:0", **env}
                    try:
                        result = self.usher(*command, *flags, env=merged, timeout=10)
                    except subprocess.TimeoutExpired:
                        self.fail(f"usher {command[0]} started despite {name}")
                    self.assertEqual(result.returncode, 2, result.stderr)
                    self.assert_one_line_error(result, variable)

    def test_config_file(self):
        good = os.path.join(self.dir, "good.toml")
        with open(good, "w") as f:
            f.write(f'database_url = "sqlite:{self.db}"\nworker_concurrency = 2\n')
        env = base_env()  # no DATABASE_URL in the environment
        self.assertEqual(run_cli(["--config", good, "migrate"], env=env, cwd=self.dir).returncode, 0)
        self.assertTrue(os.path.exists(self.db))

        unknown = os.path.join(self.dir, "unknown.toml")
        with open(unknown, "w") as f:
            f.write(f'database_url = "sqlite:{self.db}"\nfavourite_colour = "blue"\n')
        result = run_cli(["--config", unknown, "migrate"], env=env, cwd=self.dir)
        self.assert_one_line_error(result, "favourite_colour")

        invalid = os.path.join(self.dir, "invalid.toml")
        with open(invalid, "w") as f:
            f.write(f'database_url = "sqlite:{self.db}"\nworker_concurrency = "lots"\n')
        result = run_cli(["--config", invalid, "migrate"], env=env, cwd=self.dir)
        self.assert_one_line_error(result, "WORKER_CONCURRENCY")

        broken = os.path.join(self.dir, "broken.toml")
        with open(broken, "w") as f:
            f.write("database_url = \n[[[")
        self.assert_one_line_error(run_cli(["--config", broken, "migrate"], env=env, cwd=self.dir))

        self.assert_one_line_error(
            run_cli(["--config", os.path.join(self.dir, "missing.toml"), "migrate"], env=env,
                    cwd=self.dir))

    def test_precedence_flag_over_env_over_file(self):
        paths = {name: os.path.join(self.dir, f"{name}.db") for name in ("file", "env", "flag")}
        config = os.path.join(self.dir, "usher.toml")
        with open(config, "w") as f:
            f.write(f'database_url = "sqlite:{paths["file"]}"\n')
        no_env = base_env()
        with_env = base_env({"DATABASE_URL": f"sqlite:{paths['env']}"})
        flag = ["--database-url", f"sqlite:{paths['flag']}"]
        cases = [
            ("file only", no_env, ["--config", config, "migrate"], "file"),
            ("env beats file", with_env, ["--config", config, "migrate"], "env"),
            ("flag beats env and file", with_env, ["--config", config, "migrate", *flag], "flag"),
            ("flag beats env", with_env, ["migrate", *flag], "flag"),
            ("flag before the command", with_env, [*flag, "--config", config, "migrate"], "flag"),
        ]
        for name, env, args, winner in cases:
            with self.subTest(name):
                for path in paths.values():
                    if os.path.exists(path):
                        os.remove(path)
                result = run_cli(args, env=env, cwd=self.dir)
                self.assertEqual(result.returncode, 0, result.stderr)
                created = {n for n, p in paths.items() if os.path.exists(p)}
                self.assertEqual(created, {winner})

    def test_valid_flag_overrides_invalid_env(self):
        env = dict(self.env, WORKER_CONCURRENCY="abc")
        result = self.usher("migrate", "--worker-concurrency", "3", env=env)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_database_error_is_one_line(self):
        blocker = os.path.join(self.dir, "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        env = dict(self.env, DATABASE_URL=f"sqlite:{blocker}/sub/usher.db")
        self.assert_one_line_error(self.usher("mode", "get", env=env))


if __name__ == "__main__":
    unittest.main()
