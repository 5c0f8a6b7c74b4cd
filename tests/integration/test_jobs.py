"""Async provisioning through the embedded queue: 202 intake, the job
resource, dead jobs and their retry (API and CLI), the queue overview."""

import os
import subprocess
import unittest

from usher_harness import (QUEUE_UNDER_TEST, USHER_BIN, ServerPerTestCase, ServerTestCase,
                           unique_email, wait_for_job, wait_until)

FAST_JOBS = {"JOB_LEASE_MS": "1000", "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50"}


class AsyncIntakeTest(ServerTestCase):
    server_name = "jobs"
    server_mode = "async_queue"
    server_env = FAST_JOBS
    server_tokens = (("admin", "admin"), ("sales", "sales_manager"), ("other", "sales_manager"))

    def test_intake_answers_202_and_the_worker_provisions(self):
        email = unique_email("async")
        resp = self.server.create_user(email=email.upper(), phone="+49 30 1234")
        self.assertEqual(resp.status, 202, resp)
        body = resp.json
        self.assertEqual(body["status"], "queued")
        self.assertEqual(body["mode"], "async_queue")
        self.assertEqual(body["email"], email)
        self.assertTrue(body["activation_token"].startswith("usher_a_"))
        self.assertEqual(resp.headers.get("location"), f"/api/v1/jobs/{body['job_id']}")

        job = wait_for_job(self.server, body["job_id"], "succeeded")
        for key in ("id", "status", "attempts", "last_error", "user_id", "created_at", "updated_at"):
            self.assertIn(key, job)
        self.assertEqual(job["attempts"], 1)
        user = self.server.get(f"/api/v1/users/{job['user_id']}", token="sales")
        self.assertEqual(user.status, 200, user)
        self.assertEqual(user.json["email"], email)
        self.assertEqual(user.json["profile"]["phone"], "+49 30 1234")

        # The activation token from the 202 works once the account exists.
        act = self.server.request("POST", "/api/v1/auth/activate",
                                  body={"token": body["activation_token"], "password": "s3cret-pass"})
        self.assertEqual(act.status, 200, act)

    def test_second_request_for_a_queued_or_done_email_is_409(self):
        email = unique_email("dup")
        first = self.server.create_user(email=email)
        self.assertEqual(first.status, 202, first)
        again = self.server.create_user(email=" " + email.upper() + " ")
        self.assertProblem(again, 409, "user_exists", field="email")
        wait_for_job(self.server, first.json["job_id"], "succeeded")
        after = self.server.create_user(email=email)
        self.assertProblem(after, 409, "user_exists", field="email")
        self.assertEqual(self.server.query(
            "SELECT COUNT(*) FROM accounts WHERE email_normalized = ?", (email,))[0][0], 1)

    def test_job_is_visible_to_its_creator_and_admins_only(self):
        resp = self.server.create_user(email=unique_email("vis"))
        job_id = resp.json["job_id"]
        self.assertEqual(self.server.get(f"/api/v1/jobs/{job_id}", token="sales").status, 200)
        self.assertEqual(self.server.get(f"/api/v1/jobs/{job_id}", token="admin").status, 200)
        self.assertProblem(self.server.get(f"/api/v1/jobs/{job_id}", token="other"), 403, "forbidden")
        self.assertProblem(self.server.get(f"/api/v1/jobs/{job_id}"), 401, "unauthorized")
        self.assertProblem(self.server.get("/api/v1/jobs/999999999", token="admin"), 404,
                           "job_not_found")

    def test_queue_overview(self):
        resp = self.server.create_user(email=unique_email("q"))
        wait_for_job(self.server, resp.json["job_id"], "succeeded")
        overview = self.server.get("/api/v1/admin/queue", token="admin")
        self.assertEqual(overview.status, 200, overview)
        self.assertGreaterEqual(overview.json["counts"]["succeeded"], 1)
        for state in ("queued", "running", "dead"):
            self.assertIn(state, overview.json["counts"])
        self.assertIn("oldest_waiting_seconds", overview.json)
        self.assertGreater(overview.json["jobs_per_second_last_minute"], 0)
        self.assertEqual(overview.json["queue"]["backend"], QUEUE_UNDER_TEST)
        self.assertProblem(self.server.get("/api/v1/admin/queue", token="sales"), 403, "forbidden")

    def test_mode_reports_the_queue_under_test(self):
        mode = self.server.get("/api/v1/admin/system/mode", token="admin")
        self.assertEqual(mode.json["queue"], {"backend": QUEUE_UNDER_TEST, "healthy": True,
                                              "circuit": "closed"})
        ready = self.server.get("/readyz")
        self.assertEqual(ready.json["queue"]["backend"], QUEUE_UNDER_TEST)

    def test_list_jobs_filters_and_bad_params(self):
        resp = self.server.create_user(email=unique_email("list"))
        wait_for_job(self.server, resp.json["job_id"], "succeeded")
        listed = self.server.get("/api/v1/admin/jobs?status=succeeded&limit=500", token="admin")
        self.assertEqual(listed.status, 200, listed)
        self.assertIn(resp.json["job_id"], [j["id"] for j in listed.json["jobs"]])
        self.assertTrue(all(j["status"] == "succeeded" for j in listed.json["jobs"]))
        for query in ("status=bogus", "limit=0", "limit=501", "before_id=x", "color=red"):
            with self.subTest(query=query):
                bad = self.server.get(f"/api/v1/admin/jobs?{query}", token="admin")
                self.assertEqual(bad.status, 400, bad)


