"""SIGTERM while requests are still arriving (issue 15, SPEC section 1).

- A request whose headers are sent and whose body is in progress when SIGTERM
  arrives is still read and answered (201, the account exists), and usher
  exits 0 afterwards.
- A request arriving after SIGTERM on a kept-alive connection (one that had
  already been served) gets 503 shutting_down with `Connection: close`.
"""

import json
import os
import signal
import socket
import time
import unittest

from usher_harness import ServerPerTestCase, status_of_raw, unique_email, wait_until

GRACE = 15.0


def read_response(sock, timeout=10.0):
    """One HTTP response (headers and a Content-Length body) from `sock`."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def headers_of(response):
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return {k.strip().lower(): v.strip() for k, _, v in
            (line.partition(":") for line in head.split("\r\n")[1:])}


def body_of(response):
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


class SigtermDrainTest(ServerPerTestCase):
    def setUp(self):
        self.server = self.new_server("drain")

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=10)

    def fds(self):
        return len(os.listdir(f"/proc/{self.server.proc.pid}/fd"))

    def unread(self, sock):
        """Bytes sent on `sock` that usher has not read yet: the receive queue
        of usher's end of the connection (/proc/net/tcp), None if it has none."""
        local = f"0100007F:{self.server.port:04X}"
        remote = f"0100007F:{sock.getsockname()[1]:04X}"
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == local and fields[2] == remote:
                    return int(fields[4].split(":")[1], 16)
        return None

    def wait_read(self, sock):
        """Until usher has read everything sent on `sock`. Its descriptor in
        /proc shows the accept() only; RESTinio tells usher of the connection
        just before its first read, so a SIGTERM between the two would find
        usher not knowing the connection yet (and reset it at exit)."""
        wait_until(lambda: self.unread(sock), 10.0, "usher to read what was sent",
                   until=lambda n: n == 0)

    def connect_accepted(self):
        """A connection usher has accepted (not only the kernel): its descriptor
        shows in /proc. One opened before SIGTERM but not yet accepted may be
        dropped with the listener, as any connection after it."""
        before = self.fds()
        sock = self.connect()
        wait_until(self.fds, 10.0, "usher to accept the connection", until=lambda n: n > before)
        return sock

    def test_body_in_progress_at_sigterm_is_answered_and_kept_alive_gets_503(self):
        server = self.server
        # A kept-alive connection that has been served once.
        kept = self.connect()
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of_raw(read_response(kept)), 200)

        # A request whose headers are sent and half its body.
        email = unique_email("midbody")
        body = json.dumps({"email": email, "full_name": "Mid Body"}).encode()
        half = len(body) // 2
        arriving = self.connect_accepted()
        arriving.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nAuthorization: Bearer " +
                         server.tokens["sales"].encode() + b"\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body[:half])
        self.wait_read(arriving)
        mark = server.log_mark()
        server.signal(signal.SIGTERM)
        server.wait_for_log("received SIGTERM", since=mark)
        try:
            # The kept-alive connection's next request: 503 and the connection closes.
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = read_response(kept)
            self.assertEqual(status_of_raw(refused), 503, refused[:300])
            self.assertEqual(headers_of(refused).get("connection", "").lower(), "close", refused)
            self.assertEqual(body_of(refused)["code"], "shutting_down")
            kept.settimeout(5)
            self.assertEqual(kept.recv(1), b"", "the connection stayed open after the 503")
            self.assertTrue(server.alive(), "usher exited with a request still arriving")

            # The rest of the body: the request is served.
            arriving.sendall(body[half:])
            answer = read_response(arriving)
            self.assertEqual(status_of_raw(answer), 201, answer[:400])
            self.assertEqual(body_of(answer)["email"], email)
        finally:
            kept.close()
            arriving.close()
        started = time.monotonic()
        code = server.wait(GRACE)
        self.assertEqual(code, 0, server.stderr_tail())
        print(f"\nexited {time.monotonic() - started:.2f} s after the answer")
        self.assertEqual(server.query("SELECT COUNT(*) FROM accounts WHERE email_normalized = ?",
                                      (email,)), [(1,)])

    def test_new_connections_after_sigterm_are_refused_or_get_503(self):
        server = self.server
        # Held open (never used) so that the drain lasts while we try.
        email = unique_email("holder")
        body = json.dumps({"email": email, "full_name": "Holder"}).encode()
        holder = self.connect_accepted()
        holder.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nAuthorization: Bearer " +
                       server.tokens["sales"].encode() + b"\r\nContent-Length: " +
                       str(len(body)).encode() + b"\r\n\r\n")
        self.wait_read(holder)
        mark = server.log_mark()
        server.signal(signal.SIGTERM)
        server.wait_for_log("received SIGTERM", since=mark)
        try:
            try:
                late = self.connect()
                late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = read_response(late)
                late.close()
                # Empty: the kernel had queued the connection when usher
                # closed its listener, and reset it (as refused, a moment later).
                if answer:
                    self.assertEqual(status_of_raw(answer), 503, answer[:300])
                    self.assertEqual(headers_of(answer).get("connection", "").lower(), "close")
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
                pass  # not accepting any more: as good
            holder.sendall(body)
            self.assertEqual(status_of_raw(read_response(holder)), 201)
        finally:
            holder.close()
        self.assertEqual(server.wait(GRACE), 0, server.stderr_tail())
        wait_until(lambda: not server.alive(), 5.0, "usher to be gone")


if __name__ == "__main__":
    unittest.main()
