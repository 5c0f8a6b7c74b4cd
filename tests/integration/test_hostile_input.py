"""Hostile input at scale (issue 15, item 5).

- Slow-loris: connections that send one byte a second (in the headers, or in
  the body) are closed by the read timeout (HTTP_READ_TIMEOUT_MS, for the whole
  request, not per byte) while other clients are served at once.
- 10,000 idle connections: other clients are still served; usher holds one
  file descriptor per connection and no more, and gives them back when the
  clients close them. The test raises its own RLIMIT_NOFILE to what it needs
  (10,000 client sockets); usher inherits it (docs/operations.md).
- Bad input for every endpoint and header the older table (test_bad_input)
  does not cover: tokens API, timeline, whoami, jobs, login, Authorization,
  Idempotency-Key, Content-Type and Content-Length oddities, query strings.
  Never a 5xx, every 4xx a problem+json, nothing written, still healthy.
"""

import http.client
import json
import os
import resource
import socket
import threading
import time
import unittest
import urllib.parse

from usher_harness import (ServerTestCase, WRITE_TABLES, http_request, status_of_raw,
                           unique_email, wait_until)

READ_TIMEOUT_MS = 2000
IDLE_CONNECTIONS = int(os.environ.get("USHER_IDLE_CONNECTIONS", "10000"))
FAST_ANSWER_S = 1.0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile(needed):
    """Raises this process's RLIMIT_NOFILE to at least `needed` (root may raise
    the hard limit too). Fails when it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, soft), max(needed, hard)))
    except (ValueError, OSError) as e:
        raise AssertionError(f"RLIMIT_NOFILE is {soft}/{hard}; this test needs {needed} "
                             f"(run as root or raise `ulimit -n`): {e}") from None


class SlowClient(threading.Thread):
    """Sends `prefix` at once, then one byte of `trickle` a second until the
    server closes the connection; records when that happened."""

    def __init__(self, port, prefix, trickle):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.prefix = prefix
        self.trickle = trickle
        self.started = None
        self.closed_after = None
        self.answer = b""
        self.stop = threading.Event()

    def run(self):
        self.started = time.monotonic()
        try:
            self.sock.sendall(self.prefix)
            for i in range(len(self.trickle)):
                if self.stop.wait(1.0):
                    return
                self.sock.sendall(self.trickle[i:i + 1])
                if self._closed(0.0):
                    return
            self._closed(10.0)
        except OSError:
            self.closed_after = time.monotonic() - self.started
        finally:
            self.sock.close()

    def _closed(self, wait):
        self.sock.settimeout(max(wait, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            data = b""
        self.answer += data
        if not data:
            self.closed_after = time.monotonic() - self.started
            return True
        return False


class HostileTest(ServerTestCase):
    server_name = "hostile"
    server_env = {"HTTP_READ_TIMEOUT_MS": str(READ_TIMEOUT_MS)}

    def served_quickly(self):
        started = time.monotonic()
        health = self.server.healthz(timeout=5)
        created = self.server.create_user(email=unique_email("calm"))
        took = time.monotonic() - started
        self.assertEqual((health.status, created.status), (200, 201), created)
        return took

    def test_slow_loris_is_closed_by_the_read_timeout_while_others_are_served(self):
        body = json.dumps({"email": unique_email("loris"), "full_name": "Slow"}).encode()
        loris = [SlowClient(self.server.port, b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                 for _ in range(20)]
        loris += [SlowClient(self.server.port,
                             b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/json\r\nAuthorization: Bearer "
                             + self.server.tokens["sales"].encode() +
                             b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n",
                             body) for _ in range(20)]
        loris_email = json.loads(body)["email"]
        for c in loris:
            c.start()
        slowest = 0.0
        deadline = time.monotonic() + READ_TIMEOUT_MS / 1000 + 6
        while any(c.closed_after is None for c in loris) and time.monotonic() < deadline:
            slowest = max(slowest, self.served_quickly())
        for c in loris:
            c.stop.set()
            c.join(15)
        closed = [c.closed_after for c in loris]
        print(f"\nslow-loris closed after {sorted(x for x in closed if x)[-3:]} s; "
              f"others answered within {slowest:.3f} s")
        self.assertNotIn(None, closed, "a slow-loris connection was still open")
        limit = READ_TIMEOUT_MS / 1000 + 2.5
        self.assertLess(max(closed), limit, "the read timeout did not close a slow client")
        self.assertLess(slowest, FAST_ANSWER_S, "others waited behind the slow clients")
        for c in loris:
            self.assertIn(status_of_raw(c.answer), (None, 408), c.answer[:200])
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM accounts WHERE "
                                           "email_normalized = ?", (loris_email,)), [(0,)],
                         "a half-sent body created a user")

    # --- bad input for the newer endpoints and every header ---------------------
    def check_answer(self, method, path, body=None, headers=None, token="admin", what=""):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.server.tokens[token]}")
        label = f"{what or ''} {method} {path[:80]} {str(headers)[:120]}"
        try:
            resp = http_request(self.server.port, method, path, body=body, headers=hdrs)
        except http.client.RemoteDisconnected:
            # Documented (docs/api.md): URLs over 8 KiB are refused by the
            # transport, the connection closed without an answer.
            self.assertGreater(len(path), 8 * 1024, f"{label}: closed without an answer")
            self.assertEqual(self.server.healthz().status, 200)
            return None
        self.assertLess(resp.status, 500, f"{label}: {resp!r}")
        if resp.status >= 400:
            self.assertTrue(resp.content_type.startswith("application/problem+json"),
                            f"{label}: {resp.content_type} {resp!r}")
            self.assertEqual(resp.json.get("status"), resp.status, f"{label}: {resp!r}")
        return resp

    def test_every_endpoint_with_hostile_values(self):
        before = self.server.counts(WRITE_TABLES + ("sessions", "api_tokens"))
        revoked_before = self.server.query("SELECT COUNT(*) FROM api_tokens "
                                           "WHERE revoked_at IS NOT NULL")[0][0]
        weird = ["", " ", "%", "%zz", "%00", "%ff%fe", "a" * 5000, "-1", "0", "1e9",
                 "99999999999999999999999", "\u00e9\u4e2d", "null", "[]", "{}", "'; DROP TABLE x;--",
                 "../../etc/passwd", "@", "a@", "@b.c", "x" * 300 + "@example.com"]
        quoted = [urllib.parse.quote(w, safe="%") for w in weird]
        get_paths = ["/api/v1/whoami", "/api/v1/admin/tokens", "/api/v1/admin/timeline",
                     "/api/v1/admin/jobs", "/api/v1/admin/queue", "/api/v1/admin/health/logs",
                     "/api/v1/users", "/api/v1/admin/system/mode", "/readyz", "/healthz", "/"]
        params = ["email", "status", "limit", "type", "before", "after", "cursor", "id", "q"]
        for path in get_paths:
            for q in quoted:
                for p in params:
                    self.check_answer("GET", f"{path}?{p}={q}", what="query")
                self.check_answer("GET", f"{path}?{q}", what="bare query")
                self.check_answer("GET", f"{path}?email={q}&email={q}", what="repeated")
        for q in ["0", "77777", "999999999999999999", "abc", "-1", "1.5", "%00", "1%2F2", "9" * 30]:
            for method in ("GET", "DELETE", "POST", "PUT"):
                self.check_answer(method, f"/api/v1/admin/tokens/{q}", what="token id")
                self.check_answer(method, f"/api/v1/admin/jobs/{q}/timeline", what="job id")
                self.check_answer(method, f"/api/v1/admin/jobs/{q}/retry", what="job id")
                self.check_answer(method, f"/api/v1/jobs/{q}", what="job id")
                self.check_answer(method, f"/api/v1/users/{q}", what="user id")
        # Revoking as a sales manager, without a token, with a garbage token.
        self.check_answer("DELETE", "/api/v1/admin/tokens/1", token="sales", what="role")
        self.check_answer("DELETE", "/api/v1/admin/tokens/1", token=None, what="anonymous")
        self.check_answer("DELETE", "/api/v1/admin/tokens/1",
                          headers={"Authorization": "Bearer usher_nope"}, token=None,
                          what="garbage token")
        # Every header usher reads, with hostile values, on every method.
        header_values = ["", " ", "Bearer", "Bearer ", "Bearer  x", "bearer x", "Basic Zm9vOmJhcg==",
                         "Bearer " + "A" * 8000, "Bearer usher_\u00e9", "Bearer usher_x\tY",
                         "Bearer " + self.server.tokens["admin"] + "x",
                         "Bearer " + self.server.tokens["admin"][:-1],
                         "Bearer " + self.server.tokens["admin"] + " extra"]
        bodies = {"/api/v1/users": {"email": "", "full_name": ""},
                  "/api/v1/auth/login": {"email": 1, "password": None},
                  "/api/v1/auth/activate": {"token": [], "password": {}},
                  "/api/v1/admin/system/mode": {"mode": None}}
        for value in header_values:
            for path in get_paths:
                self.check_answer("GET", path, headers={"Authorization": value}, token=None,
                                  what="authorization")
            for path, body in bodies.items():
                method = "PUT" if path.endswith("/mode") else "POST"
                self.check_answer(method, path, body=json.dumps(body),
                                  headers={"Authorization": value,
                                           "Content-Type": "application/json"},
                                  token=None, what="authorization")
        for value in ["", " ", "\u00e9", "a" * 256, "a b", "a\tb", "x" * 10000, "\x7f"]:
            self.check_answer("POST", "/api/v1/users",
                              body=json.dumps({"email": "", "full_name": "Bad"}),
                              headers={"Idempotency-Key": value,
                                       "Content-Type": "application/json"},
                              token="sales", what="idempotency key")
        for ctype in ["", "application/json; charset=latin1", "application/jsonx", "*/*",
                      "application/json, text/plain", "multipart/form-data; boundary=x",
                      "application/json; charset=\"", "a" * 5000]:
            for path, body in bodies.items():
                method = "PUT" if path.endswith("/mode") else "POST"
                self.check_answer(method, path, body=json.dumps(body),
                                  headers={"Content-Type": ctype}, what="content type")
        # Login: wrong types, huge and odd passwords (no account, nothing written).
        for body in [{"email": unique_email(), "password": "x" * 100000},
                     {"email": unique_email(), "password": "a\u0000b"},
                     {"email": "x" * 1000, "password": "password1"},
                     {"email": [unique_email()], "password": "password1"},
                     {"email": unique_email(), "password": 12345678},
                     {"email": unique_email(), "password": "password1", "remember": True},
                     [], "string", 1, None]:
            self.check_answer("POST", "/api/v1/auth/login", body=json.dumps(body),
                              headers={"Content-Type": "application/json"}, token=None,
                              what="login")
        after = self.server.counts(WRITE_TABLES + ("sessions", "api_tokens"))
        self.assertEqual(after, before, "hostile input wrote rows")
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM api_tokens "
                                           "WHERE revoked_at IS NOT NULL")[0][0], revoked_before,
                         "hostile input revoked a token")
        self.assertEqual(self.server.healthz().status, 200)

    def test_raw_header_oddities(self):
        token = self.server.tokens["admin"].encode()
        cases = [
            b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
            b"\r\nAuthorization: Bearer " + token + b"\r\n\r\n",
            b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization:Bearer\xff\xfe\r\n\r\n",
            b"GET /api/v1/admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
            b"\x00\r\n\r\n",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Content-Length: 7\r\n\r\n{}",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
            b"\r\n\r\n{}",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 2\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"DELETE /api/v1/admin/tokens/77777 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
            b"\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /api/v1/admin/timeline?email=%E0%A4%A HTTP/1.1\r\nHost: x\r\nAuthorization: "
            b"Bearer " + token + b"\r\n\r\n",
            b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 99 + b"\r\n",
            b"GET /api/v1/whoami?" + b"a=b&" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for payload in cases:
            data, _ = self.server.raw(payload, timeout=READ_TIMEOUT_MS / 1000 + 3)
            status = status_of_raw(data)
            self.assertTrue(status is None or status < 500, f"{payload[:100]!r} -> {data[:300]!r}")
        # The second Authorization header on a token revocation did not revoke it.
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM api_tokens "
                                           "WHERE revoked_at IS NOT NULL")[0][0], 0)
        self.assertEqual(self.server.healthz().status, 200)


class IdleConnectionsTest(ServerTestCase):
    server_name = "idle"
    # Long enough that none of them times out while the test opens the rest.
    server_env = {"HTTP_READ_TIMEOUT_MS": "60000"}

    served_quickly = HostileTest.served_quickly

    def test_10000_idle_connections(self):
        raise_nofile(IDLE_CONNECTIONS + 512)
        pid = self.server.proc.pid
        baseline = fd_count(pid)
        idle = []
        try:
            started = time.monotonic()
            for _ in range(IDLE_CONNECTIONS):
                idle.append(socket.create_connection(("127.0.0.1", self.server.port), timeout=10))
            opened = time.monotonic() - started
            # Every one accepted: one descriptor each, no more.
            held = wait_until(lambda: fd_count(pid), 30.0,
                              f"usher to accept {IDLE_CONNECTIONS} connections",
                              until=lambda n: n >= baseline + IDLE_CONNECTIONS)
            took = self.served_quickly()
            print(f"\n{IDLE_CONNECTIONS} idle connections opened in {opened:.1f} s; usher holds "
                  f"{held} descriptors (baseline {baseline}); a request took {took:.3f} s")
            self.assertLessEqual(held, baseline + IDLE_CONNECTIONS + 64)
            self.assertLess(took, FAST_ANSWER_S)
        finally:
            for s in idle:
                s.close()
        # Closed by the clients: the descriptors come back (the read timeout
        # closing idle connections is test_slow_loris's).
        wait_until(lambda: fd_count(pid), 30.0, "usher to close the idle connections",
                   until=lambda n: n <= baseline + 16)
        self.assertLess(self.served_quickly(), FAST_ANSWER_S)


if __name__ == "__main__":
    unittest.main()
