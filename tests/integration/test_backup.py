"""`usher backup PATH` copies a running SQLite database without stopping
intake, and `usher restore PATH` puts the copy back (issue 14, item 4;
docs/operations.md).

Users are written by several threads while the backup runs; the copy is
restored into a fresh directory, usher is started on it, and every user
acknowledged (2xx) before the backup began is found through the API."""

import http.client
import json
import os
import threading
import time
import unittest

from usher_harness import (HTTP_TIMEOUT, ServerPerTestCase, UsherServer, unique_email,
                           wait_for_job, wait_until)

LOAD_THREADS = 4
# Users acknowledged before the backup starts: enough rows that the copy is
# not trivial, few enough for a quick test.
USERS_BEFORE = 300


class Intake:
    """Threads posting users to `server` until stop(); every 2xx is recorded
    with the monotonic time at which its answer arrived."""

    def __init__(self, server):
        self.server = server
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acknowledged = []  # (time answered, email, body)
        self.failures = []
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(LOAD_THREADS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)

    def count(self):
        with self.lock:
            return len(self.acknowledged)

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=HTTP_TIMEOUT)
        headers = {**self.server.auth("sales"), "Content-Type": "application/json"}
        try:
            while not self.stopping.is_set():
                email = unique_email("backup")
                body = json.dumps({"email": email, "full_name": "Backup Load"})
                try:
                    conn.request("POST", "/api/v1/users", body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.failures.append(repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                      timeout=HTTP_TIMEOUT)
                    continue
                answered = time.monotonic()
                with self.lock:
                    if 200 <= resp.status < 300:
                        self.acknowledged.append((answered, email, json.loads(data)))
                    else:
                        self.failures.append(f"{resp.status} {data[:200]!r}")
        finally:
            conn.close()


class BackupTest(ServerPerTestCase):
    def restored_server(self, original, backup_path, mode):
        """A fresh directory whose database is `backup_path`, restored with
        `usher restore`, and usher serving it (the tokens are the original's:
        they are rows of the backup)."""
        fresh = self.own(UsherServer("restored", mode=None, tokens=(),
                                     env={k: v for k, v in original.env.items()
                                          if k in ("REDIS_URL", "REDIS_PREFIX")}))
        # The fresh directory already holds a migrated database: restore refuses
        # to replace it, and names it.
        refused = fresh.cli(["restore", backup_path])
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("exists", refused.stderr)
        self.assertIn(fresh.db_path, refused.stderr)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(fresh.db_path + suffix):
                os.rename(fresh.db_path + suffix, fresh.db_path + suffix + ".old")
        restored = fresh.cli_checked(["restore", backup_path])
        self.assertIn("restored", restored.stdout)
        fresh.tokens = dict(original.tokens)
        fresh.start()
        self.assertEqual(fresh.get("/api/v1/admin/system/mode", token="admin").json["mode"], mode)
        return fresh

    def back_up_under_load(self, mode):
        server = self.new_server(f"backup-{mode}", mode=mode)
        intake = Intake(server).start()
        try:
            wait_until(lambda: intake.count() >= USERS_BEFORE, timeout=60,
                       what=f"{USERS_BEFORE} acknowledged users")
            backup_path = os.path.join(server.dir, "copy.db")
            began = time.monotonic()
            count_at_start = intake.count()
            result = server.cli(["backup", backup_path])
            # Intake goes on after the backup: wait for more answers.
            wait_until(lambda: intake.count() >= count_at_start + 50, timeout=30,
                       what="intake answering after the backup")
        finally:
            intake.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("backed up to", result.stdout)
        self.assertEqual(intake.failures, [], "intake failed while the backup ran")
        before = [(email, body) for answered, email, body in intake.acknowledged
                  if answered < began]
        self.assertGreaterEqual(len(before), USERS_BEFORE)
        self.assertTrue(server.alive())
        return server, backup_path, before

    def test_backup_under_load_restores_every_acknowledged_user(self):
        server, backup_path, before = self.back_up_under_load("sync_direct")
        # A second backup to the same path is refused and leaves the copy alone.
        size = os.path.getsize(backup_path)
        again = server.cli(["backup", backup_path])
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("exists", again.stderr)
        self.assertEqual(os.path.getsize(backup_path), size)
        server.stop()

        restored = self.restored_server(server, backup_path, "sync_direct")
        missing = []
        for email, body in before:
            resp = restored.get(f"/api/v1/users?email={email}", token="sales")
            if resp.status != 200 or resp.json.get("email") != email:
                missing.append((email, resp.status))
        self.assertEqual(missing, [], f"{len(missing)} of {len(before)} acknowledged users missing")
        # The restored database takes new users.
        self.assertEqual(restored.create_user(unique_email("after-restore")).status, 201)

    def test_backup_under_async_intake_keeps_every_accepted_job(self):
        server, backup_path, before = self.back_up_under_load("async_queue")
        server.stop()
        restored = self.restored_server(server, backup_path, "async_queue")
        # Each job accepted before the backup is in the copy; the restored
        # server's worker finishes whatever was still queued.
        for email, body in before:
            wait_for_job(restored, body["job_id"], "succeeded", timeout=60)
        emails = {email for email, _ in before}
        found = {row[0] for row in restored.query("SELECT email_normalized FROM accounts")}
        self.assertEqual(emails - found, set())


class BackupRefusalsTest(ServerPerTestCase):
    def test_backup_of_a_missing_directory_fails_and_leaves_nothing(self):
        server = self.new_server("backup-refusals")
        target = os.path.join(server.dir, "no-such-dir", "copy.db")
        result = server.cli(["backup", target])
        self.assertNotEqual(result.returncode, 0)
        self.assertTrue(result.stderr.startswith("usher: "), result.stderr)
        self.assertFalse(os.path.exists(target))

    def test_restore_refuses_a_file_that_is_not_an_usher_database(self):
        server = self.new_server("restore-refusals", start=False)
        junk = os.path.join(server.dir, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"not a database at all" * 100)
        target_dir = os.path.join(server.dir, "fresh")
        result = server.cli(["restore", junk],
                            extra_env={"DATABASE_URL": f"sqlite:{target_dir}/usher.db"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("not an usher database", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(target_dir, "usher.db")))


if __name__ == "__main__":
    unittest.main()
