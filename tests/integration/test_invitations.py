"""The invitation lifecycle (issue 17 item 2, SPEC §3): the account view says
`invited`, `activated` or `expired` with the activation token's expiry, and a
resend (POST /api/v1/users/{id}/activation, `usher users resend EMAIL`)
issues a new token and revokes the earlier ones; once activated it is 409."""

import datetime
import unittest

from usher_harness import ServerTestCase, unique_email

ACTIVATE = "/api/v1/auth/activate"


def resend_path(user_id):
    return f"/api/v1/users/{user_id}/activation"


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class InvitationTest(ServerTestCase):
    server_name = "invitations"

    def new_user(self, prefix="inv"):
        email = unique_email(prefix)
        resp = self.server.create_user(email=email)
        self.assertEqual(resp.status, 201, resp)
        return email, resp.json["user_id"], resp.json["activation_token"]

    def activate(self, token, password="a good password"):
        return self.server.request("POST", ACTIVATE, body={"token": token, "password": password})

    def account(self, user_id):
        resp = self.server.get(f"/api/v1/users/{user_id}", token="sales")
        self.assertEqual(resp.status, 200, resp)
        return resp.json

    def test_a_new_account_is_invited_until_its_token_expires(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        email, user_id, _ = self.new_user()
        view = self.account(user_id)
        self.assertEqual(view["invitation"], "invited")
        expires = parse_time(view["activation_expires_at"])
        # ACTIVATION_TTL_HOURS defaults to 7 days (SPEC §3).
        week = datetime.timedelta(days=7)
        self.assertLessEqual(before + week - datetime.timedelta(seconds=5), expires)
        self.assertLessEqual(expires, datetime.datetime.now(datetime.timezone.utc) + week)
        by_email = self.server.get(f"/api/v1/users?email={email}", token="sales")
        self.assertEqual(by_email.json["invitation"], "invited")

    def test_resend_revokes_the_old_token_and_the_new_one_activates(self):
        email, user_id, old_token = self.new_user("resend")
        resp = self.server.request("POST", resend_path(user_id), token="sales")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json["user_id"], user_id)
        self.assertEqual(resp.json["email"], email)
        self.assertEqual(resp.json["invitation"], "invited")
        new_token = resp.json["activation_token"]
        self.assertTrue(new_token.startswith("usher_a_"), new_token)
        self.assertNotEqual(new_token, old_token)
        self.assertEqual(self.account(user_id)["activation_expires_at"],
                         resp.json["activation_expires_at"])
        # Stored only as a hash.
        stored = [row[0] for row in self.server.query(
            "SELECT token_hash FROM activation_tokens WHERE account_id = ?", (user_id,))]
        self.assertEqual(len(stored), 2)
        self.assertNotIn(new_token, stored)

        self.assertProblem(self.activate(old_token), 400, "activation_token_invalid",
                           field="token")
        ok = self.activate(new_token)
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(ok.json, {"status": "activated", "user_id": user_id})

        view = self.account(user_id)
        self.assertEqual(view["invitation"], "activated")
        self.assertIsNone(view["activation_expires_at"])
        again = self.server.request("POST", resend_path(user_id), token="admin")
        self.assertProblem(again, 409, "already_activated")
        self.assertEqual(len(self.server.query(
            "SELECT id FROM activation_tokens WHERE account_id = ?", (user_id,))), 2)

    def test_an_expired_invitation_is_shown_and_a_resend_renews_it(self):
        _, user_id, old_token = self.new_user("expired")
        # The invitation was sent long ago: its token expired yesterday.
        conn = self.server.db()
        try:
            conn.execute("UPDATE activation_tokens SET expires_at = '2026-01-01T00:00:00.000Z' "
                         "WHERE account_id = ?", (user_id,))
            conn.commit()
        finally:
            conn.close()
        view = self.account(user_id)
        self.assertEqual(view["invitation"], "expired")
        self.assertEqual(view["activation_expires_at"], "2026-01-01T00:00:00.000Z")
        self.assertProblem(self.activate(old_token), 400, "activation_token_invalid",
                           field="token")

        resp = self.server.request("POST", resend_path(user_id), token="sales")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.account(user_id)["invitation"], "invited")
        self.assertEqual(self.activate(resp.json["activation_token"]).status, 200)

    def test_resend_needs_a_token_and_an_existing_account(self):
        _, user_id, _ = self.new_user("auth")
        self.assertProblem(self.server.request("POST", resend_path(user_id), token=None), 401,
                           "unauthorized")
        missing = self.server.request("POST", resend_path(999999999), token="sales")
        self.assertProblem(missing, 404, "user_not_found")
        self.assertEqual(self.server.request("POST", "/api/v1/users/abc/activation",
                                             token="sales").status, 404)
        # Nothing was revoked by the refused requests.
        self.assertEqual(self.account(user_id)["invitation"], "invited")

    def test_cli_resend_prints_the_token_once_and_refuses_activated_accounts(self):
        email, user_id, old_token = self.new_user("cli")
        result = self.server.cli_checked(["users", "resend", f"  {email.upper()} "])
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        token = lines[-1]
        self.assertTrue(token.startswith("usher_a_"), result.stdout)
        self.assertIn(email, result.stdout)
        self.assertProblem(self.activate(old_token), 400, "activation_token_invalid",
                           field="token")
        self.assertEqual(self.activate(token).status, 200)

        refused = self.server.cli(["users", "resend", email])
        self.assertEqual(refused.returncode, 1, refused)
        self.assertIn("activated", refused.stderr)
        self.assertEqual(refused.stdout, "")

        unknown = self.server.cli(["users", "resend", unique_email("nobody")])
        self.assertEqual(unknown.returncode, 1, unknown)
        self.assertIn("no account", unknown.stderr)
        invalid = self.server.cli(["users", "resend", "not-an-email"])
        self.assertEqual(invalid.returncode, 1, invalid)
        self.assertIn("email", invalid.stderr)
        self.assertEqual(self.account(user_id)["invitation"], "activated")


if __name__ == "__main__":
    unittest.main()
