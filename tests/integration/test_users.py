"""POST /api/v1/users and the lookups, in sync_direct mode (201 answers)."""

import json
import unittest
import urllib.parse
import uuid

from usher_harness import ServerTestCase, long_email, parallel, unique_email

USERS = "/api/v1/users"


class UsersTest(ServerTestCase):
    server_name = "users"

    def account_rows(self, email):
        return self.server.query("SELECT id FROM accounts WHERE email_normalized = ?", (email,))

    def assert_created(self, resp, email):
        self.assertEqual(resp.status, 201, resp)
        self.assertTrue(resp.content_type.lower().startswith("application/json"), resp.headers)
        body = resp.json
        self.assertEqual(body["status"], "created")
        self.assertEqual(body["email"], email)
        self.assertEqual(body["mode"], "sync_direct")
        self.assertIs(body["fallback"], False)
        self.assertIsInstance(body["user_id"], int)
        self.assertIsInstance(body["job_id"], int)
        self.assertIsInstance(body["activation_token"], str)
        self.assertGreaterEqual(len(body["activation_token"]), 16)
        return body

    def test_create_then_lookup_by_email_and_id(self):
        local = f"MiXeD.{uuid.uuid4().hex[:10]}"
        raw = f"  {local}@Example.COM   "
        expected = f"{local.lower()}@example.com"
        resp = self.server.create_user(email=raw, full_name="Ada Lovelace", phone="+44 20 7946 0000",
                                       product="Analytical Engine")
        created = self.assert_created(resp, expected)
        self.assertEqual(len(self.account_rows(expected)), 1)

        for token in ("sales", "admin"):
            by_email = self.server.get(f"{USERS}?email={expected.upper()}", token=token)
            self.assertEqual(by_email.status, 200, by_email)
            user = by_email.json
            self.assertEqual(user["id"], created["user_id"])
            self.assertEqual(user["email"], expected)
            self.assertIs(user["activated"], False)
            self.assertIsNone(user["activated_at"])
            self.assertIsInstance(user["created_at"], str)
            self.assertEqual(user["profile"]["full_name"], "Ada Lovelace")
            self.assertEqual(user["profile"]["phone"], "+44 20 7946 0000")
            self.assertEqual(user["profile"]["product"], "Analytical Engine")
            self.assertIsInstance(user["profile"]["created_by"], str)
            self.assertTrue(user["profile"]["created_by"])

            by_id = self.server.get(f"{USERS}/{created['user_id']}", token=token)
            self.assertEqual(by_id.status, 200, by_id)
            self.assertEqual(by_id.json, user)

    def test_optional_fields_absent_are_null(self):
        email = unique_email("minimal")
        created = self.assert_created(self.server.create_user(email=email, full_name="Min"), email)
        user = self.server.get(f"{USERS}/{created['user_id']}", token="sales").json
        self.assertIsNone(user["profile"]["phone"])
        self.assertIsNone(user["profile"]["product"])
        self.assertEqual(user["profile"]["full_name"], "Min")

    def test_admin_may_create(self):
        email = unique_email("byadmin")
        self.assert_created(self.server.create_user(email=email, token="admin"), email)

    def test_duplicate_email_is_409_whatever_the_case_and_spaces(self):
        email = unique_email("dup")
        self.assert_created(self.server.create_user(email=email), email)
        before = self.server.counts()
        for variant in (email, email.upper(), f"  {email}  ", email.capitalize()):
            with self.subTest(variant):
                resp = self.server.create_user(email=variant, full_name="Someone Else")
                self.assertProblem(resp, 409, "user_exists")
                self.assertEqual(self.server.counts(), before)
        self.assertEqual(len(self.account_rows(email)), 1)

    def test_boundary_lengths_are_accepted(self):
        cases = {
            "254-character email with spaces around": dict(
                email="  " + long_email(254, uuid.uuid4().hex[:12]) + "  "),
            "200 multibyte full_name": dict(full_name="\u00e9" * 200),
            "200 ASCII full_name with spaces around": dict(full_name="  " + "n" * 200 + "  "),
            "32-character phone": dict(phone="9" * 32),
            "100 CJK product": dict(product="\u65e5" * 100),
            "emoji full_name": dict(full_name="\U0001F600" * 200),
            "1-character full_name": dict(full_name="X"),
        }
        for name, fields in cases.items():
            with self.subTest(name):
                fields = dict(fields)
                email = fields.pop("email", unique_email("edge"))
                resp = self.server.create_user(email=email, **fields)
                self.assertEqual(resp.status, 201, resp)
                self.assertEqual(resp.json["email"], email.strip().lower())

    def test_unicode_is_stored_verbatim(self):
        name = "Zo\u00eb \u4e2d\u6587 \U0001F680"
        email = unique_email("utf8")
        created = self.assert_created(self.server.create_user(email=email, full_name=name), email)
        user = self.server.get(f"{USERS}/{created['user_id']}", token="sales")
        self.assertEqual(user.json["profile"]["full_name"], name)

    def test_plus_addresses_round_trip(self):
        email = f"buyer+{uuid.uuid4().hex[:8]}@example.com"
        created = self.assert_created(self.server.create_user(email=email), email)
        quoted = urllib.parse.quote(email.upper(), safe="")
        found = self.server.get(f"{USERS}?email={quoted}", token="sales")
        self.assertEqual(found.status, 200, found)
        self.assertEqual(found.json["id"], created["user_id"])
        self.assertEqual(found.json["email"], email)

    def test_lookup_errors(self):
        self.assertProblem(self.server.get(f"{USERS}?email={unique_email('ghost')}", token="sales"),
                           404, "user_not_found")
        self.assertProblem(self.server.get(f"{USERS}/987654321", token="sales"), 404,
                           "user_not_found")
        self.assertProblem(self.server.get(USERS, token="sales"), 400, "field_required")
        self.assertProblem(self.server.get(f"{USERS}?email=nope", token="sales"), 400,
                           "email_invalid")
        self.assertProblem(self.server.get("/api/v1/no-such-thing", token="sales"), 404, "not_found")
        self.assertProblem(self.server.get("/api/v1/users/abc", token="sales"), 404, "not_found")

    def test_healthz_and_readyz(self):
        health = self.server.get("/healthz")
        self.assertEqual(health.status, 200)
        self.assertEqual(health.json, {"status": "ok"})
        ready = self.server.get("/readyz")
        self.assertEqual(ready.status, 200, ready)
        self.assertEqual(ready.json["status"], "ready")
        self.assertIs(ready.json["database"]["ok"], True)
        self.assertIsInstance(ready.json["queue"], dict)

    def test_50_concurrent_identical_posts_create_one_account(self):
        email = unique_email("race")
        body = json.dumps({"email": email, "full_name": "Race Condition"})
        before = self.server.counts()

        def post(_):
            return self.server.request("POST", USERS, body=body, token="sales",
                                       headers={"Content-Type": "application/json"}, timeout=30)

        results = parallel(50, post)
        errors = [r for r in results if isinstance(r, Exception)]
        self.assertEqual(errors, [], "some requests got no HTTP answer")
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses.count(201), 1, statuses)
        self.assertEqual(statuses.count(409), 49, statuses)
        for r in results:
            if r.status == 409:
                self.assertEqual(r.code, "user_exists", r)
        self.assertEqual(len(self.account_rows(email)), 1)
        after = self.server.counts()
        self.assertEqual(after["accounts"], before["accounts"] + 1)
        self.assertEqual(after["tripwire_users"], before["tripwire_users"] + 1)
        self.assertEqual(after["activation_tokens"], before["activation_tokens"] + 1)

    def test_concurrent_distinct_posts_all_succeed(self):
        emails = [unique_email(f"bulk{i}") for i in range(30)]
        results = parallel(30, lambda i: self.server.create_user(email=emails[i]))
        statuses = [getattr(r, "status", r) for r in results]
        self.assertEqual(statuses, [201] * 30)
        ids = {r.json["user_id"] for r in results}
        self.assertEqual(len(ids), 30)
        for email in emails:
            self.assertEqual(len(self.account_rows(email)), 1)


if __name__ == "__main__":
    unittest.main()
