"""Outbound events (SPEC §9) against a local receiver (http.server on a free
port) that verifies `Usher-Signature` with the documented scheme, fails the
first deliveries with 500, hangs once past WEBHOOK_TIMEOUT_MS, then accepts:
every provisioned user arrives as a user.provisioned event (duplicates only
with the same id), a dead job as job.dead, a receiver holding another secret
accepts nothing (so the signature is what it checks), and the signing secret
is in no log line. libcurl is loaded by the first POST, not at start-up, and
a libcurl that cannot be loaded fails the deliveries, not serve."""

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from redis_harness import WorkerProcess
from usher_harness import (
    ServerPerTestCase,
    mapped_libraries,
    unique_email,
    wait_for_job,
    wait_until,
)

SECRET = "whsec_" + secrets.token_urlsafe(24)
TIMEOUT_MS = 1000
FAST_JOBS = {"JOB_LEASE_MS": "1000", "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50"}


def verify(secret, header, body, tolerance=300):
    """The receiver's check, as docs/webhooks.md documents it."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError, AttributeError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Receiver:
    """Answers each POST by its script: the first `fail` with 500, then `hang`
    requests held past the sender's timeout, then 200 to those whose
    signature verifies with `secret` (401 otherwise)."""

    def __init__(self, secret, fail=0, hang=0):
        self.secret = secret
        self.lock = threading.Lock()
        self.requests = 0
        self.fail, self.hang = fail, hang
        self.hung = 0
        self.bad_signatures = 0
        self.accepted = []  # parsed bodies, in order, duplicates included
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    n = receiver.requests
                if n <= receiver.fail:
                    return self.answer(500)
                if n <= receiver.fail + receiver.hang:
                    with receiver.lock:
                        receiver.hung += 1
                    # held until the test ends: the sender's timeout ends it
                    receiver.release.wait(TIMEOUT_MS / 1000 * 5)
                    return self.answer(200)
                if self.headers.get("Content-Type") != "application/json" or not verify(
                        secret, self.headers.get("Usher-Signature", ""), body):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    return self.answer(401)
                with receiver.lock:
                    receiver.accepted.append(json.loads(body))
                self.answer(204)

            def answer(self, status):
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up on this request

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/usher-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self, type_=None):
        with self.lock:
            return [e for e in self.accepted if type_ is None or e["type"] == type_]


class OutboundEventsTest(ServerPerTestCase):
    def receiver(self, secret=SECRET, **script):
        receiver = Receiver(secret, **script)
        self.addCleanup(receiver.close)
        return receiver

    def env(self, receiver, **extra):
        return {"WEBHOOK_URLS": receiver.url, "WEBHOOK_SIGNING_SECRET": SECRET,
                "WEBHOOK_TIMEOUT_MS": str(TIMEOUT_MS), **extra}

    def test_every_provisioned_user_arrives_signed_through_failures_and_a_hang(self):
        receiver = self.receiver(fail=2, hang=1)
        server = self.new_server("outbound", mode="sync_direct", env=self.env(receiver))
        emails = [unique_email(f"out{i}") for i in range(4)]
        created = {}
        for email in emails:
            resp = server.create_user(email=email, full_name="Ana Lima", product="Tripwire Pro")
            self.assertEqual(resp.status, 201, resp)
            created[email] = resp.json
        wait_until(lambda: {e["data"]["email"] for e in receiver.events()} >= set(emails),
                   timeout=30, what="every user.provisioned event")
        self.assertEqual(receiver.hung, 1, "the receiver hung once")
        self.assertEqual(receiver.bad_signatures, 0)
        by_id = {}
        for event in receiver.events():
            self.assertEqual(set(event), {"id", "type", "created_at", "data"})
            self.assertEqual(event["type"], "user.provisioned")
            # a duplicate is the same event, with the same id
            self.assertEqual(by_id.setdefault(event["id"], event), event)
        self.assertEqual(len(by_id), len(emails), "one event per provisioned user")
        for email in emails:
            (event,) = [e for e in by_id.values() if e["data"]["email"] == email]
            job_id = created[email]["job_id"]
            self.assertEqual(event["id"], f"evt_user_provisioned_{job_id}")
            self.assertEqual(event["data"]["job_id"], job_id)
            self.assertEqual(event["data"]["user_id"], created[email]["user_id"])
            self.assertEqual(event["data"]["full_name"], "Ana Lima")
            self.assertEqual(event["data"]["product"], "Tripwire Pro")
            self.assertIn("sales-token", event["data"]["created_by"])
            self.assertNotIn("activation", json.dumps(event))
            self.assertNotIn(created[email]["activation_token"], json.dumps(event))
        # Every row settles as sent; the failed and hung attempts were retried.
        wait_until(lambda: server.query(
            "SELECT COUNT(*) FROM webhook_outbox WHERE status <> 'sent'")[0][0] == 0,
            timeout=30, what="every outbox row sent")
        retried = server.query("SELECT COUNT(*) FROM webhook_outbox WHERE attempts > 1")[0][0]
        self.assertGreaterEqual(retried, 1)
        self.assertEqual(server.stop(), 0)

    def test_a_dead_job_arrives_as_job_dead(self):
        receiver = self.receiver()
        server = self.new_server("outbound-dead", mode="async_queue", env=self.env(
            receiver, **FAST_JOBS, JOB_MAX_ATTEMPTS="1", USHER_FAULT_AFTER="account",
            USHER_FAULT_MODE="throw"))
        email = unique_email("outdead")
        job_id = server.create_user(email=email).json["job_id"]
        wait_for_job(server, job_id, "dead")
        events = wait_until(lambda: receiver.events("job.dead"), timeout=20,
                            what="the job.dead event")
        self.assertEqual(len({e["id"] for e in events}), 1)
        event = events[0]
        self.assertEqual(event["id"], f"evt_job_dead_{job_id}_1")
        self.assertEqual(event["data"]["job_id"], job_id)
        self.assertEqual(event["data"]["email"], email)
        self.assertEqual(event["data"]["attempts"], 1)
        self.assertIn("injected fault", event["data"]["last_error"])
        self.assertEqual(receiver.events("user.provisioned"), [])
        self.assertEqual(server.stop(), 0)

    def test_usher_worker_writes_and_sends_the_events_of_its_jobs(self):
        receiver = self.receiver()
        # serve without URLs and without its own worker: only `usher worker`
        # (with the URLs) provisions, writes and sends.
        server = self.new_server("outbound-worker", mode="async_queue",
                                 env={**FAST_JOBS, "START_WORKER": "false"})
        worker = WorkerProcess(server, extra_env=self.env(receiver), name="outbound-worker")
        self.addCleanup(worker.stop)
        email = unique_email("outworker")
        job_id = server.create_user(email=email).json["job_id"]
        wait_for_job(server, job_id, "succeeded")
        events = wait_until(lambda: receiver.events("user.provisioned"), timeout=20,
                            what="the event sent by usher worker")
        self.assertEqual(events[0]["id"], f"evt_user_provisioned_{job_id}")
        self.assertEqual(events[0]["data"]["email"], email)
        self.assertEqual(worker.stop(), 0, worker.stderr_tail())
        self.assertEqual(server.stop(), 0)

    def test_a_receiver_with_another_secret_verifies_nothing(self):
        receiver = self.receiver(secret="whsec_" + secrets.token_urlsafe(24))
        server = self.new_server("outbound-wrong", mode="sync_direct", env=self.env(receiver))
        self.assertEqual(server.create_user(email=unique_email("outwrong")).status, 201)
        wait_until(lambda: receiver.bad_signatures >= 2, timeout=20,
                   what="the receiver to refuse the signature (and the retry)")
        self.assertEqual(receiver.accepted, [])
        self.assertEqual(server.query(
            "SELECT COUNT(*) FROM webhook_outbox WHERE status = 'sent'")[0][0], 0)
        self.assertEqual(server.stop(), 0)

    def test_libcurl_is_loaded_by_the_first_post_not_at_start_up(self):
        # docs/benchmarks.md, "Memory": libcurl and its libraries are about a
        # megabyte of an idle serve's resident pages.
        receiver = self.receiver()
        server = self.new_server("outbound-lazy", mode="sync_direct", env=self.env(receiver))
        self.assertEqual(server.healthz().status, 200)
        self.assertEqual(mapped_libraries(server.proc.pid, "libcurl"), set(), "libcurl mapped at idle")
        self.assertEqual(server.create_user(email=unique_email("outlazy")).status, 201)
        wait_until(lambda: receiver.events("user.provisioned"), timeout=20,
                   what="the user.provisioned event")
        self.assertNotEqual(mapped_libraries(server.proc.pid, "libcurl"), set(),
                            "libcurl not mapped after a POST")
        self.assertEqual(server.stop(), 0)

    def test_a_libcurl_that_cannot_be_loaded_fails_the_posts_not_serve(self):
        # An empty libcurl.so.4 found first by the dynamic loader: dlopen
        # fails with "file too short". (A binary linked against libcurl does
        # not even start with it.)
        fake = tempfile.mkdtemp(prefix="usher-no-libcurl-")
        self.addCleanup(os.rmdir, fake)
        open(os.path.join(fake, "libcurl.so.4"), "wb").close()
        self.addCleanup(os.remove, os.path.join(fake, "libcurl.so.4"))
        receiver = self.receiver()
        server = self.new_server("outbound-nocurl", mode="sync_direct", env=self.env(
            receiver, LD_LIBRARY_PATH=fake))
        self.assertEqual(server.create_user(email=unique_email("outnocurl")).status, 201)
        server.wait_for_log(r"HTTP client unavailable, no Telegram alert or outbound webhook "
                            r"can be sent: cannot load libcurl\.so\.4: .*file too short")
        # Each attempt fails like an unreachable receiver and is retried.
        server.wait_for_log(r"webhooks: event \S+ to \S+ failed \(attempt 2\): cannot send: "
                            r"cannot load libcurl\.so\.4", timeout=20)
        self.assertEqual(receiver.requests, 0)
        self.assertEqual(server.query(
            "SELECT COUNT(*) FROM webhook_outbox WHERE status = 'sent'")[0][0], 0)
        self.assertEqual(server.healthz().status, 200)
        self.assertEqual(server.stop(), 0)

    def test_without_urls_no_event_is_written_and_urls_need_a_secret(self):
        server = self.new_server("outbound-off", mode="sync_direct")
        self.assertEqual(server.create_user(email=unique_email("outoff")).status, 201)
        self.assertEqual(server.query("SELECT COUNT(*) FROM webhook_outbox")[0][0], 0)
        refused = server.cli(["serve"], extra_env={"WEBHOOK_URLS": "http://127.0.0.1:9/x"})
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("WEBHOOK_SIGNING_SECRET", refused.stderr)
        bad = server.cli(["serve"], extra_env={"WEBHOOK_URLS": "ftp://127.0.0.1/x",
                                               "WEBHOOK_SIGNING_SECRET": SECRET})
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("WEBHOOK_URLS", bad.stderr)
        self.assertNotIn(SECRET, bad.stderr + bad.stdout)


if __name__ == "__main__":
    unittest.main()
