"""Password attempts (issue 15): argon2id on its own bounded pool, so that a
login flood does not starve admin reads; attempts limited per account and per
client address with 429 + Retry-After (login and activation); a sustained
flood is one folded WARNING event. Latency is measured in
bench/wrk/login_flood.sh, not here."""

import http.client
import json
import threading
import time
import unittest

from usher_harness import (HTTP_TIMEOUT, ProblemAssertions, UsherServer, parallel,
                           unique_email, wait_until)

LOGIN = "/api/v1/auth/login"
ACTIVATE = "/api/v1/auth/activate"
THROTTLED_MESSAGE = "password attempts refused (attempt limits or a full hashing queue)"
NO_LIMITS = {"AUTH_ACCOUNT_ATTEMPTS": "1000000", "AUTH_ADDRESS_ATTEMPTS": "1000000"}


def throttled_rows(server):
    return server.query("SELECT repeat_count FROM system_health_logs "
                        "WHERE event_type = 'WARNING' AND message = ?", (THROTTLED_MESSAGE,))


def wait_for_throttled_count(server, count, timeout=10.0):
    return wait_until(lambda: throttled_rows(server), timeout,
                      f"the throttled WARNING rows to count {count}",
                      until=lambda rows: rows and sum(r[0] for r in rows) >= count)


class HashingPoolFloodTest(unittest.TestCase, ProblemAssertions):
    """No attempt limits: only the hashing pool stands between a flood and the reads."""

    @classmethod
    def setUpClass(cls):
        cls.server = UsherServer("flood", env={
            **NO_LIMITS,
            # The real argon2id cost, one hashing thread, a short queue.
            "PASSWORD_HASH_MEMORY_KIB": "19456", "PASSWORD_HASH_ITERATIONS": "2",
            "HASH_THREADS": "1", "HASH_QUEUE_LIMIT": "4", "BLOCKING_THREADS": "2",
        })
        cls.server.start()
        cls.user_id = cls.server.create_user().json["user_id"]

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def flood(self, stop, statuses):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=HTTP_TIMEOUT)
        body = json.dumps({"email": unique_email("flood"), "password": "wrong-password"})
        try:
            while not stop.is_set():
                try:
                    conn.request("POST", LOGIN, body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    statuses.append((resp.status, resp.getheader("Retry-After")))
                except (OSError, http.client.HTTPException) as e:
                    statuses.append((repr(e), None))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                      timeout=HTTP_TIMEOUT)
        finally:
            conn.close()

    def test_admin_reads_answer_during_a_login_flood(self):
        stop = threading.Event()
        statuses = []
        flooders = [threading.Thread(target=self.flood, args=(stop, statuses), daemon=True)
                    for _ in range(32)]
        for t in flooders:
            t.start()
        try:
            # Reads while the flood runs: every one must answer 200.
            deadline = time.monotonic() + 5
            reads = []
            while time.monotonic() < deadline:
                reads.extend(parallel(4, lambda i: self.server.get(
                    f"/api/v1/users/{self.user_id}" if i % 2 else "/api/v1/admin/queue",
                    token="admin")))
        finally:
            stop.set()
            for t in flooders:
                t.join(HTTP_TIMEOUT + 5)
        self.assertGreater(len(reads), 0)
        for resp in reads:
            self.assertNotIsInstance(resp, Exception, resp)
            self.assertEqual(resp.status, 200, resp)
        codes = {s for s, _ in statuses}
        self.assertLessEqual(codes, {401, 503}, f"flood answers: {codes}")
        refused = [(s, r) for s, r in statuses if s == 503]
        self.assertGreater(len(refused), 0, "a full hashing queue refuses at once")
        self.assertTrue(all(r == "1" for _, r in refused), refused[:3])
        # The refusals are one folded WARNING row.
        rows = wait_for_throttled_count(self.server, len(refused))
        self.assertEqual(len(rows), 1, rows)


