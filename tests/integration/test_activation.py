"""POST /api/v1/auth/activate and POST /api/v1/auth/login."""

import base64
import hashlib
import os
import unittest

from usher_harness import ServerTestCase, unique_email

ACTIVATE = "/api/v1/auth/activate"
LOGIN = "/api/v1/auth/login"


class ActivationTest(ServerTestCase):
    server_name = "activation"

    def new_user(self, prefix="act"):
        email = unique_email(prefix)
        resp = self.server.create_user(email=email)
        self.assertEqual(resp.status, 201, resp)
        return email, resp.json["user_id"], resp.json["activation_token"]

    def activate(self, token, password):
        return self.server.request("POST", ACTIVATE, body={"token": token, "password": password})

    def login(self, email, password):
        return self.server.request("POST", LOGIN, body={"email": email, "password": password})

    def test_activate_then_login(self):
        email, user_id, token = self.new_user()
        resp = self.activate(token, "correct horse battery")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json, {"status": "activated", "user_id": user_id})

        user = self.server.get(f"/api/v1/users/{user_id}", token="sales")
        self.assertIs(user.json["activated"], True)
        self.assertIsInstance(user.json["activated_at"], str)

        ok = self.login(email, "correct horse battery")
        self.assertEqual(ok.status, 200, ok)
        self.assertIsInstance(ok.json["session_token"], str)
        self.assertGreaterEqual(len(ok.json["session_token"]), 16)
        self.assertIsInstance(ok.json["expires_at"], str)
        # Two logins, two different sessions.
        again = self.login(email, "correct horse battery")
        self.assertEqual(again.status, 200, again)
        self.assertNotEqual(again.json["session_token"], ok.json["session_token"])

    def test_login_email_is_compared_case_insensitively(self):
        email, _, token = self.new_user("case")
        self.assertEqual(self.activate(token, "password-123").status, 200)
        resp = self.login(f"  {email.upper()} ", "password-123")
        self.assertEqual(resp.status, 200, resp)

    def test_token_works_once(self):
        _, _, token = self.new_user("once")
        self.assertEqual(self.activate(token, "first password").status, 200)
        second = self.activate(token, "second password")
        self.assertProblem(second, 400, "activation_token_invalid", field="token")

    def test_rejected_activation_does_not_use_up_the_token(self):
        email, user_id, token = self.new_user("retry")
        before = self.server.query("SELECT used_at FROM activation_tokens t JOIN accounts a "
                                   "ON a.id = t.account_id WHERE a.email_normalized = ?", (email,))
        short = self.activate(token, "short")
        self.assertProblem(short, 400, "field_length", field="password")
        too_long = self.activate(token, "x" * 129)
        self.assertProblem(too_long, 400, "field_length", field="password")
        self.assertEqual(self.server.query(
            "SELECT used_at FROM activation_tokens t JOIN accounts a ON a.id = t.account_id "
            "WHERE a.email_normalized = ?", (email,)), before)
        self.assertProblem(self.login(email, "short"), 401, "invalid_credentials")
        ok = self.activate(token, "now long enough")
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(ok.json["user_id"], user_id)
        self.assertEqual(self.login(email, "now long enough").status, 200)

    def test_password_length_bounds(self):
        for name, password in (("8 characters", "12345678"), ("128 characters", "p" * 128),
                               ("8 multibyte characters", "\u00e9" * 8)):
            with self.subTest(name):
                email, _, token = self.new_user("bounds")
                resp = self.activate(token, password)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(self.login(email, password).status, 200)
        for name, password in (("7 characters", "1234567"), ("129 characters", "p" * 129),
                               ("empty", "")):
            with self.subTest(name):
                _, _, token = self.new_user("bounds-bad")
                self.assertProblem(self.activate(token, password), 400, "field_length",
                                   field="password")

    def test_unknown_token(self):
        self.assertProblem(self.activate("usher_a_definitely-not-issued", "long enough"), 400,
                           "activation_token_invalid", field="token")

    def test_expired_token_is_invalid(self):
        email, _, token = self.new_user("expired")
        conn = self.server.db()
        try:
            conn.execute("UPDATE activation_tokens SET expires_at = '2000-01-01T00:00:00.000Z' "
                         "WHERE account_id = (SELECT id FROM accounts WHERE email_normalized = ?)",
                         (email,))
            conn.commit()
        finally:
            conn.close()
        self.assertProblem(self.activate(token, "long enough"), 400, "activation_token_invalid",
                           field="token")
        self.assertProblem(self.login(email, "long enough"), 401, "invalid_credentials")

    def test_missing_fields(self):
        self.assertProblem(self.server.request("POST", ACTIVATE, body={"password": "long enough"}),
                           400, "field_required", field="token")
        _, _, token = self.new_user("missing")
        self.assertProblem(self.server.request("POST", ACTIVATE, body={"token": token}),
                           400, "field_required", field="password")

    def test_failed_logins_look_the_same(self):
        email, _, token = self.new_user("login")
        pending_email, _, _ = self.new_user("pending")
        self.assertEqual(self.activate(token, "the right one").status, 200)
        sessions_before = self.server.counts(("sessions",))
        wrong = self.login(email, "the wrong one")
        unknown = self.login(unique_email("nobody"), "the wrong one")
        pending = self.login(pending_email, "the wrong one")
        for resp in (wrong, unknown, pending):
            self.assertProblem(resp, 401, "invalid_credentials")
        self.assertEqual(wrong.json, unknown.json)
        self.assertEqual(wrong.json, pending.json)
        self.assertEqual(self.server.counts(("sessions",)), sessions_before)

    def test_not_yet_activated_account_cannot_log_in_with_any_password(self):
        email, _, _ = self.new_user("inactive")
        for password in ("password", "12345678", "correct horse"):
            with self.subTest(password=password):
                self.assertProblem(self.login(email, password), 401, "invalid_credentials")

    def test_token_is_its_issue_time_then_random_bytes_stored_as_time_and_digest(self):
        _, user_id, token = self.new_user("shape")
        self.assertRegex(token, r"^usher_a_[0-9a-f]{14}[A-Za-z0-9_-]{43}$")
        stored = self.server.query(
            "SELECT token_hash FROM activation_tokens WHERE account_id = ?", (user_id,))
        self.assertEqual(stored, [(token[8:22] + "." + hashlib.sha256(token.encode()).hexdigest(),)])

    def test_token_issued_before_the_time_was_part_of_it_still_activates(self):
        # Tokens issued by earlier versions: "usher_a_" and 43 base64url
        # characters, stored as their SHA-256 alone.
        email, user_id, _ = self.new_user("older")
        old = "usher_a_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        self.assertEqual(len(old), 51, old)
        conn = self.server.db()
        try:
            conn.execute(
                "INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at) "
                "VALUES (?, ?, '2999-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                (user_id, hashlib.sha256(old.encode()).hexdigest()))
            conn.commit()
        finally:
            conn.close()
        resp = self.activate(old, "an older token")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json, {"status": "activated", "user_id": user_id})
        self.assertEqual(self.login(email, "an older token").status, 200)

    def test_activation_token_is_not_stored_in_clear(self):
        _, _, token = self.new_user("hash")
        rows = self.server.query("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = ?",
                                 (token,))
        self.assertEqual(rows[0][0], 0)
        self.assertNotIn(token, self.server.stderr_tail(10 ** 7))


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


class StartUpHashTest(ServerTestCase):
    """The dummy hash that unknown-account logins verify against is made by
    the first login, not at start-up: argon2id's memory would otherwise be
    every process's peak RSS, logins or not (docs/benchmarks.md, "Memory")."""

    server_name = "start-up-hash"
    # 64 MiB, far above the rest of serve's resident memory.
    server_env = {"PASSWORD_HASH_MEMORY_KIB": "65536", "PASSWORD_HASH_ITERATIONS": "1"}

    def test_first_login_pays_for_the_dummy_hash(self):
        before = peak_rss_kib(self.server.proc.pid)
        resp = self.server.request("POST", LOGIN, body={"email": unique_email("nobody"),
                                                        "password": "the wrong one"})
        self.assertProblem(resp, 401, "invalid_credentials")
        # Hashed at start-up, the peak would already include the 64 MiB.
        self.assertGreater(peak_rss_kib(self.server.proc.pid) - before, 48 * 1024)


if __name__ == "__main__":
    unittest.main()