class DeadJobTest(ServerPerTestCase):
    def test_dead_job_alerts_and_can_be_retried_through_api_and_cli(self):
        server = self.new_server("dead", mode="async_queue",
                                 env={**FAST_JOBS, "JOB_MAX_ATTEMPTS": "2",
                                      "USHER_FAULT_AFTER": "account", "USHER_FAULT_MODE": "throw"})
        first, second = unique_email("dead1"), unique_email("dead2")
        job1 = server.create_user(email=first).json["job_id"]
        job2 = server.create_user(email=second).json["job_id"]
        dead = wait_for_job(server, job1, "dead")
        self.assertEqual(dead["attempts"], 2)
        self.assertIn("injected fault", dead["last_error"])
        wait_for_job(server, job2, "dead")
        self.assertEqual(server.counts()["accounts"], 0, "a failed attempt left an account")

        errors = server.get("/api/v1/admin/health/logs?type=ERROR", token="admin").json["events"]
        self.assertTrue(any(e["metadata"].get("job_id") == job1 and
                            e["metadata"].get("email") == first for e in errors), errors)
        listed = server.get("/api/v1/admin/jobs?status=dead", token="admin").json["jobs"]
        self.assertEqual(sorted(j["id"] for j in listed), sorted([job1, job2]))
        cli = server.cli(["jobs", "--status", "dead"])
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn(first, cli.stdout)

        # A dead email may be asked for again (decision: docs/api.md).
        self.assertProblem(server.request("POST", f"/api/v1/admin/jobs/{job1}/retry",
                                          token="sales"), 403, "forbidden")
        self.assertEqual(server.stop(), 0)

        # Without the fault, a retry provisions the customer.
        del server.env["USHER_FAULT_AFTER"]
        server.start()
        retried = server.request("POST", f"/api/v1/admin/jobs/{job1}/retry", token="admin")
        self.assertEqual(retried.status, 200, retried)
        self.assertEqual(retried.json["attempts"], 0)
        wait_for_job(server, job1, "succeeded")
        again = server.request("POST", f"/api/v1/admin/jobs/{job1}/retry", token="admin")
        self.assertProblem(again, 409, "job_not_dead")
        cli_retry = server.cli(["jobs", "retry", str(job2)])
        self.assertEqual(cli_retry.returncode, 0, cli_retry.stderr)
        wait_for_job(server, job2, "succeeded")
        cli_again = server.cli(["jobs", "retry", str(job2)])
        self.assertNotEqual(cli_again.returncode, 0)
        self.assertTrue(cli_again.stderr.startswith("usher: "), cli_again.stderr)
        self.assertEqual(sorted(r[0] for r in server.query("SELECT email_normalized FROM accounts")),
                         sorted([first, second]))


class WorkerProcessTest(ServerPerTestCase):
    def test_usher_worker_drains_jobs_accepted_by_serve_without_worker(self):
        server = self.new_server("wproc", mode="async_queue",
                                 env={**FAST_JOBS, "START_WORKER": "false"})
        emails = [unique_email("wp") for _ in range(30)]
        for email in emails:
            self.assertEqual(server.create_user(email=email).status, 202)
        self.assertEqual(server.counts()["accounts"], 0, "serve ran a worker")
        worker_log = os.path.join(server.dir, "worker.stderr.log")
        with open(worker_log, "wb") as err:
            worker = subprocess.Popen([USHER_BIN, "worker"], env=server.env, cwd=server.dir,
                                      stdout=subprocess.PIPE, stderr=err,
                                      stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: worker.poll() is None and worker.kill())
        wait_until(lambda: server.counts()["accounts"], 20.0, "30 accounts", interval=0.1,
                   until=lambda n: n >= 30)
        self.assertEqual(server.counts()["accounts"], 30)
        worker.terminate()
        self.assertEqual(worker.wait(timeout=15), 0, "SIGTERM should stop the worker with 0")
        worker.stdout.close()
        # Serve ran no worker, then or later: the worker process provisioned all 30.
        with open(worker_log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("usher worker stopped after 30 jobs", log, "serve ran a worker")


if __name__ == "__main__":
    unittest.main()
