"""`usher serve` speaks systemd's notify protocol (issue 14, item 5): with
NOTIFY_SOCKET set, READY=1 arrives only once migrations ran and the port
listens (the URL is printed and /healthz answers at that moment), and
STOPPING=1 when SIGTERM begins the shutdown. The socket is the test's own
unix datagram socket, as systemd's would be."""

import os
import signal
import socket
import subprocess
import unittest

from usher_harness import (START_TIMEOUT, STOP_TIMEOUT, USHER_BIN, ServerPerTestCase,
                           UsherServer, _live_lock, _live_processes, http_request)


class NotifySocket:
    """A bound unix datagram socket: a file path, or an abstract name ("@...")."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"usher-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(directory, "notify.sock")
            self.sock.bind(self.address)

    def receive(self, timeout):
        """The next datagram as text; fails after `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode("utf-8")
        except socket.timeout:
            raise AssertionError(f"no notification within {timeout} s") from None

    def pending(self):
        """Datagrams already waiting, without blocking."""
        self.sock.setblocking(False)
        found = []
        try:
            while True:
                found.append(self.sock.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return found

    def close(self):
        self.sock.close()


class SystemdNotifyTest(ServerPerTestCase):
    def start_with_notify(self, abstract):
        server = self.own(UsherServer("notify", mode=None))
        notify = NotifySocket(server.dir, abstract=abstract)
        self.addCleanup(notify.close)
        env = dict(server.env, NOTIFY_SOCKET=notify.address)
        with open(server.stdout_path, "wb") as out, open(server.stderr_path, "ab") as err:
            server.proc = subprocess.Popen([USHER_BIN, "serve"], env=env, stdout=out, stderr=err,
                                           stdin=subprocess.DEVNULL, cwd=server.dir)
        with _live_lock:
            _live_processes.add(server.proc)
        return server, notify

    def check_ready_then_stopping(self, abstract):
        server, notify = self.start_with_notify(abstract)
        # The first datagram is READY=1, and when it arrives usher already
        # printed its URL and answers /healthz: it listened before saying so.
        self.assertEqual(notify.receive(START_TIMEOUT), "READY=1", server.stderr_tail())
        with open(server.stdout_path, "rb") as f:
            first = f.readline().decode("utf-8")
        self.assertTrue(first.startswith("usher listening on http://"), first)
        server.port = int(first.strip().rsplit(":", 1)[1])
        self.assertEqual(http_request(server.port, "GET", "/healthz", timeout=5).status, 200)
        # Migrations ran before READY: the schema is there.
        self.assertGreater(server.query("SELECT COUNT(*) FROM schema_migrations")[0][0], 0)
        self.assertEqual(notify.pending(), [])

        server.signal(signal.SIGTERM)
        self.assertEqual(notify.receive(STOP_TIMEOUT), "STOPPING=1")
        self.assertEqual(server.wait(STOP_TIMEOUT), 0)
        self.assertEqual(notify.pending(), [])

    def test_ready_after_listening_and_stopping_on_sigterm(self):
        self.check_ready_then_stopping(abstract=False)

    def test_abstract_notify_socket(self):
        self.check_ready_then_stopping(abstract=True)

    def test_a_bad_notify_socket_does_not_stop_usher(self):
        server = self.new_server("notify-bad", start=False, mode=None)
        server.env["NOTIFY_SOCKET"] = os.path.join(server.dir, "nobody-listens.sock")
        server.start()
        self.assertEqual(server.healthz().status, 200)
        server.wait_for_log(r"cannot notify systemd \(READY=1\)")
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
