"""Async provisioning through the Redis job queue (REDIS_URL set, mode
async_queue): 202 intake and the worker, the queue state in /readyz and the
mode API, a dead job retried through Redis, idempotent replay, the key prefix."""

import unittest
import uuid

from redis_harness import ExactlyOnceAssertions, RedisServer, redis_env, unique_prefix
from usher_harness import (ProblemAssertions, ServerTestCase, UsherServer, unique_email,
                           wait_for_job)

HEALTHY = {"backend": "redis", "healthy": True, "circuit": "closed"}
MODE = "/api/v1/admin/system/mode"


class RedisAsyncIntakeTest(ExactlyOnceAssertions, ServerTestCase):
    @classmethod
    def make_server(cls):
        cls.redis = RedisServer("redis-queue")
        cls.addClassCleanup(cls.redis.close)  # after the server stopped
        cls.prefix = unique_prefix("queue")
        return UsherServer("redis-queue", mode="async_queue", env=redis_env(cls.redis, cls.prefix))

    def setUp(self):
        # Every test here is about the Redis queue: none passes on another backend.
        self.assertEqual(self.server.get("/readyz").json["queue"]["backend"], "redis")

    def test_intake_answers_202_and_the_worker_provisions_once(self):
        email = unique_email("rq")
        resp = self.server.create_user(email=email.upper(), full_name="Redis Buyer",
                                       phone="+49 30 1234", product="Tripwire Pro")
        self.assertEqual(resp.status, 202, resp)
        body = resp.json
        self.assertEqual(body["status"], "queued")
        self.assertEqual(body["mode"], "async_queue")
        self.assertEqual(body["email"], email)
        self.assertIs(body.get("fallback", False), False, body)
        self.assertTrue(body["activation_token"].startswith("usher_a_"), body)
        self.assertEqual(resp.headers.get("location"), f"/api/v1/jobs/{body['job_id']}")

        job = wait_for_job(self.server, body["job_id"], "succeeded")
        self.assertEqual(job["attempts"], 1, job)
        self.assertIsNotNone(job["user_id"])
        user = self.server.get(f"/api/v1/users/{job['user_id']}", token="sales")
        self.assertEqual(user.status, 200, user)
        self.assertEqual(user.json["email"], email)
        self.assertEqual(user.json["profile"]["full_name"], "Redis Buyer")
        self.assertEqual(user.json["profile"]["phone"], "+49 30 1234")
        self.assertEqual(user.json["profile"]["product"], "Tripwire Pro")
        self.assertEqual(self.server.query(
            "SELECT COUNT(*) FROM accounts WHERE email_normalized = ?", (email,)), [(1,)])
        self.assertEqual(self.server.query(
            "SELECT COUNT(*) FROM tripwire_users t JOIN accounts a ON a.id = t.user_id "
            "WHERE a.email_normalized = ?", (email,)), [(1,)])
        # The activation token from the 202 works once the account exists.
        act = self.server.request("POST", "/api/v1/auth/activate",
                                  body={"token": body["activation_token"], "password": "s3cret-pass"})
        self.assertEqual(act.status, 200, act)

    def test_many_jobs_succeed_once_each(self):
        emails = [unique_email("rqm") for _ in range(40)]
        jobs = []
        for email in emails:
            resp = self.server.create_user(email=email)
            self.assertEqual(resp.status, 202, resp)
            jobs.append(resp.json["job_id"])
        for job_id in jobs:
            job = wait_for_job(self.server, job_id, "succeeded")
            self.assertEqual(job["attempts"], 1, job)
        accounts = dict(self.server.query(
            "SELECT email_normalized, COUNT(*) FROM accounts GROUP BY email_normalized"))
        self.assertEqual([accounts.get(e) for e in emails], [1] * len(emails))

    def test_duplicate_email_is_409_while_queued_and_after(self):
        email = unique_email("rqdup")
        first = self.server.create_user(email=email)
        self.assertEqual(first.status, 202, first)
        self.assertProblem(self.server.create_user(email=" " + email.upper()), 409, "user_exists",
                           field="email")
        wait_for_job(self.server, first.json["job_id"], "succeeded")
        self.assertProblem(self.server.create_user(email=email), 409, "user_exists", field="email")

    def test_readyz_and_mode_show_the_redis_queue(self):
        ready = self.server.get("/readyz")
        self.assertEqual(ready.status, 200, ready)
        self.assertEqual(ready.json["queue"], HEALTHY, ready)
        mode = self.server.get(MODE, token="admin")
        self.assertEqual(mode.status, 200, mode)
        self.assertEqual(mode.json["queue"], HEALTHY, mode)
        self.assertEqual(mode.json["effective_mode"], "async_queue", mode)

    def test_idempotent_replay_through_redis(self):
        key = f"it-{uuid.uuid4().hex}"
        email = unique_email("rqidem")
        body = {"email": email, "full_name": "Idem Potent", "product": "P"}
        headers = {"Idempotency-Key": key}
        first = self.server.create_user(headers=headers, **body)
        self.assertEqual(first.status, 202, first)
        self.assertIn("activation_token", first.json)
        expected = dict(first.json)
        del expected["activation_token"]
        same = '{ "product" : "P",\n  "full_name":"Idem Potent", "email" : "%s" }' % email
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                again = self.server.request("POST", "/api/v1/users", body=same, token="sales",
                                            headers={"Content-Type": "application/json",
                                                     "Idempotency-Key": key})
                self.assertEqual(again.status, 202, again)
                self.assertEqual(again.json, expected)
                self.assertEqual(again.headers.get("location"), first.headers.get("location"))
        other = self.server.create_user(headers=headers, email=email, full_name="Other Name")
        self.assertProblem(other, 422, "idempotency_key_reused")
        wait_for_job(self.server, first.json["job_id"], "succeeded")
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM jobs WHERE email_normalized = ?",
                                           (email,)), [(1,)])
        self.assertEqual(self.server.query(
            "SELECT COUNT(*) FROM accounts WHERE email_normalized = ?", (email,)), [(1,)])
        # A replay after the job finished is still the first answer.
        late = self.server.request("POST", "/api/v1/users", body=same, token="sales",
                                   headers={"Content-Type": "application/json",
                                            "Idempotency-Key": key})
        self.assertEqual((late.status, late.json), (202, expected))

    def test_every_redis_key_has_the_prefix(self):
        resp = self.server.create_user(email=unique_email("rqkeys"))
        self.assertEqual(resp.status, 202, resp)
        wait_for_job(self.server, resp.json["job_id"], "succeeded")
        keys = self.redis.keys()
        self.assertEqual([k for k in keys if not k.startswith(self.prefix)], [],
                         f"keys outside REDIS_PREFIX {self.prefix!r}")


