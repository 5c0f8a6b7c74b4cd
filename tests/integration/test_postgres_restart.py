"""PostgreSQL down or restarted under load (issue 12 item 3): while clients
POST continuously, the cluster is shut down. Every answer is 201/202, or 503
with Retry-After, within 10 s (never a hang); /readyz answers 503 while it is
down. When it is back, usher recovers by itself (no restart): /readyz 200
again, new requests accepted, and every request that got a 2xx exists exactly
once, every job ends succeeded.

Always runs against a real PostgreSQL of its own (pg_harness), which it stops
and starts: a missing PostgreSQL fails.
"""

import threading
import time
import unittest

from pg_harness import PostgresCluster
from usher_harness import ServerPerTestCase, http_request, unique_email, wait_until

BOUND = 10.0  # SPEC §3: 503 with Retry-After within 10 s
CLIENTS = 4
DRAIN_TIMEOUT = 60.0
FAST_JOBS = {"JOB_LEASE_MS": "2000", "QUEUE_POLL_MS": "100", "JOB_BACKOFF_MS": "100",
             "DB_BUSY_TIMEOUT_MS": "2000"}


class Load:
    """CLIENTS threads POSTing new users back to back; every answer recorded
    as (email, status, has Retry-After, seconds, started at)."""

    def __init__(self, server):
        self.server = server
        self.answers = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(CLIENTS)]

    def run(self):
        while not self.stopping.is_set():
            email = unique_email("pgr")
            started = time.monotonic()
            try:
                resp = self.server.create_user(email=email)
                status, retry_after = resp.status, "retry-after" in resp.headers
            except OSError as e:  # a hang (timeout) or a dropped connection
                status, retry_after = f"error {e!r}", False
            with self.lock:
                self.answers.append((email, status, retry_after, time.monotonic() - started,
                                     started))

    def count(self, predicate=lambda a: True):
        with self.lock:
            return sum(1 for a in self.answers if predicate(a))

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client hung"


class PostgresRestartTest(ServerPerTestCase):
    def readyz(self, server):
        return http_request(server.port, "GET", "/readyz", timeout=BOUND + 5)

    def test_fast_shutdown_under_load_gives_bounded_503_and_recovers_without_restart(self):
        self.cluster = self.own(PostgresCluster("pg-restart"))
        self.outage("fast")

    def test_crash_under_load_gives_bounded_503_and_recovers_without_restart(self):
        # Immediate shutdown: every backend quits mid-statement, the next start
        # recovers from the WAL. Synchronous commit, so that what PostgreSQL
        # acknowledged survives (the harness's default turns it off).
        self.cluster = self.own(PostgresCluster("pg-crash", {"synchronous_commit": "on"}))
        self.outage("immediate")

    def test_hung_server_under_load_gives_bounded_503_and_recovers(self):
        self.cluster = self.own(PostgresCluster("pg-hung"))
        self.addCleanup(self.cluster.thaw)
        self.outage("freeze")

    def outage(self, how):
        database = self.cluster.create_database("restart")
        server = self.new_server("pgrestart", mode="async_queue", env=FAST_JOBS,
                                 pg=(self.cluster, database))
        load = Load(server)
        load.start()
        self.addCleanup(load.stop)
        wait_until(lambda: load.count(lambda a: a[1] == 202) >= 20, 30, "accepted requests")

        down_at = time.monotonic()
        if how == "freeze":
            self.cluster.freeze()
        else:
            self.cluster.stop(how)
        # /readyz says so, within the bound.
        started = time.monotonic()
        ready = wait_until(lambda: self.readyz(server), BOUND, "/readyz to answer 503",
                           until=lambda r: r.status == 503)
        self.assertIn("retry-after", ready.headers)
        self.assertLess(time.monotonic() - started, BOUND)
        # The writes fail fast while it is down: several 503s after the stop.
        wait_until(lambda: load.count(lambda a: a[1] == 503 and a[4] > down_at + 1) >= 10, 30,
                   "503 answers while PostgreSQL is down")
        self.assertEqual(server.healthz().status, 200)

        up_at = time.monotonic()
        if how == "freeze":
            self.cluster.thaw()
        else:
            self.cluster.start()
        # Recovery without restarting usher: ready again, new requests accepted.
        wait_until(lambda: self.readyz(server), 30, "/readyz to answer 200 again",
                   until=lambda r: r.status == 200)
        wait_until(lambda: load.count(lambda a: a[1] == 202 and a[4] > up_at) >= 20, 30,
                   "accepted requests after the restart")
        load.stop()
        self.assertIsNone(server.proc.poll(), "usher exited")

        answers = list(load.answers)
        for email, status, retry_after, seconds, _ in answers:
            self.assertIn(status, (201, 202, 503), email)
            self.assertLess(seconds, BOUND, f"{email}: {status} after {seconds:.1f} s")
            if status == 503:
                self.assertTrue(retry_after, f"{email}: 503 without Retry-After")
        accepted = {a[0] for a in answers if a[1] in (201, 202)}

        # Every job ends succeeded (the worker reconnected too), none is left.
        def settled():
            rows = server.query("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            return all(status in ("succeeded", "dead") for status, _ in rows)
        wait_until(settled, DRAIN_TIMEOUT, "every job to finish")
        self.assertEqual(server.query("SELECT COUNT(*) FROM jobs WHERE status <> 'succeeded'"),
                         [(0,)])
        # Every 2xx exists exactly once (a 503 may or may not have been recorded).
        rows = server.query("SELECT email_normalized, COUNT(*) FROM accounts "
                            "GROUP BY email_normalized")
        counts = dict(rows)
        self.assertTrue(all(n == 1 for n in counts.values()), rows)
        missing = sorted(e for e in accepted if counts.get(e) != 1)
        self.assertEqual(missing, [], "accepted but not provisioned")
        jobs_per_email = dict(server.query("SELECT email_normalized, COUNT(*) FROM jobs "
                                           "GROUP BY email_normalized"))
        self.assertTrue(all(jobs_per_email.get(e) == 1 for e in accepted))
        # The log names the outage and nothing secret.
        server.assert_no_secrets_in_logs()


if __name__ == "__main__":
    unittest.main()
