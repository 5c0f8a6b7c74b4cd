"""The SQLite write-ahead log stays bounded under sustained intake while the
worker drains (issue 15): past SQLITE_WAL_LIMIT_MIB the writer truncates it.

Before the fix only PASSIVE checkpoints ran; under constant writes they never
restart the log and the -wal file grew without bound (8 GB in two minutes at
5k requests/s). The longer run is bench/wal_soak.sh."""

import http.client
import json
import os
import threading
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

from usher_harness import HTTP_TIMEOUT, UsherServer, http_request, unique_email

MIB = 1024 * 1024
LIMIT_MIB = 1
# The writer checks the size after each batch, so the file may pass the limit
# by what one batch writes (up to 512 intakes or one worker batch of 256
# provisioned jobs, well under 4 MiB here); twice that is the stated bound.
BOUND = 8 * MIB
LOAD_SECONDS = 12
LOAD_DEADLINE = 90
MIN_INTAKES = 1000
LOAD_THREADS = 6


class WalBoundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = UsherServer("wal", mode="async_queue", env={
            "SQLITE_WAL_LIMIT_MIB": str(LIMIT_MIB),
            "QUEUE_POLL_MS": "50",
            # Fast commits so that a short test writes as much as possible.
            "SQLITE_SYNCHRONOUS": "normal",
        })
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def wal_size(self):
        try:
            return os.path.getsize(self.server.db_path + "-wal")
        except FileNotFoundError:
            return 0

    def intake(self, stop, accepted, errors):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=HTTP_TIMEOUT)
        headers = {**self.server.auth("sales"), "Content-Type": "application/json"}
        try:
            while not stop.is_set():
                body = json.dumps({"email": unique_email("wal"), "full_name": "Wal Load",
                                   "phone": "+49 30 1234"})
                try:
                    conn.request("POST", "/api/v1/users", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException) as e:
                    errors.append(repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                      timeout=HTTP_TIMEOUT)
                    continue
                if resp.status == 202:
                    accepted.append(1)
                else:
                    errors.append(resp.status)
        finally:
            conn.close()

    def test_wal_stays_under_the_bound_during_and_after_sustained_intake(self):
        stop = threading.Event()
        accepted, errors, samples = [], [], []
        threads = [threading.Thread(target=self.intake, args=(stop, accepted, errors), daemon=True)
                   for _ in range(LOAD_THREADS)]
        for t in threads:
            t.start()
        # At least LOAD_SECONDS, and on a slow machine (a sanitizer build, a
        # shared CI host) until enough intakes went through to grow the WAL
        # past its limit many times over, within LOAD_DEADLINE.
        started = time.monotonic()
        while time.monotonic() < started + LOAD_DEADLINE and (
                time.monotonic() < started + LOAD_SECONDS or len(accepted) <= MIN_INTAKES):
            samples.append(self.wal_size())
            time.sleep(0.02)  # the sampling period, not a wait for an outcome
        stop.set()
        for t in threads:
            t.join(HTTP_TIMEOUT + 5)
        self.assertFalse(any(t.is_alive() for t in threads), "load threads did not stop")
        self.assertEqual(errors, [], "every intake answers 202")
        self.assertGreater(len(accepted), MIN_INTAKES, "enough load to grow the WAL past its limit")
        peak = max(samples)
        self.assertLessEqual(peak, BOUND, f"WAL peaked at {peak / MIB:.1f} MiB "
                             f"(limit {LIMIT_MIB} MiB, bound {BOUND / MIB:.0f} MiB, "
                             f"{len(accepted)} intakes)")

        # The worker drains everything; the WAL then ends at or under the limit.
        drain_deadline = time.monotonic() + 60
        while time.monotonic() < drain_deadline:
            left = self.server.query(
                "SELECT COUNT(*) FROM jobs WHERE status NOT IN ('succeeded', 'dead')")[0][0]
            if left == 0:
                break
            samples.append(self.wal_size())
            time.sleep(0.05)
        self.assertEqual(left, 0, "the worker drained the queue")
        self.assertLessEqual(max(samples), BOUND)
        settle_deadline = time.monotonic() + 10
        while self.wal_size() > LIMIT_MIB * MIB and time.monotonic() < settle_deadline:
            time.sleep(0.05)
        self.assertLessEqual(self.wal_size(), LIMIT_MIB * MIB, "the WAL shrinks back")

        # The same, as /metrics shows it (issue 15: the WAL size and the
        # checkpoint pauses visible in metrics).
        resp = http_request(self.server.port, "GET", "/metrics")
        self.assertEqual(resp.status, 200, resp)
        samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
                   for family in text_string_to_metric_families(resp.body.decode("utf-8"))
                   for x in family.samples}
        self.assertLessEqual(samples[("usher_sqlite_wal_bytes", ())], BOUND)
        def checkpoints(kind):
            return samples[("usher_sqlite_checkpoints_total", (("kind", kind),))]
        self.assertGreater(checkpoints("passive") + checkpoints("truncate"), 0,
                           "the writer checkpointed the WAL as it grew")
        # A pause is measured for each truncating checkpoint, none for passive ones.
        self.assertEqual(samples[("usher_sqlite_checkpoint_pause_seconds_count", ())],
                         checkpoints("truncate") + checkpoints("truncate_incomplete"))
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")[0][0],
                         0)


if __name__ == "__main__":
    unittest.main()
