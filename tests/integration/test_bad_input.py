"""Bad input never produces a 5xx or a partial write (SPEC section 3).

A table of requests, each checked for the exact status and problem `code`,
that no row was written, and that /healthz still answers afterwards; then
garbage on raw sockets, where the server must answer a 4xx or close the
connection, never a 5xx.
"""

import http.client
import json
import socket
import unittest

from usher_harness import (ServerTestCase, WRITE_TABLES, connections, http_request,
                           long_email, status_of_raw, unique_email, wait_until)

USERS = "/api/v1/users"
KIB64 = 64 * 1024


def valid_body(**extra):
    return {"email": unique_email("bad"), "full_name": "Bad Input", **extra}


def padded_json(size):
    """A valid user body padded with trailing spaces to exactly `size` bytes."""
    text = json.dumps(valid_body())
    assert len(text) <= size
    return (text + " " * (size - len(text))).encode()


def case(name, body, status=400, code="", field=None, *, method="POST", path=USERS,
         ctype="application/json", auth="sales", headers=None):
    return dict(name=name, body=body, status=status, code=code, field=field, method=method,
                path=path, ctype=ctype, auth=auth, headers=headers or {})


def matrix():
    nul = "\u0000"
    cases = [
        # --- malformed / truncated JSON, invalid UTF-8 -------------------------
        case("truncated object", '{"email":', code="malformed_json"),
        case("truncated string", '{"email":"abc@example.com","full_name":"Tr', code="malformed_json"),
        case("unquoted keys", '{email:"a@example.com",full_name:"x"}', code="malformed_json"),
        case("single quotes", "{'email':'a@example.com','full_name':'x'}", code="malformed_json"),
        case("plain words", "not json at all", code="malformed_json"),
        case("empty body", b"", code="malformed_json"),
        case("trailing garbage", json.dumps(valid_body()) + " xyz", code="malformed_json"),
        case("trailing comma", '{"email":"a@example.com","full_name":"x",}', code="malformed_json"),
        case("raw invalid UTF-8 in a string",
             b'{"email":"utf8@example.com","full_name":"\xff\xfe bad"}', code="malformed_json"),
        case("overlong UTF-8 encoding",
             b'{"email":"utf8b@example.com","full_name":"\xc0\xaf"}', code="malformed_json"),
        case("truncated UTF-8 sequence",
             b'{"email":"utf8c@example.com","full_name":"ab\xe2\x82"}', code="malformed_json"),
        case("raw NUL byte outside strings", b'{"email":"n@example.com",\x00"full_name":"x"}',
             code="malformed_json"),
        case("raw control char inside a string",
             b'{"email":"ctl@example.com","full_name":"a\x01b"}', code="malformed_json"),
        # --- not an object -------------------------------------------------------
        case("array body", "[]", code="body_not_object"),
        case("string body", '"hello"', code="body_not_object"),
        case("number body", "42", code="body_not_object"),
        case("null body", "null", code="body_not_object"),
        case("deeply nested arrays", "[" * 30000 + "]" * 30000, code="body_not_object"),
        # --- required fields and types -------------------------------------------
        case("email missing", {"full_name": "No Email"}, code="field_required", field="email"),
        case("full_name missing", {"email": unique_email()}, code="field_required",
             field="full_name"),
        case("empty object", {}, code="field_required"),
        case("email is a number", {"email": 42, "full_name": "x"}, code="field_type", field="email"),
        case("email is an array", {"email": ["a@example.com"], "full_name": "x"}, code="field_type",
             field="email"),
        case("full_name is an object", {"email": unique_email(), "full_name": {"a": 1}},
             code="field_type", field="full_name"),
        case("full_name is boolean", {"email": unique_email(), "full_name": True},
             code="field_type", field="full_name"),
        case("phone is a number", valid_body(phone=5551234), code="field_type", field="phone"),
        case("product is boolean", valid_body(product=False), code="field_type", field="product"),
        # --- invalid values ---------------------------------------------------------
        case("email without @", valid_body(email="not-an-email"), code="email_invalid",
             field="email"),
        case("email without local part", valid_body(email="@example.com"), code="email_invalid",
             field="email"),
        case("email without domain", valid_body(email="user@"), code="email_invalid",
             field="email"),
        case("email with a space", valid_body(email="a b@example.com"), code="email_invalid",
             field="email"),
        case("email with two @", valid_body(email="a@b@example.com"), code="email_invalid",
             field="email"),
        case("email 255 characters", valid_body(email=long_email(255)), code="field_length",
             field="email"),
        case("full_name empty", valid_body(full_name=""), code="field_length", field="full_name"),
        case("full_name only spaces", valid_body(full_name="    "), code="field_length",
             field="full_name"),
        case("full_name 201 characters", valid_body(full_name="n" * 201), code="field_length",
             field="full_name"),
        case("full_name 201 multibyte characters", valid_body(full_name="\u00e9" * 201),
             code="field_length", field="full_name"),
        case("phone 33 characters", valid_body(phone="1" * 33), code="field_length", field="phone"),
        case("product 101 characters", valid_body(product="p" * 101), code="field_length",
             field="product"),
        case("product 101 CJK characters", valid_body(product="\u65e5" * 101), code="field_length",
             field="product"),
        # --- control characters (escaped) ------------------------------------------
        case("NUL escape in full_name", valid_body(full_name=f"Bob{nul}by"), code="field_invalid",
             field="full_name"),
        case("U+001F in full_name", valid_body(full_name="a\u001fb"), code="field_invalid",
             field="full_name"),
        case("U+007F in full_name", valid_body(full_name="a\u007fb"), code="field_invalid",
             field="full_name"),
        case("newline escape in phone", valid_body(phone="555\n1234"), code="field_invalid",
             field="phone"),
        case("NUL escape in product", valid_body(product=f"pro{nul}"), code="field_invalid",
             field="product"),
        case("NUL escape in email", valid_body(email=f"nul{nul}@example.com"), code="field_invalid",
             field="email"),
        # --- unknown fields ------------------------------------------------------------
        case("unknown field", valid_body(is_admin=True), code="unknown_field", field="is_admin"),
        case("field name in another case", {"Email": unique_email(), "full_name": "x"},
             code="unknown_field", field="Email"),
        case("deeply nested unknown field", '{"a":' * 10000 + "1" + "}" * 10000,
             code="unknown_field", field="a"),
        # --- sizes: 413 comes before everything else ------------------------------------
        case("1 MB body", b'{"email":"' + b"a" * (1024 * 1024) + b'"}', status=413,
             code="payload_too_large"),
        case("64 KiB + 1 of valid JSON", padded_json(KIB64 + 1), status=413,
             code="payload_too_large"),
        case("1 MB body without a token", b"x" * (1024 * 1024), status=413,
             code="payload_too_large", auth=None),
        case("64 KiB + 1 with a wrong content type", b"x" * (KIB64 + 1), status=413,
             code="payload_too_large", ctype="text/plain"),
        # --- content type: 415 after auth -------------------------------------------------
        case("text/plain", json.dumps(valid_body()), status=415, code="unsupported_media_type",
             ctype="text/plain"),
        case("no content type", json.dumps(valid_body()), status=415,
             code="unsupported_media_type", ctype=None),
        case("form encoded", "email=a%40example.com&full_name=x", status=415,
             code="unsupported_media_type", ctype="application/x-www-form-urlencoded"),
        case("application/jsonx", json.dumps(valid_body()), status=415,
             code="unsupported_media_type", ctype="application/jsonx"),
        case("text/json", json.dumps(valid_body()), status=415, code="unsupported_media_type",
             ctype="text/json"),
        case("empty content type", json.dumps(valid_body()), status=415,
             code="unsupported_media_type", ctype=""),
        # --- authentication and roles: 401/403 before 415 and 400 -------------------------
        case("no Authorization header", valid_body(), status=401, code="unauthorized", auth=None),
        case("garbage bearer token", valid_body(), status=401, code="unauthorized",
             auth="Bearer not-a-real-token"),
        case("well-formed unknown token", valid_body(), status=401, code="unauthorized",
             auth="Bearer usher_" + "A" * 43),
        case("empty bearer", valid_body(), status=401, code="unauthorized", auth="Bearer "),
        case("basic auth", valid_body(), status=401, code="unauthorized",
             auth="Basic dXNlcjpwYXNzd29yZA=="),
        case("token without scheme", valid_body(), status=401, code="unauthorized",
             auth="$SALES_TOKEN"),
        case("no token and malformed JSON", "{", status=401, code="unauthorized", auth=None),
        case("no token and text/plain", "hello", status=401, code="unauthorized", auth=None,
             ctype="text/plain"),
        case("sales token on PUT mode", {"mode": "async_queue"}, status=403, code="forbidden",
             method="PUT", path="/api/v1/admin/system/mode"),
        case("sales token on GET mode", None, status=403, code="forbidden", method="GET",
             path="/api/v1/admin/system/mode", ctype=None),
        case("sales token on health logs", None, status=403, code="forbidden", method="GET",
             path="/api/v1/admin/health/logs", ctype=None),
        case("wrong role and text/plain", "x", status=403, code="forbidden", method="PUT",
             path="/api/v1/admin/system/mode", ctype="text/plain"),
        # --- Idempotency-Key ----------------------------------------------------------------
        case("empty Idempotency-Key", valid_body(), code="idempotency_key_invalid",
             field="Idempotency-Key", headers={"Idempotency-Key": ""}),
        case("256-character Idempotency-Key", valid_body(), code="idempotency_key_invalid",
             field="Idempotency-Key", headers={"Idempotency-Key": "k" * 256}),
        case("Idempotency-Key with a tab", valid_body(), code="idempotency_key_invalid",
             field="Idempotency-Key", headers={"Idempotency-Key": b"key\twith-tab"}),
        case("Idempotency-Key with a non-ASCII byte", valid_body(), code="idempotency_key_invalid",
             field="Idempotency-Key", headers={"Idempotency-Key": "cl\u00e9".encode("latin-1")}),
        case("Idempotency-Key with an inner space", valid_body(), code="idempotency_key_invalid",
             field="Idempotency-Key", headers={"Idempotency-Key": "two words"}),
        # --- other endpoints ------------------------------------------------------------------
        case("activate: malformed JSON", "{", code="malformed_json", path="/api/v1/auth/activate",
             auth=None),
        case("activate: text/plain", '{"token":"x","password":"password1"}', status=415,
             code="unsupported_media_type", path="/api/v1/auth/activate", auth=None,
             ctype="text/plain"),
        case("activate: unknown token", {"token": "usher_a_nope", "password": "long enough"},
             code="activation_token_invalid", field="token", path="/api/v1/auth/activate",
             auth=None),
        case("activate: password too short", {"token": "usher_a_nope", "password": "short"},
             code="field_length", field="password", path="/api/v1/auth/activate", auth=None),
        case("activate: unknown field", {"token": "t", "password": "password1", "x": 1},
             code="unknown_field", field="x", path="/api/v1/auth/activate", auth=None),
        case("login: empty object", {}, code="field_required", path="/api/v1/auth/login",
             auth=None),
        case("login: 1 MB body", b"{" * (1024 * 1024), status=413, code="payload_too_large",
             path="/api/v1/auth/login", auth=None),
        case("login: unknown account", {"email": unique_email(), "password": "whatever1"},
             status=401, code="invalid_credentials", path="/api/v1/auth/login", auth=None),
        case("mode: invalid mode", {"mode": "turbo"}, code="mode_invalid", field="mode",
             method="PUT", path="/api/v1/admin/system/mode", auth="admin"),
        case("mode: unknown field", {"mode": "sync_direct", "force": True}, code="unknown_field",
             field="force", method="PUT", path="/api/v1/admin/system/mode", auth="admin"),
        case("mode: malformed JSON", "{mode}", code="malformed_json", method="PUT",
             path="/api/v1/admin/system/mode", auth="admin"),
        case("logs: limit 0", None, code="query_invalid", method="GET",
             path="/api/v1/admin/health/logs?limit=0", auth="admin", ctype=None),
        case("logs: unknown parameter", None, code="unknown_field", method="GET",
             path="/api/v1/admin/health/logs?colour=red", auth="admin", ctype=None),
        case("lookup: invalid email", None, code="email_invalid", method="GET",
             path="/api/v1/users?email=not-an-address", ctype=None),
        case("lookup: no email parameter", None, code="field_required", method="GET",
             path="/api/v1/users", ctype=None),
        case("unknown path", None, status=404, code="not_found", method="GET",
             path="/api/v1/nothing-here", ctype=None),
        case("unknown method on users", None, status=404, code="not_found", method="DELETE",
             path=USERS, ctype=None),
        case("POST to a user id", valid_body(), status=404, code="not_found",
             path=USERS + "/1"),
    ]
    return cases