class AccountLimitTest(unittest.TestCase, ProblemAssertions):
    @classmethod
    def setUpClass(cls):
        cls.server = UsherServer("limits", env={"AUTH_ACCOUNT_ATTEMPTS": "5",
                                                "AUTH_ACCOUNT_WINDOW_MS": "600000",
                                                "AUTH_ADDRESS_ATTEMPTS": "1000000"})
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def login(self, email, password):
        return self.server.request("POST", LOGIN, body={"email": email, "password": password})

    def activated_user(self, password):
        email = unique_email("limit")
        created = self.server.create_user(email=email)
        self.assertEqual(created.status, 201, created)
        act = self.server.request("POST", ACTIVATE, body={
            "token": created.json["activation_token"], "password": password})
        self.assertEqual(act.status, 200, act)
        return email

    def assertThrottled(self, resp):
        self.assertProblem(resp, 429, "too_many_attempts")
        retry_after = int(resp.headers["retry-after"])
        self.assertGreaterEqual(retry_after, 1)
        self.assertLessEqual(retry_after, 600)

    def test_wrong_logins_past_the_limit_get_429_then_even_the_right_password(self):
        email = self.activated_user("the right one")
        for _ in range(5):
            self.assertProblem(self.login(email, "the wrong one"), 401, "invalid_credentials")
        self.assertThrottled(self.login(email, "the wrong one"))
        self.assertThrottled(self.login(email.upper(), "the right one"))
        # Another account is not affected.
        other = self.activated_user("other password")
        self.assertEqual(self.login(other, "other password").status, 200)

    def test_throttled_answers_do_not_reveal_whether_the_account_exists(self):
        known = self.activated_user("known password")
        unknown = unique_email("nobody")
        answers = {}
        for email in (known, unknown):
            for _ in range(5):
                self.assertProblem(self.login(email, "wrong guess"), 401, "invalid_credentials")
            answers[email] = self.login(email, "wrong guess")
            self.assertThrottled(answers[email])
        a, b = answers[known], answers[unknown]
        self.assertEqual((a.status, a.json, a.content_type), (b.status, b.json, b.content_type))

    def test_activation_attempts_are_limited_per_token(self):
        token = "usher_a_" + "x" * 40
        for _ in range(5):
            resp = self.server.request("POST", ACTIVATE, body={"token": token,
                                                               "password": "long enough"})
            self.assertProblem(resp, 400, "activation_token_invalid")
        self.assertThrottled(self.server.request("POST", ACTIVATE, body={
            "token": token, "password": "long enough"}))

    def test_a_flood_on_one_account_is_one_warning_event(self):
        email = unique_email("flooded")
        results = parallel(16, lambda i: [self.login(email, "guess") for _ in range(5)])
        statuses = [r.status for batch in results for r in batch]
        self.assertEqual(statuses.count(401), 5, statuses)
        self.assertEqual(statuses.count(429), 75, statuses)
        rows = wait_for_throttled_count(self.server, 75)
        self.assertEqual(len(rows), 1, rows)


class AddressLimitTest(unittest.TestCase, ProblemAssertions):
    @classmethod
    def setUpClass(cls):
        cls.server = UsherServer("addr", env={"AUTH_ADDRESS_ATTEMPTS": "8",
                                              "AUTH_ADDRESS_WINDOW_MS": "600000"})
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_attempts_from_one_address_are_limited_across_accounts_and_endpoints(self):
        for i in range(8):
            if i % 2:
                resp = self.server.request("POST", LOGIN, body={"email": unique_email(),
                                                                "password": "a guess!"})
                self.assertProblem(resp, 401, "invalid_credentials")
            else:
                resp = self.server.request("POST", ACTIVATE, body={
                    "token": f"usher_a_nope{i}", "password": "a guess!"})
                self.assertProblem(resp, 400, "activation_token_invalid")
        for path, body in ((LOGIN, {"email": unique_email(), "password": "a guess!"}),
                           (ACTIVATE, {"token": "usher_a_other", "password": "a guess!"})):
            resp = self.server.request("POST", path, body=body)
            self.assertProblem(resp, 429, "too_many_attempts")
            self.assertIn("retry-after", resp.headers)
        # Requests that are not password attempts are not limited.
        self.assertEqual(self.server.create_user().status, 201)


if __name__ == "__main__":
    unittest.main()