class RedisDeadJobTest(ProblemAssertions, unittest.TestCase):
    def test_dead_job_is_retried_through_redis_and_succeeds(self):
        redis = RedisServer("redis-dead")
        server = None
        try:
            server = UsherServer("redis-dead", mode="async_queue",
                                 env=redis_env(redis, unique_prefix("dead"), JOB_MAX_ATTEMPTS=2,
                                               USHER_FAULT_AFTER="account",
                                               USHER_FAULT_MODE="throw"))
            server.start()
            self.assertEqual(server.get("/readyz").json["queue"], HEALTHY)
            email = unique_email("rqdead")
            resp = server.create_user(email=email)
            self.assertEqual(resp.status, 202, resp)
            job_id = resp.json["job_id"]
            dead = wait_for_job(server, job_id, "dead")
            self.assertEqual(dead["attempts"], 2, dead)
            self.assertIn("injected fault", dead["last_error"])
            self.assertEqual(server.counts()["accounts"], 0, "a failed attempt left an account")
            errors = server.get("/api/v1/admin/health/logs?type=ERROR", token="admin").json["events"]
            self.assertTrue(any(e["metadata"].get("job_id") == job_id for e in errors), errors)
            self.assertEqual(server.stop(), 0)

            del server.env["USHER_FAULT_AFTER"]
            server.start()
            self.assertEqual(server.get("/readyz").json["queue"], HEALTHY)
            retried = server.request("POST", f"/api/v1/admin/jobs/{job_id}/retry", token="admin")
            self.assertEqual(retried.status, 200, retried)
            self.assertEqual(retried.json["attempts"], 0)
            done = wait_for_job(server, job_id, "succeeded")
            self.assertEqual(done["attempts"], 1, done)
            self.assertProblem(server.request("POST", f"/api/v1/admin/jobs/{job_id}/retry",
                                              token="admin"), 409, "job_not_dead")
            self.assertEqual(server.query("SELECT email_normalized FROM accounts"), [(email,)])
            self.assertEqual(server.query("SELECT COUNT(*) FROM tripwire_users"), [(1,)])
        finally:
            if server is not None:
                server.close()
            redis.close()


class RedisSettingsTest(unittest.TestCase):
    def test_unset_redis_url_means_the_embedded_queue(self):
        server = UsherServer("redis-unset", mode="async_queue")
        try:
            server.start()
            self.assertEqual(server.get("/readyz").json["queue"]["backend"], "embedded")
        finally:
            server.close()

    def test_redis_host_and_port_select_redis(self):
        redis = RedisServer("redis-hostport")
        server = None
        try:
            server = UsherServer("redis-hostport", mode="async_queue",
                                 env={"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                                      "REDIS_PREFIX": unique_prefix("hp")})
            server.start()
            self.assertEqual(server.get("/readyz").json["queue"], HEALTHY)
            resp = server.create_user(email=unique_email("hp"))
            self.assertEqual(resp.status, 202, resp)
            wait_for_job(server, resp.json["job_id"], "succeeded")
        finally:
            if server is not None:
                server.close()
            redis.close()


if __name__ == "__main__":
    unittest.main()
