"""API tokens while serve runs (issue 15): a token works the moment `usher
token create` returns; garbage tokens are refused without harm; `usher token
list` / `revoke` and GET / DELETE /api/v1/admin/tokens; a revoked token is
refused on every instance (a second serve on the same database) within 2 s."""

import secrets
import time
import unittest

from redis_harness import sibling
from usher_harness import ProblemAssertions, UsherServer, http_request, parallel, wait_until

REVOKE_DEADLINE = 2.0
READ_PATH = "/api/v1/admin/queue"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class TokenTest(unittest.TestCase, ProblemAssertions):
    @classmethod
    def setUpClass(cls):
        cls.a = UsherServer("tokens-a")
        cls.a.start()
        cls.b = sibling(cls.a, "tokens-b")
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()
        cls.a.close()

    def get(self, server, token, path=READ_PATH):
        return http_request(server.port, "GET", path, headers=bearer(token))

    def token_id(self, name):
        rows = self.a.query("SELECT id FROM api_tokens WHERE name = ?", (name,))
        self.assertEqual(len(rows), 1, rows)
        return rows[0][0]

    def new_admin_token(self, name):
        return self.a.create_token("admin", name), self.token_id(name)

    def wait_refused(self, server, token):
        """Seconds until `server` answers 401 to `token` (polled; fails after the deadline)."""
        started = time.monotonic()
        deadline = started + REVOKE_DEADLINE + 3  # poll a little past it to report the figure
        last = None
        while time.monotonic() < deadline:
            last = self.get(server, token)
            if last.status == 401:
                return time.monotonic() - started
            self.assertEqual(last.status, 200, last)
            time.sleep(0.05)
        raise AssertionError(f"{server.name} still accepts a revoked token: {last!r}")

    # --- a new token works at once -------------------------------------------------
    def test_a_token_works_the_moment_the_command_returns_on_every_instance(self):
        for i in range(15):
            token = self.a.create_token("admin" if i % 2 else "sales_manager", f"fresh-{i}")
            path = READ_PATH if i % 2 else "/api/v1/users?email=nobody%40example.com"
            for server in (self.a, self.b):
                resp = self.get(server, token, path)
                self.assertIn(resp.status, (200, 404), f"token {i} on {server.name}: {resp!r}")
                if resp.status == 404:
                    self.assertEqual(resp.code, "user_not_found", resp)

    def test_garbage_tokens_are_refused_and_valid_ones_still_work(self):
        results = parallel(32, lambda i: [self.get(self.a, "usher_" + secrets.token_hex(16))
                                          for _ in range(10)])
        for batch in results:
            self.assertNotIsInstance(batch, Exception, batch)
            for resp in batch:
                # 503 when more unknown tokens are checked at once than allowed.
                self.assertIn(resp.status, (401, 503), resp)
        self.assertEqual(self.a.get(READ_PATH, token="admin").status, 200)
        # The same garbage token again is answered from memory.
        garbage = "usher_" + secrets.token_hex(16)
        for _ in range(3):
            self.assertProblem(self.get(self.a, garbage), 401, "unauthorized")

    # --- list --------------------------------------------------------------------
    def test_list_shows_tokens_but_never_the_token_or_its_hash(self):
        token, token_id = self.new_admin_token("listed")
        self.assertEqual(self.get(self.a, token).status, 200)
        resp = self.a.get("/api/v1/admin/tokens", token="admin")
        self.assertEqual(resp.status, 200, resp)
        listed = {t["id"]: t for t in resp.json["tokens"]}
        self.assertIn(token_id, listed)
        entry = listed[token_id]
        self.assertEqual(set(entry), {"id", "name", "role", "created_at", "last_used_at",
                                      "revoked_at", "revoked_by"})
        self.assertEqual((entry["name"], entry["role"], entry["revoked_at"]),
                         ("listed", "admin", None))
        digest = self.a.query("SELECT token_hash FROM api_tokens WHERE id = ?", (token_id,))[0][0]
        for secret in (token, digest):
            self.assertNotIn(secret, resp.body.decode())
        cli = self.a.cli_checked(["token", "list"]).stdout
        self.assertIn("listed", cli)
        for secret in (token, digest):
            self.assertNotIn(secret, cli)

    def test_last_used_is_recorded_within_seconds(self):
        token, token_id = self.new_admin_token("used")
        self.assertEqual(self.get(self.a, token).status, 200)
        last_used = wait_until(
            lambda: self.a.query("SELECT last_used_at FROM api_tokens WHERE id = ?",
                                 (token_id,))[0][0], 10, "last_used_at to be written",
            until=lambda value: value is not None)
        self.assertRegex(last_used, r"^\d{4}-\d{2}-\d{2}T")

    def test_sales_manager_may_not_list_or_revoke(self):
        _, token_id = self.new_admin_token("not-by-sales")
        self.assertProblem(self.a.get("/api/v1/admin/tokens", token="sales"), 403, "forbidden")
        self.assertProblem(self.a.request("DELETE", f"/api/v1/admin/tokens/{token_id}",
                                          token="sales"), 403, "forbidden")
        self.assertIsNone(self.a.query("SELECT revoked_at FROM api_tokens WHERE id = ?",
                                       (token_id,))[0][0])

    def test_revoking_an_unknown_token_is_404(self):
        resp = self.a.request("DELETE", "/api/v1/admin/tokens/987654321", token="admin")
        self.assertProblem(resp, 404, "token_not_found")
        cli = self.a.cli(["token", "revoke", "987654321"])
        self.assertNotEqual(cli.returncode, 0)
        self.assertIn("987654321", cli.stderr)

    # --- revoke ------------------------------------------------------------------
    def test_revoke_through_the_api_is_refused_on_both_instances_within_2_s(self):
        token, token_id = self.new_admin_token("leaked-api")
        for server in (self.a, self.b):
            self.assertEqual(self.get(server, token).status, 200)
        resp = self.a.request("DELETE", f"/api/v1/admin/tokens/{token_id}", token="admin")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual((resp.json["id"], resp.json["changed"]), (token_id, True))
        self.assertIsNotNone(resp.json["revoked_at"])
        self.assertIn("admin-token", resp.json["revoked_by"])
        # At once on the instance that revoked it; within 2 s on the other.
        self.assertProblem(self.get(self.a, token), 401, "unauthorized")
        self.assertLessEqual(self.wait_refused(self.b, token), REVOKE_DEADLINE)
        # Again: nothing changes.
        again = self.a.request("DELETE", f"/api/v1/admin/tokens/{token_id}", token="admin")
        self.assertEqual((again.status, again.json["changed"]), (200, False))
        events = self.a.query("SELECT message, metadata FROM system_health_logs "
                              "WHERE event_type = 'WARNING' AND message LIKE 'API token %'")
        mine = [e for e in events if f'"token_id":{token_id}' in e[1].replace(" ", "")]
        self.assertEqual(len(mine), 1, events)
        self.assertIn("leaked-api", mine[0][0])
        self.assertIn("admin-token", mine[0][0])

    def test_revoke_through_the_cli_is_refused_on_both_instances_within_2_s(self):
        token, token_id = self.new_admin_token("leaked-cli")
        for server in (self.a, self.b):
            self.assertEqual(self.get(server, token).status, 200)
        out = self.a.cli_checked(["token", "revoke", str(token_id)]).stdout
        self.assertIn("revoked", out)
        self.assertNotIn(token, out)
        for server in (self.a, self.b):
            self.assertLessEqual(self.wait_refused(server, token), REVOKE_DEADLINE)
        events = self.a.query("SELECT metadata FROM system_health_logs WHERE event_type = 'WARNING'"
                              " AND message LIKE 'API token %' AND message LIKE '%leaked-cli%'")
        self.assertEqual(len(events), 1, events)
        self.assertIn("cli:", events[0][0])


if __name__ == "__main__":
    unittest.main()
