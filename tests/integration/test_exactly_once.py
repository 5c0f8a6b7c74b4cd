"""Proof of exactly-once provisioning under crashes (async_queue mode).

Each test really kills processes: a worker that kills itself (SIGKILL) right
after a step of a job (USHER_FAULT_AFTER), or `usher serve` killed with
SIGKILL while jobs are pending. After a restart every accepted email must
exist exactly once, with its profile and its activation token, and every job
must have succeeded.
"""

import signal
import subprocess
import unittest

from usher_harness import (USHER_BIN, ServerPerTestCase, parallel, unique_email, wait_until,
                           _live_lock, _live_processes)

# Short leases so that a crashed worker's jobs come back within a second.
FAST_JOBS = {"JOB_LEASE_MS": "1000", "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50"}
DRAIN_TIMEOUT = 60.0


def start_worker(server, extra_env):
    env = dict(server.env)
    env.update(extra_env)
    proc = subprocess.Popen([USHER_BIN, "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=server.dir)
    with _live_lock:
        _live_processes.add(proc)
    return proc


def wait_until_drained(server, expected_jobs, timeout=DRAIN_TIMEOUT):
    return wait_until(lambda: dict(server.query("SELECT status, COUNT(*) FROM jobs GROUP BY status")),
                      timeout, f"{expected_jobs} jobs, all succeeded (job counts by status)",
                      interval=0.1, until=lambda counts: counts.get("succeeded", 0) >= expected_jobs
                      and len(counts) == 1)


class ExactlyOnceAssertions:
    def assertExactlyOnce(self, server, emails):
        accounts = dict(server.query(
            "SELECT email_normalized, COUNT(*) FROM accounts GROUP BY email_normalized"))
        for email in emails:
            self.assertEqual(accounts.get(email), 1, f"{email} has {accounts.get(email)} accounts")
        self.assertEqual(len(accounts), len(emails), "accounts for emails nobody asked for")
        profiles = server.query(
            "SELECT a.email_normalized, COUNT(t.id) FROM accounts a "
            "LEFT JOIN tripwire_users t ON t.user_id = a.id GROUP BY a.id")
        for email, count in profiles:
            self.assertEqual(count, 1, f"{email} has {count} profiles")
        tokens = server.query(
            "SELECT a.email_normalized, COUNT(x.id) FROM accounts a "
            "LEFT JOIN activation_tokens x ON x.account_id = a.id GROUP BY a.id")
        for email, count in tokens:
            self.assertEqual(count, 1, f"{email} has {count} activation tokens")
        jobs = server.query("SELECT status, COUNT(*), SUM(CASE WHEN user_id IS NULL THEN 1 ELSE 0 END) FROM jobs GROUP BY status")
        self.assertEqual([(s, c) for s, c, _ in jobs], [("succeeded", len(emails))], jobs)
        self.assertEqual(jobs[0][2], 0, "a succeeded job without its user_id")


class CrashAfterEachStep(ServerPerTestCase, ExactlyOnceAssertions):
    """Accept N jobs with no worker, run a worker that kills itself after a
    step, then restart serve with a worker: all N provisioned exactly once."""

    N = 20

    def run_crash(self, step):
        server = self.new_server(f"crash-{step}", mode="async_queue",
                                 env={**FAST_JOBS, "START_WORKER": "false"})
        emails = [unique_email(step.replace("_", "")) for _ in range(self.N)]
        for email in emails:
            resp = server.create_user(email=email)
            self.assertEqual(resp.status, 202, resp)
        self.assertEqual(server.counts()["accounts"], 0, "no worker ran yet")
        self.assertEqual(server.stop(), 0)

        worker = start_worker(server, {"USHER_FAULT_AFTER": step, "WORKER_CONCURRENCY": "1"})
        try:
            code = worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        self.assertEqual(code, -signal.SIGKILL, f"the worker should have died after {step}")

        server.env["START_WORKER"] = "true"
        server.start()
        wait_until_drained(server, self.N)
        self.assertExactlyOnce(server, emails)

    def test_crash_after_claim(self):
        self.run_crash("claim")

    def test_crash_after_account(self):
        self.run_crash("account")

    def test_crash_after_profile(self):
        self.run_crash("profile")

    def test_crash_before_completion(self):
        self.run_crash("before_complete")

    def test_crash_after_commit(self):
        self.run_crash("after_commit")


class KillServeUnderLoad(ServerPerTestCase, ExactlyOnceAssertions):
    def test_sigkill_with_300_accepted_jobs(self):
        server = self.new_server("kill9", mode="async_queue", env=FAST_JOBS)
        emails = [unique_email("k9") for _ in range(300)]

        def post(i):
            # 16 clients, each posting its share of the 300.
            out = []
            for email in emails[i::16]:
                out.append((email, server.create_user(email=email).status))
            return out

        results = [r for chunk in parallel(16, post) for r in chunk]
        server.proc.send_signal(signal.SIGKILL)
        server.wait(10)
        accepted = [email for email, status in results if status == 202]
        self.assertEqual(len(accepted), 300, [s for _, s in results if s != 202][:5])

        server.start()
        wait_until_drained(server, 300)
        self.assertExactlyOnce(server, accepted)


if __name__ == "__main__":
    unittest.main()
