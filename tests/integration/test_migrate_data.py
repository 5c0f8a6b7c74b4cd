"""`usher migrate-data --from sqlite:PATH --to postgresql://...` (issue 12
item 6; docs/operations.md): an embedded install moved to PostgreSQL keeps
every row of every table, its ids, its tokens and passwords; new rows get
new ids; a target that holds data is refused and left as it was; the
arguments are checked.

Always runs against a real PostgreSQL (pg_harness): the source is SQLite by
definition, so it is not among the integration.pg.* variants."""

import secrets
import tempfile
import urllib.parse

from pg_harness import shared_cluster
from usher_harness import (ServerPerTestCase, UsherServer, run_cli,
                           unique_email, wait_for_job)

TABLES = ("accounts", "tripwire_users", "activation_tokens", "sessions", "api_tokens",
          "system_config", "idempotency_keys", "system_health_logs", "alert_outbox",
          "alert_conditions", "jobs", "job_attempts", "webhook_outbox")
FAST_JOBS = {"JOB_LEASE_MS": "1000", "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50",
             "REDIS_URL": "", "REDIS_HOST": ""}


class MigrateDataTest(ServerPerTestCase):
    def sqlite_install(self):
        """An SQLite install with a bit of everything: users made inline and by
        the worker, one activated (password and session), an Idempotency-Key,
        a dead job's events, a mode switch."""
        server = self.new_server("copy-src", mode="async_queue", env=FAST_JOBS)
        queued = [server.create_user(email=unique_email("copy-q"),
                                     headers={"Idempotency-Key": f"k-{i}"}) for i in range(3)]
        for resp in queued:
            self.assertEqual(resp.status, 202, resp)
            wait_for_job(server, resp.json["job_id"], "succeeded")
        switched = server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                                  body={"mode": "sync_direct", "reason": "before the move"})
        self.assertEqual(switched.status, 200, switched)
        created = server.create_user(email=unique_email("copy-s"))
        self.assertEqual(created.status, 201, created)
        password = f"pw-{secrets.token_hex(8)}"
        activated = server.request("POST", "/api/v1/auth/activate",
                                   body={"token": created.json["activation_token"],
                                         "password": password})
        self.assertEqual(activated.status, 200, activated)
        self.assertEqual(server.stop(), 0)
        return server, created.json["email"], password

    def counts(self, server):
        return {table: server.query(f"SELECT COUNT(*) FROM {table}")[0][0] for table in TABLES}

    def test_an_sqlite_install_moves_to_postgresql_whole(self):
        source, email, password = self.sqlite_install()
        cluster = shared_cluster()
        database = cluster.create_database("copy")
        url = cluster.url(database)
        before = self.counts(source)
        self.assertGreater(before["accounts"], 0)
        self.assertGreater(before["job_attempts"], 0)
        self.assertGreater(before["idempotency_keys"], 0)

        copied = run_cli(["migrate-data", "--from", f"sqlite:{source.db_path}", "--to", url])
        self.assertEqual(copied.returncode, 0, copied.stderr)
        self.assertIn("the counts match", copied.stdout)
        for table in TABLES:
            self.assertRegex(copied.stdout, rf"(^|\n)  {table} +{before[table]} rows\n")
        password_in_url = urllib.parse.urlsplit(url).password
        self.assertTrue(password_in_url)
        self.assertNotIn(password_in_url, copied.stdout + copied.stderr)
        self.assertIn(":***@", copied.stdout)

        target = self.own(UsherServer("copy-dst", mode=None, tokens=(), pg=(cluster, database),
                                      env=FAST_JOBS))
        self.assertEqual(self.counts(target), before)
        max_account = target.query("SELECT MAX(id) FROM accounts")[0][0]
        max_job = target.query("SELECT MAX(id) FROM jobs")[0][0]
        target.tokens = dict(source.tokens)  # the same tokens, copied
        target.start()

        # The copied tokens, passwords, jobs and mode work on PostgreSQL.
        self.assertEqual(target.get("/api/v1/admin/system/mode", token="admin").json["mode"],
                         "sync_direct")
        login = target.request("POST", "/api/v1/auth/login",
                               body={"email": email, "password": password})
        self.assertEqual(login.status, 200, login)
        jobs = target.get("/api/v1/admin/jobs?status=succeeded", token="admin").json["jobs"]
        self.assertEqual(len(jobs), before["jobs"])
        again = target.create_user(email=email)
        self.assertProblem(again, 409, "user_exists")
        # New rows take ids past the copied ones.
        fresh = target.create_user(email=unique_email("copy-new"))
        self.assertEqual(fresh.status, 201, fresh)
        self.assertGreater(fresh.json["user_id"], max_account)
        self.assertGreater(fresh.json["job_id"], max_job)
        target.tokens["later"] = target.create_token("admin", "made-after-the-move")
        self.assertEqual(target.get("/api/v1/admin/queue", token="later").status, 200)
        self.assertEqual(target.stop(), 0)

        # Into a database that holds data: refused, nothing changed.
        after = self.counts(target)
        refused = run_cli(["migrate-data", "--from", f"sqlite:{source.db_path}", "--to", url])
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn("already holds data", refused.stderr)
        self.assertEqual(self.counts(target), after)

    def test_bad_arguments_are_refused_with_a_clear_message(self):
        cluster = shared_cluster()
        url = cluster.url(cluster.create_database("copy-bad"))
        cases = [
            (["--from", "postgresql://x@127.0.0.1:1/db", "--to", url], "--from must be sqlite:"),
            (["--from", "sqlite:/nonexistent/usher.db", "--to", url], "no database at"),
            (["--from", "sqlite:/etc/hostname", "--to", "sqlite:/tmp/x.db"],
             "--to must be postgresql"),
            (["--to", url], "--from is required"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = run_cli(["migrate-data", *args])
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertIn(message, result.stderr)
        # An unreachable target fails, names --to, and shows no password.
        with tempfile.NamedTemporaryFile(suffix=".db") as empty:
            unreachable = run_cli(["migrate-data", "--from", f"sqlite:{empty.name}", "--to",
                                   "postgresql://u:sekrit@127.0.0.1:1/db"])
        self.assertEqual(unreachable.returncode, 1)
        self.assertNotIn("sekrit", unreachable.stderr + unreachable.stdout)
