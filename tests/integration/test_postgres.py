"""PostgreSQL specifics (issue 12): a DATABASE_URL that cannot work stops usher
with a non-zero exit and a message naming DATABASE_URL, never the password;
several processes migrating one database at once apply each migration once;
`usher backup`/`restore` refuse PostgreSQL and point to pg_dump; every
connection has a lock timeout and a statement timeout. SOCI's PostgreSQL
backend and libpq are loaded by the first PostgreSQL connection: a serve on
SQLite maps neither.

Always runs against a real PostgreSQL (pg_harness): a missing PostgreSQL fails.
"""

import os
import subprocess
import tempfile
import time
import unittest
import uuid

from pg_harness import _free_port, shared_cluster
from usher_harness import (
    USHER_BIN,
    UsherServer,
    base_env,
    http_request,
    mapped_libraries,
    run_cli,
    wait_until,
)

# Start-up must fail fast: connect_timeout is 5 s and nothing else waits.
STARTUP_BOUND = 15.0


class PostgresStartupTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = shared_cluster()
        cls.database = cls.cluster.create_database("startup")
        cls.workdir = tempfile.mkdtemp(prefix="usher-pg-startup-")

    def serve_fails(self, url, *, secrets, extra_env=None):
        """`usher serve` with `url`: exits non-zero within STARTUP_BOUND, names
        DATABASE_URL on stderr and prints none of `secrets`; returns stderr."""
        env = base_env({"DATABASE_URL": url, "USHER_LISTEN": "127.0.0.1:0", **(extra_env or {})})
        started = time.monotonic()
        result = subprocess.run([USHER_BIN, "serve"], env=env, capture_output=True, text=True,
                                timeout=STARTUP_BOUND + 5, cwd=self.workdir,
                                stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertLess(elapsed, STARTUP_BOUND)
        self.assertIn("DATABASE_URL", result.stderr)
        self.assertNotIn("usher listening", result.stdout)
        for secret in secrets:
            self.assertNotIn(secret, result.stdout + result.stderr)
        # one line: the error, then exit (SPEC §1)
        self.assertEqual(len([l for l in result.stderr.splitlines() if l.strip()]), 1,
                         result.stderr)
        return result.stderr

    def test_wrong_password(self):
        wrong = "wrongpw" + uuid.uuid4().hex[:8]
        stderr = self.serve_fails(self.cluster.url(self.database, password=wrong),
                                  secrets=[wrong, self.cluster.password])
        self.assertIn("password", stderr)
        self.assertIn("***", stderr)

    def test_missing_database(self):
        stderr = self.serve_fails(self.cluster.url("no_such_db_" + uuid.uuid4().hex[:6]),
                                  secrets=[self.cluster.password])
        self.assertIn("does not exist", stderr)

    def test_unreachable_port(self):
        stderr = self.serve_fails(self.cluster.url(self.database, port=_free_port()),
                                  secrets=[self.cluster.password])
        self.assertIn("is PostgreSQL running", stderr)

    def test_malformed_url(self):
        secret = "badurlpw" + uuid.uuid4().hex[:8]
        stderr = self.serve_fails(f"postgresql://postgres:{secret}@127.0.0.1:notaport/db",
                                  secrets=[secret])
        self.assertIn("port", stderr)

    def test_a_good_url_serves_and_the_query_parameters_reach_libpq(self):
        # application_name is passed through: PostgreSQL shows it per connection.
        app = "usher_pg_" + uuid.uuid4().hex[:6]
        url = self.cluster.url(self.database) + f"&application_name={app}"
        result = run_cli(["migrate"], env=base_env({"DATABASE_URL": url}), cwd=self.workdir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")  # no NOTICE from libpq either
        env = base_env({"DATABASE_URL": url, "USHER_LISTEN": "127.0.0.1:0"})
        proc = subprocess.Popen([USHER_BIN, "serve"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd=self.workdir,
                                stdin=subprocess.DEVNULL)
        try:
            first = proc.stdout.readline().decode()
            self.assertIn("usher listening", first)
            # /readyz pings through a reader's connection (opened on first use)
            port = int(first.strip().rsplit(":", 1)[1])
            self.assertEqual(http_request(port, "GET", "/readyz").status, 200)
            for library in ("libsoci_postgresql", "libpq"):
                self.assertNotEqual(mapped_libraries(proc.pid, library), set(), library)
            conn = self.cluster.connect("postgres")
            try:
                cur = conn.cursor()

                def connected():
                    cur.execute("SELECT COUNT(*) FROM pg_stat_activity "
                                "WHERE application_name = %s", (app,))
                    return cur.fetchone()[0] > 0
                wait_until(connected, what=f"a connection named {app}")
            finally:
                conn.close()
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=20), 0)
            proc.stdout.close()

    def test_a_backend_that_cannot_be_loaded_fails_the_connection(self):
        # An empty libsoci_postgresql.so.4.0 found first: dlopen fails.
        fake = tempfile.mkdtemp(prefix="usher-no-backend-", dir=self.workdir)
        open(os.path.join(fake, "libsoci_postgresql.so.4.0"), "wb").close()
        stderr = self.serve_fails(self.cluster.url(self.database),
                                  secrets=[self.cluster.password],
                                  extra_env={"LD_LIBRARY_PATH": fake})
        self.assertIn("cannot load libsoci_postgresql.so.4.0", stderr)
        self.assertIn("file too short", stderr)

    def test_a_serve_on_sqlite_maps_neither_libpq_nor_the_backend(self):
        # docs/benchmarks.md, "Memory": libpq and the libraries it pulls in are
        # about 5 MiB of an idle serve's resident pages.
        server = UsherServer("pg-not-loaded", env={
            "DATABASE_URL": "sqlite:" + os.path.join(self.workdir, "not-loaded.db")})
        self.addCleanup(server.close)
        server.start()
        self.assertEqual(http_request(server.port, "GET", "/readyz").status, 200)
        for library in ("libsoci_postgresql", "libpq", "libldap", "libgnutls"):
            self.assertEqual(mapped_libraries(server.proc.pid, library), set(), library)
        self.assertEqual(server.stop(), 0)

    def test_concurrent_migrations_apply_each_once(self):
        database = self.cluster.create_database("migrate")
        env = base_env({"DATABASE_URL": self.cluster.url(database)})
        procs = [subprocess.Popen([USHER_BIN, "migrate"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=self.workdir,
                                  stdin=subprocess.DEVNULL) for _ in range(4)]
        applied = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err)
            applied.append(int(out.split()[1]))  # "applied N migrations; ..."
        # One process applied them all, the others waited and found none to apply.
        self.assertEqual(sorted(applied)[:-1], [0] * (len(procs) - 1))
        self.assertGreater(max(applied), 0)
        conn = self.cluster.connect(database)
        try:
            cur = conn.cursor()
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations")
            total, distinct = cur.fetchone()
            self.assertEqual(total, distinct)
            self.assertEqual(total, max(applied))
        finally:
            conn.close()

    def test_backup_and_restore_refuse_and_point_to_pg_dump(self):
        env = base_env({"DATABASE_URL": self.cluster.url(self.database)})
        target = os.path.join(self.workdir, "copy.db")
        backup = run_cli(["backup", target], env=env, cwd=self.workdir)
        self.assertNotEqual(backup.returncode, 0)
        self.assertIn("pg_dump", backup.stderr)
        self.assertFalse(os.path.exists(target))
        # restore refuses before it reads the file (the command line checks it exists)
        source = os.path.join(self.workdir, "some-backup.db")
        open(source, "wb").close()
        restore = run_cli(["restore", source], env=env, cwd=self.workdir)
        self.assertNotEqual(restore.returncode, 0)
        self.assertIn("pg_restore", restore.stderr)
        for result in (backup, restore):
            self.assertNotIn(self.cluster.password, result.stdout + result.stderr)


class PostgresTimeoutTest(unittest.TestCase):
    """A statement that waits on a lock ends at DB_BUSY_TIMEOUT_MS (lock_timeout),
    or at DB_STATEMENT_TIMEOUT_MS (statement_timeout) when that comes first:
    the command fails with the reason, it never hangs."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = shared_cluster()
        cls.workdir = tempfile.mkdtemp(prefix="usher-pg-timeouts-")

    def mode_set_while_locked(self, busy_ms, statement_ms):
        database = self.cluster.create_database("timeouts")
        env = base_env({"DATABASE_URL": self.cluster.url(database),
                        "DB_BUSY_TIMEOUT_MS": str(busy_ms),
                        "DB_STATEMENT_TIMEOUT_MS": str(statement_ms)})
        self.assertEqual(run_cli(["migrate"], env=env, cwd=self.workdir).returncode, 0)
        holder = self.cluster.connect(database)
        holder.autocommit = False
        try:
            holder.cursor().execute("LOCK TABLE system_config IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            result = run_cli(["mode", "set", "sync_direct", "--reason", "timeout test"], env=env,
                             cwd=self.workdir, timeout=30)
            elapsed = time.monotonic() - started
        finally:
            holder.rollback()
            holder.close()
        self.assertNotEqual(result.returncode, 0, result.stdout)
        return result.stderr, elapsed

    def test_lock_timeout(self):
        stderr, elapsed = self.mode_set_while_locked(busy_ms=300, statement_ms=60000)
        self.assertIn("lock timeout", stderr)
        self.assertLess(elapsed, 10)

    def test_statement_timeout(self):
        stderr, elapsed = self.mode_set_while_locked(busy_ms=60000, statement_ms=300)
        self.assertIn("statement timeout", stderr)
        self.assertLess(elapsed, 10)


if __name__ == "__main__":
    unittest.main()