class BadInputTest(ServerTestCase):
    server_name = "badinput"
    # A short read timeout so half-sent requests are dropped quickly.
    server_env = {"HTTP_READ_TIMEOUT_MS": "2000"}

    def snapshot(self):
        state = self.server.counts(WRITE_TABLES + ("sessions", "system_health_logs"))
        state["mode_version"] = self.server.query(
            "SELECT version FROM system_config WHERE key = 'system_mode'")[0][0]
        return state

    def ensure_alive(self):
        """Restart the server if a case killed it, so later cases still run."""
        if not self.server.alive():
            stderr = self.server.stderr_tail()
            self.server.close()
            type(self).server = self.make_server()
            self.server.start()
            return stderr
        return None

    def assert_healthy(self):
        try:
            health = self.server.healthz()
        except OSError as e:
            self.fail(f"/healthz did not answer after the case: {e}; "
                      f"server alive={self.server.alive()} {self.server.stderr_tail()}")
        self.assertEqual(health.status, 200)
        self.assertEqual(health.json, {"status": "ok"})

    def send(self, c):
        headers = dict(c["headers"])
        if c["ctype"] is not None:
            headers["Content-Type"] = c["ctype"]
        if c["auth"] in ("sales", "admin"):
            headers.update(self.server.auth(c["auth"]))
        elif c["auth"] is not None:
            headers["Authorization"] = c["auth"].replace("$SALES_TOKEN",
                                                         self.server.tokens["sales"])
        body = c["body"]
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return http_request(self.server.port, c["method"], c["path"], body=body, headers=headers)

    def test_matrix(self):
        cases = matrix()
        self.assertGreaterEqual(len(cases), 40)
        for c in cases:
            with self.subTest(c["name"]):
                crashed = self.ensure_alive()
                self.assertIsNone(crashed, f"the server died before this case: {crashed}")
                before = self.snapshot()
                try:
                    resp = self.send(c)
                except OSError as e:
                    self.fail(f"no HTTP answer: {e!r}")
                self.assertLess(resp.status, 500, resp)
                self.assertProblem(resp, c["status"], c["code"], c["field"])
                self.assertEqual(self.snapshot(), before, "a rejected request wrote rows")
                self.assert_healthy()

    def test_exactly_64_kib_is_accepted(self):
        body = padded_json(KIB64)
        self.assertEqual(len(body), KIB64)
        before = self.server.counts()
        resp = http_request(self.server.port, "POST", USERS, body=body,
                            headers={"Content-Type": "application/json",
                                     **self.server.auth("sales")})
        self.assertNotEqual(resp.status, 413, resp)
        self.assertEqual(resp.status, 201, resp)
        after = self.server.counts()
        self.assertEqual(after["accounts"], before["accounts"] + 1)
        self.assertEqual(after["tripwire_users"], before["tripwire_users"] + 1)
        self.assert_healthy()

    def chunked_post(self, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=15)
        try:
            pieces = (body[i:i + 4096] for i in range(0, len(body), 4096))
            try:
                conn.request("POST", USERS, body=pieces, encode_chunked=True,
                             headers={"Content-Type": "application/json",
                                      **self.server.auth("sales")})
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def test_chunked_bodies_obey_the_same_limit(self):
        before = self.snapshot()
        status, body = self.chunked_post(padded_json(KIB64 + 1))
        self.assertEqual((status, body.get("code")), (413, "payload_too_large"))
        status, body = self.chunked_post(padded_json(1024 * 1024))
        self.assertEqual((status, body.get("code")), (413, "payload_too_large"))
        self.assertEqual(self.snapshot(), before)
        status, body = self.chunked_post(padded_json(KIB64))
        self.assertEqual(status, 201, body)
        self.assert_healthy()

    def test_media_type_compares_case_insensitively(self):
        for ctype in ("Application/JSON; charset=utf-8", "APPLICATION/JSON", "application/json;charset=UTF-8"):
            with self.subTest(ctype):
                resp = http_request(self.server.port, "POST", USERS, body=json.dumps(valid_body()),
                                    headers={"Content-Type": ctype, **self.server.auth("sales")})
                self.assertEqual(resp.status, 201, resp)

    def test_raw_socket_garbage(self):
        port_request = b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        cases = [
            ("GARBAGE line", b"GARBAGE\r\n\r\n", False),
            ("binary bytes", bytes(range(256)) * 4, False),
            ("binary bytes then EOF", bytes(range(255, -1, -1)) * 2, True),
            ("NUL bytes", b"\x00" * 512 + b"\r\n\r\n", False),
            ("TLS client hello on plain HTTP",
             bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64, False),
            ("half request then EOF", b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nConte", True),
            ("half request held open", b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\n", False),
            ("body shorter than Content-Length then EOF",
             port_request + b"Content-Length: 100\r\n\r\n{\"email\"", True),
            ("body shorter than Content-Length held open",
             port_request + b"Content-Length: 100\r\n\r\n{\"email\"", False),
            ("non-numeric Content-Length", port_request + b"Content-Length: abc\r\n\r\n{}", False),
            ("negative Content-Length", port_request + b"Content-Length: -5\r\n\r\n{}", False),
            ("header line without a colon", b"GET /healthz HTTP/1.1\r\nNoColonHere\r\n\r\n", False),
            ("bad HTTP version", b"GET /healthz HTTP/9.Z\r\nHost: x\r\n\r\n", False),
            ("10 KB URL", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", False),
            ("150 headers", b"GET /healthz HTTP/1.1\r\n"
             + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", False),
            ("bad chunk size", port_request + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
             False),
            ("DEL in Idempotency-Key", port_request
             + b"Idempotency-Key: a\x7fb\r\nContent-Length: 2\r\n\r\n{}", False),
            ("NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n", False),
        ]
        for name, payload, eof in cases:
            with self.subTest(name):
                crashed = self.ensure_alive()
                self.assertIsNone(crashed, f"the server died before this case: {crashed}")
                before = self.snapshot()
                data, closed = self.server.raw(payload, timeout=6.0, shutdown_write=eof)
                status = status_of_raw(data)
                if data:
                    self.assertIsNotNone(status, f"answer is not HTTP: {data[:200]!r}")
                    self.assertTrue(400 <= status < 500, f"expected a 4xx or a close, got {data[:300]!r}")
                else:
                    self.assertTrue(closed, "the server neither answered nor closed within 6 s")
                self.assertEqual(self.snapshot(), before, "garbage wrote rows")
                self.assert_healthy()

    def test_headers_over_16_kib_get_431_then_the_connection_closes(self):
        # Before issue 15 a header over 8 KiB closed the connection without an
        # answer. Past 80 KiB it still does: http_parser's own limit on the
        # header block (docs/api.md).
        big_value = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
        many = (b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(40))
                + b"Content-Length: 2\r\n\r\n{}")
        for name, payload in (("one 60 KB header", big_value), ("40 headers of 500 bytes", many)):
            with self.subTest(name):
                before = self.snapshot()
                data, closed = self.server.raw(payload, timeout=6.0)
                self.assertEqual(status_of_raw(data), 431, data[:300])
                head, _, body = data.partition(b"\r\n\r\n")
                self.assertIn(b"content-type: application/problem+json", head.lower())
                self.assertIn(b"connection: close", head.lower())
                problem = json.loads(body)
                self.assertEqual((problem["status"], problem["code"]), (431, "header_too_large"))
                self.assertTrue(closed, "the connection stays open after the 431")
                self.assertEqual(self.snapshot(), before)
                self.assert_healthy()
        # An 8 KB header is still served.
        data, _ = self.server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 8000
                                  + b"\r\nConnection: close\r\n\r\n", timeout=6.0)
        self.assertEqual(status_of_raw(data), 200, data[:300])

    def test_client_vanishing_mid_request_leaves_server_healthy(self):
        before = self.snapshot()
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
            sock.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                         b"Content-Type: application/json\r\n\r\n{\"email\":")
            sock.close()
        # The server has seen every one of them go: none of its connections is
        # left open (a connection the client closed stays CLOSE_WAIT until the
        # server reads the end and closes its side).
        wait_until(lambda: connections(self.server.port), 15.0,
                   "the server to close the 20 abandoned connections",
                   until=lambda left: not left)
        self.assertTrue(self.server.alive(), self.server.stderr_tail())
        self.assertEqual(self.snapshot(), before)
        self.assert_healthy()


if __name__ == "__main__":
    unittest.main()
