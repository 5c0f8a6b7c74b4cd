"""SIGTERM/SIGINT: stop accepting, finish in-flight work, exit 0 (bounded)."""

import signal
import socket
import threading
import time
import unittest

from usher_harness import ServerPerTestCase, http_request, unique_email, wait_until

GRACE = 15.0


class ShutdownTest(ServerPerTestCase):
    def setUp(self):
        self.server = self.new_server("shutdown")

    def assert_port_closed(self):
        with self.assertRaises(OSError):
            http_request(self.server.port, "GET", "/healthz", timeout=2)

    def test_sigterm_exits_0(self):
        self.assertEqual(self.server.healthz().status, 200)
        self.assertEqual(self.server.create_user(email=unique_email("before-term")).status, 201)
        started = time.monotonic()
        self.server.signal(signal.SIGTERM)
        code = self.server.wait(GRACE)
        self.assertIsNotNone(code, f"usher did not exit within {GRACE} s of SIGTERM")
        self.assertEqual(code, 0, self.server.stderr_tail())
        self.assertLess(time.monotonic() - started, GRACE)
        self.assert_port_closed()

    def test_sigint_exits_0(self):
        self.assertEqual(self.server.healthz().status, 200)
        self.server.signal(signal.SIGINT)
        code = self.server.wait(GRACE)
        self.assertEqual(code, 0, self.server.stderr_tail())

    def test_sigterm_with_idle_and_half_sent_connections(self):
        idle = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b" 200 ", idle.recv(4096))  # keep-alive connection left open
        half = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        half.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
        try:
            started = time.monotonic()
            self.server.signal(signal.SIGTERM)
            code = self.server.wait(GRACE)
            self.assertIsNotNone(code, f"usher did not exit within {GRACE} s with open connections")
            self.assertEqual(code, 0, self.server.stderr_tail())
            self.assertLess(time.monotonic() - started, GRACE)
        finally:
            idle.close()
            half.close()

    def test_requests_in_flight_during_sigterm_get_an_answer(self):
        """Requests racing SIGTERM are answered (any status) or refused, never left hanging;
        every 201 among them is durable."""
        results = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(i):
            n = 0
            while not stop.is_set():
                email = unique_email(f"term{i}-{n}")
                n += 1
                try:
                    resp = self.server.create_user(email=email)
                    outcome = (email, resp.status)
                except OSError:
                    outcome = (email, None)
                with lock:
                    results.append(outcome)
                if outcome[1] is None:
                    return

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()

        def created_per_client():
            with lock:
                return {e.split("-", 1)[0] for e, s in results if s == 201}
        # Every client is in its loop (each has had a 201): SIGTERM lands while
        # requests are in flight.
        wait_until(created_per_client, 15.0, "a 201 for each of the 4 clients",
                   until=lambda clients: len(clients) == 4)
        self.server.signal(signal.SIGTERM)
        code = self.server.wait(GRACE)
        stop.set()
        for t in threads:
            t.join(20)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(code, 0, self.server.stderr_tail())
        statuses = {s for _, s in results}
        self.assertIn(201, statuses)
        self.assertTrue(statuses <= {201, 503, None}, statuses)
        created = [e for e, s in results if s == 201]
        rows = {r[0] for r in self.server.query("SELECT email_normalized FROM accounts")}
        missing = [e for e in created if e not in rows]
        self.assertEqual(missing, [], "a 201 was answered but the account is not in the database")


if __name__ == "__main__":
    unittest.main()
