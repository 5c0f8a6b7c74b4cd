"""PostgreSQL without Redis (issue 12 item 2): LISTEN/NOTIFY carries a mode
change to every instance within 2 s (SPEC §5) and wakes the idle workers of
other processes when a job is queued, although the cache lifetime and the
queue poll are long (neither could explain it).

Always runs against a real PostgreSQL (pg_harness), never with Redis.
"""

import time
import unittest

from pg_harness import PostgresCluster, shared_cluster
from usher_harness import ServerPerTestCase, http_request, wait_until

MODE = "/api/v1/admin/system/mode"
PROPAGATION = 2.0  # SPEC §5
# Long enough that only a notification explains what the test sees.
SLOW = {"CONFIG_CACHE_TTL_MS": "600000", "QUEUE_POLL_MS": "60000", "REDIS_URL": "",
        "REDIS_HOST": ""}


class PostgresNotifyTest(ServerPerTestCase):
    def two_servers(self, name, mode, env_a, env_b, cluster=None):
        cluster = cluster or shared_cluster()
        database = cluster.create_database(name)
        a = self.new_server(f"{name}a", mode=mode, env={**SLOW, **env_a},
                            pg=(cluster, database), start=False)
        b = self.new_server(f"{name}b", mode=None, env={**SLOW, **env_b},
                            pg=(cluster, database), start=False)
        a.tokens = b.tokens = {**b.tokens, **a.tokens}
        a.start()
        b.start()
        # Both listen before the test notifies: what is sent earlier is only
        # found by the look each listener takes when it starts listening.
        for server in (a, b):
            server.wait_for_log(r"database notifications: listening", timeout=30)
        return a, b

    def effective_mode_on(self, server):
        """What `server`'s cached mode does to a new user: 202 queued or 201
        inline. (GET /admin/system/mode would read the database.)"""
        resp = server.create_user()
        self.assertIn(resp.status, (201, 202), resp)
        return "async_queue" if resp.status == 202 else "sync_direct"

    def test_a_mode_change_reaches_the_other_instance_within_2_s(self):
        a, b = self.two_servers("notifymode", "async_queue", {"START_WORKER": "false"},
                                {"START_WORKER": "false"})
        self.assertEqual(self.effective_mode_on(b), "async_queue")
        # Through the API of one instance...
        started = time.monotonic()
        resp = a.request("PUT", MODE, body={"mode": "sync_direct", "reason": "notify test"},
                         token="admin")
        self.assertEqual(resp.status, 200, resp)
        wait_until(lambda: self.effective_mode_on(b) == "sync_direct", PROPAGATION,
                   "the other instance to follow the API change", interval=0.1)
        self.assertLess(time.monotonic() - started, PROPAGATION)
        # ... and through the command line.
        started = time.monotonic()
        a.cli_checked(["mode", "set", "async_queue", "--reason", "notify test back"])
        for server in (a, b):
            wait_until(lambda s=server: self.effective_mode_on(s) == "async_queue",
                       PROPAGATION, "both instances to follow the CLI change", interval=0.1)
        self.assertLess(time.monotonic() - started, PROPAGATION + 1.0)  # + the CLI's start

    def test_a_job_queued_on_one_instance_wakes_the_workers_of_the_other(self):
        # a takes requests without a worker; b's workers are idle, polling
        # once a minute.
        a, b = self.two_servers("notifyjobs", "async_queue", {"START_WORKER": "false"}, {})
        for _ in range(3):
            started = time.monotonic()
            resp = a.create_user()
            self.assertEqual(resp.status, 202, resp)
            job_id = resp.json["job_id"]
            wait_until(lambda: a.query("SELECT status FROM jobs WHERE id = ?", (job_id,)),
                       PROPAGATION, f"job {job_id} to be done by the other instance",
                       until=lambda rows: rows and rows[0][0] == "succeeded")
            self.assertLess(time.monotonic() - started, PROPAGATION)

    def test_the_listeners_reconnect_after_postgresql_restarts(self):
        cluster = self.own(PostgresCluster("pg-notify-restart"))
        a, b = self.two_servers("notifyrestart", "async_queue", {"START_WORKER": "false"}, {},
                                cluster=cluster)
        mark = b.log_mark()
        cluster.stop("fast")
        cluster.start()
        for server in (a, b):
            wait_until(lambda s=server: http_request(s.port, "GET", "/readyz"), 30,
                       "/readyz 200 after the restart", until=lambda r: r.status == 200)
        # b's listener saw its connection go and is listening again (it
        # retries every second; a connection attempt while the server is
        # still starting may take up to its connect timeout): notifications
        # sent before that are missed, and the reconnection wakes b's
        # workers instead. Once it listens, a new job reaches it at once.
        b.wait_for_log(r"database notifications: listening again", timeout=30, since=mark)
        # Without restarting usher: b's workers still hear a's new jobs...
        resp = wait_until(lambda: a.create_user(), 10, "a to accept again",
                          until=lambda r: r.status == 202)
        job_id = resp.json["job_id"]
        started = time.monotonic()
        wait_until(lambda: a.query("SELECT status FROM jobs WHERE id = ?", (job_id,)),
                   PROPAGATION + 2.0, f"job {job_id} to be done by the other instance",
                   until=lambda rows: rows and rows[0][0] == "succeeded")
        # ... (its listener reconnects within a second or two of the start)
        self.assertLess(time.monotonic() - started, PROPAGATION + 2.0)
        # ... and a mode change.
        started = time.monotonic()
        resp = a.request("PUT", MODE, body={"mode": "sync_direct", "reason": "after restart"},
                         token="admin")
        self.assertEqual(resp.status, 200, resp)
        wait_until(lambda: self.effective_mode_on(b) == "sync_direct", PROPAGATION,
                   "the other instance to follow the change after the restart", interval=0.1)
        self.assertLess(time.monotonic() - started, PROPAGATION)


if __name__ == "__main__":
    unittest.main()
