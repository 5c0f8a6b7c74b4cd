"""Authentication and roles: the 401/403 matrix over the API's endpoints."""

import unittest

from usher_harness import ServerTestCase, unique_email, wait_until

SALES_AND_ADMIN = ("sales", "admin")
ADMIN_ONLY = ("admin",)


class RolesTest(ServerTestCase):
    server_name = "roles"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        created = cls.server.create_user(email=unique_email("roles-fixture"))
        assert created.status == 201, created
        cls.user_id = created.json["user_id"]
        cls.user_email = created.json["email"]

    def endpoints(self):
        """(name, method, path, body factory, roles allowed)."""
        return [
            ("create user", "POST", "/api/v1/users",
             lambda: {"email": unique_email("roles"), "full_name": "R"}, SALES_AND_ADMIN),
            ("find by email", "GET", f"/api/v1/users?email={self.user_email}", None,
             SALES_AND_ADMIN),
            ("get by id", "GET", f"/api/v1/users/{self.user_id}", None, SALES_AND_ADMIN),
            ("get mode", "GET", "/api/v1/admin/system/mode", None, ADMIN_ONLY),
            # Setting the current mode again changes nothing.
            ("put mode", "PUT", "/api/v1/admin/system/mode",
             lambda: {"mode": "sync_direct", "reason": "roles test"}, ADMIN_ONLY),
            ("health logs", "GET", "/api/v1/admin/health/logs", None, ADMIN_ONLY),
            ("list tokens", "GET", "/api/v1/admin/tokens", None, ADMIN_ONLY),
        ]

    def call(self, method, path, body_factory, authorization):
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        body = body_factory() if body_factory else None
        return self.server.request(method, path, body=body, headers=headers)

    def test_matrix(self):
        sales = self.server.tokens["sales"]
        admin = self.server.tokens["admin"]
        unauthenticated = {
            "no header": None,
            "empty header": "",
            "garbage": "garbage",
            "bearer garbage": "Bearer garbage",
            "unknown token": "Bearer usher_" + "Z" * 43,
            "token without scheme": sales,
            "basic scheme": f"Basic {admin}",
            "token with a suffix": f"Bearer {admin}x",
            "token truncated": f"Bearer {admin[:-1]}",
        }
        for name, method, path, body, allowed in self.endpoints():
            for label, authorization in unauthenticated.items():
                with self.subTest(endpoint=name, auth=label):
                    resp = self.call(method, path, body, authorization)
                    self.assertProblem(resp, 401, "unauthorized")
            for role, token in (("sales", sales), ("admin", admin)):
                with self.subTest(endpoint=name, role=role):
                    resp = self.call(method, path, body, f"Bearer {token}")
                    if role in allowed:
                        self.assertIn(resp.status, (200, 201), resp)
                    else:
                        self.assertProblem(resp, 403, "forbidden")

    def test_401_carries_www_authenticate_bearer(self):
        resp = self.server.get("/api/v1/admin/system/mode")
        self.assertProblem(resp, 401, "unauthorized")
        self.assertTrue(resp.headers.get("www-authenticate", "").lower().startswith("bearer"),
                        resp.headers)

    def test_forbidden_put_mode_changes_nothing(self):
        before = self.server.query("SELECT value, version FROM system_config "
                                   "WHERE key = 'system_mode'")
        events = self.server.counts(("system_health_logs",))
        resp = self.server.request("PUT", "/api/v1/admin/system/mode",
                                   body={"mode": "async_queue", "reason": "sneaky"}, token="sales")
        self.assertProblem(resp, 403, "forbidden")
        self.assertEqual(self.server.query("SELECT value, version FROM system_config "
                                           "WHERE key = 'system_mode'"), before)
        self.assertEqual(self.server.counts(("system_health_logs",)), events)

    def test_unauthenticated_post_writes_nothing(self):
        before = self.server.counts()
        resp = self.server.request("POST", "/api/v1/users",
                                   body={"email": unique_email("anon"), "full_name": "Anon"})
        self.assertProblem(resp, 401, "unauthorized")
        self.assertEqual(self.server.counts(), before)

    def test_public_endpoints_need_no_token(self):
        self.assertEqual(self.server.get("/healthz").status, 200)
        self.assertEqual(self.server.get("/readyz").status, 200)
        # activate/login answer on their own terms (400/401 with their codes), not 401 unauthorized.
        act = self.server.request("POST", "/api/v1/auth/activate",
                                  body={"token": "nope", "password": "long enough"})
        self.assertProblem(act, 400, "activation_token_invalid")
        login = self.server.request("POST", "/api/v1/auth/login",
                                    body={"email": unique_email("x"), "password": "whatever1"})
        self.assertProblem(login, 401, "invalid_credentials")

    def test_token_created_while_running_is_accepted_at_once(self):
        # Before issue 15 a new token was refused for up to a second.
        token = self.server.create_token("admin", "late-admin")
        resp = self.server.request("GET", "/api/v1/admin/system/mode",
                                   headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json["mode"], "sync_direct")

    def test_token_is_not_stored_in_clear(self):
        for token in self.server.tokens.values():
            rows = self.server.query("SELECT COUNT(*) FROM api_tokens WHERE token_hash = ? OR name = ?",
                                     (token, token))
            self.assertEqual(rows[0][0], 0)
        dump = "\n".join(str(r) for r in self.server.query("SELECT * FROM api_tokens"))
        for token in self.server.tokens.values():
            self.assertNotIn(token, dump)


if __name__ == "__main__":
    unittest.main()
