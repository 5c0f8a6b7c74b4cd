"""Idempotency-Key on POST /api/v1/users: replay, mismatch, scope, concurrency."""

import json
import unittest
import uuid

from usher_harness import ServerTestCase, parallel, unique_email

USERS = "/api/v1/users"


def key():
    return f"it-{uuid.uuid4().hex}"


class IdempotencyTest(ServerTestCase):
    server_name = "idem"
    server_tokens = (("admin", "admin"), ("sales", "sales_manager"), ("sales2", "sales_manager"))

    def post(self, body, idem_key, token="sales"):
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        return self.server.request("POST", USERS, body=body, token=token,
                                   headers={"Content-Type": "application/json",
                                            "Idempotency-Key": idem_key}, timeout=30)

    def test_replay_returns_first_response_without_activation_token(self):
        k = key()
        email = unique_email("replay")
        first = self.post({"email": email, "full_name": "Re Play", "product": "P"}, k)
        self.assertEqual(first.status, 201, first)
        self.assertIn("activation_token", first.json)
        after_first = self.server.counts()

        # Same JSON, other key order and whitespace.
        same = '{ "product" : "P",\n  "full_name":"Re Play",   "email" : "%s" }' % email
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                again = self.post(same, k)
                self.assertEqual(again.status, 201, again)
                expected = dict(first.json)
                del expected["activation_token"]
                self.assertEqual(again.json, expected)
                self.assertNotIn("activation_token", again.json)
                self.assertEqual(self.server.counts(), after_first)

    def test_same_key_different_body_is_422(self):
        k = key()
        email = unique_email("mismatch")
        self.assertEqual(self.post({"email": email, "full_name": "One"}, k).status, 201)
        before = self.server.counts()
        for body in ({"email": email, "full_name": "Two"},
                     {"email": unique_email("other"), "full_name": "One"},
                     {"email": email, "full_name": "One", "phone": "123"}):
            with self.subTest(body=body):
                resp = self.post(body, k)
                self.assertProblem(resp, 422, "idempotency_key_reused")
                self.assertEqual(self.server.counts(), before)

    def test_keys_are_scoped_per_api_token(self):
        k = key()
        email_a = unique_email("scope-a")
        first = self.post({"email": email_a, "full_name": "A"}, k, token="sales")
        self.assertEqual(first.status, 201, first)

        # Another token, same key, different body: a new request, not a 422.
        email_b = unique_email("scope-b")
        other = self.post({"email": email_b, "full_name": "B"}, k, token="sales2")
        self.assertEqual(other.status, 201, other)
        self.assertNotEqual(other.json["user_id"], first.json["user_id"])

        # Another token, same key, the first body: not a replay of the first
        # token's answer but a fresh request for an existing email.
        third = self.post({"email": email_a, "full_name": "A"}, k, token="admin")
        self.assertProblem(third, 409, "user_exists")

        # The first token still replays its own answer.
        replay = self.post({"email": email_a, "full_name": "A"}, k, token="sales")
        self.assertEqual(replay.status, 201, replay)
        self.assertEqual(replay.json["user_id"], first.json["user_id"])

    def test_new_key_for_an_existing_email_is_409(self):
        email = unique_email("newkey")
        self.assertEqual(self.post({"email": email, "full_name": "N"}, key()).status, 201)
        self.assertProblem(self.post({"email": email, "full_name": "N"}, key()), 409, "user_exists")

    def test_requests_without_key_are_not_affected(self):
        k = key()
        email = unique_email("nokey")
        self.assertEqual(self.post({"email": email, "full_name": "K"}, k).status, 201)
        resp = self.server.create_user(email=email, full_name="K")
        self.assertProblem(resp, 409, "user_exists")

    def test_longest_valid_key_works(self):
        k = ("k" * 223 + uuid.uuid4().hex)[:255]
        self.assertEqual(len(k), 255)
        body = {"email": unique_email("longkey"), "full_name": "L"}
        first = self.post(body, k)
        self.assertEqual(first.status, 201, first)
        again = self.post(body, k)
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.json["user_id"], first.json["user_id"])

    def test_concurrent_same_key_creates_one_account(self):
        k = key()
        email = unique_email("idem-race")
        body = json.dumps({"email": email, "full_name": "Same Key"})
        before = self.server.counts()
        results = parallel(20, lambda _: self.post(body, k))
        errors = [r for r in results if isinstance(r, Exception)]
        self.assertEqual(errors, [])
        statuses = [r.status for r in results]
        self.assertTrue(all(s in (201, 409) for s in statuses), statuses)
        self.assertGreaterEqual(statuses.count(201), 1, statuses)
        for r in results:
            if r.status == 409:
                self.assertIn(r.code, ("idempotency_key_in_flight", "user_exists"), r)
        user_ids = {r.json["user_id"] for r in results if r.status == 201}
        self.assertEqual(len(user_ids), 1, user_ids)
        rows = self.server.query("SELECT COUNT(*) FROM accounts WHERE email_normalized = ?",
                                 (email,))
        self.assertEqual(rows[0][0], 1)
        after = self.server.counts()
        self.assertEqual(after["accounts"], before["accounts"] + 1)
        self.assertEqual(after["idempotency_keys"], before["idempotency_keys"] + 1)
        # Once settled, the key replays the single success.
        replay = self.post(body, k)
        self.assertEqual(replay.status, 201, replay)
        self.assertEqual(replay.json["user_id"], user_ids.pop())

    def test_keys_and_accounts_survive_a_restart(self):
        k = key()
        email = unique_email("restart")
        body = {"email": email, "full_name": "Durable"}
        first = self.post(body, k)
        self.assertEqual(first.status, 201, first)
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        self.server.start()
        replay = self.post(body, k)
        self.assertEqual(replay.status, 201, replay)
        expected = dict(first.json)
        del expected["activation_token"]
        self.assertEqual(replay.json, expected)
        self.assertProblem(self.post({"email": email, "full_name": "Changed"}, k), 422,
                           "idempotency_key_reused")
        found = self.server.get(f"{USERS}/{first.json['user_id']}", token="sales")
        self.assertEqual(found.status, 200, found)
        self.assertEqual(found.json["email"], email)

    def test_concurrent_same_key_different_tokens_are_independent(self):
        k = key()
        emails = [unique_email("tok-a"), unique_email("tok-b")]
        tokens = ["sales", "sales2"]
        results = parallel(2, lambda i: self.post({"email": emails[i], "full_name": "T"}, k,
                                                  token=tokens[i]))
        self.assertEqual([r.status for r in results], [201, 201], results)


if __name__ == "__main__":
    unittest.main()
