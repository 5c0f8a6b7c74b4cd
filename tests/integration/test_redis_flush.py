"""Jobs Redis lost are found again from their database rows (SPEC §2.5): 1,000
jobs accepted by a serve without worker, Redis flushed (FLUSHALL), then an
`usher worker` with a short sweep finishes every one of them exactly once."""

import time
import unittest

from redis_harness import (ExactlyOnceAssertions, RedisServer, WorkerProcess, job_counts,
                           post_many, redis_env, unique_prefix, wait_until_drained)
from usher_harness import ServerPerTestCase, unique_email, wait_until

N = 1000
DRAIN_TIMEOUT_S = 60.0


class FlushAllTest(ExactlyOnceAssertions, ServerPerTestCase):
    def test_flushall_loses_nothing(self):
        redis = self.own(RedisServer("redis-flush"))
        prefix = unique_prefix("flush")
        server = self.new_server("redis-flush", mode="async_queue",
                                 env=redis_env(redis, prefix, START_WORKER="false"))
        emails = [unique_email("fl") for _ in range(N)]
        started = time.monotonic()
        results = post_many(lambda i: server, emails, threads=8)
        print(f"\n{N} POSTs in {time.monotonic() - started:.1f} s")
        not_queued = [(e, r) for e, r in results if r.status != 202]
        self.assertEqual(not_queued[:3], [], f"{len(not_queued)} answers were not 202")
        self.assertEqual(len(results), N)
        self.assertEqual(server.counts()["accounts"], 0, "serve ran a worker")
        self.assertEqual(job_counts(server), {"queued": N})

        # The jobs wait in Redis, under the prefix.
        keys = redis.keys()
        self.assertGreater(len(keys), 0, "nothing in Redis for 1,000 queued jobs")
        self.assertEqual([k for k in keys if not k.startswith(prefix)], [],
                         f"keys outside REDIS_PREFIX {prefix!r}")
        # Emptied at once (serve's sweep may write again right after: one
        # transaction, so nothing comes between the flush and the count).
        self.assertEqual(redis.transaction(["FLUSHALL"], ["DBSIZE"]), ["OK", 0])

        worker = WorkerProcess(server, {"REDIS_SWEEP_INTERVAL_MS": "500",
                                        "REDIS_SWEEP_GRACE_MS": "500"}, name="flush-worker")
        self.addCleanup(worker.stop)  # before the server and Redis close
        started = time.monotonic()
        try:
            wait_until_drained(server, N, timeout=DRAIN_TIMEOUT_S)
        except AssertionError as e:
            raise AssertionError(f"{e}; worker alive: {worker.alive()}; worker stderr: "
                                 f"{worker.stderr_tail()}") from None
        print(f"all {N} jobs succeeded {time.monotonic() - started:.1f} s after the worker started")
        self.assertExactlyOnce(server, emails)
        self.assertEqual(worker.stop(), 0, "SIGTERM should stop the worker with 0")
        self.assertEqual([k for k in redis.keys() if not k.startswith(prefix)], [])

    def test_flushall_while_serve_and_its_worker_run(self):
        """FLUSHALL between two batches while serve's own worker consumes: the
        stream and its consumer group vanish under a running process, which
        must carry on (recreate them) and lose nothing."""
        redis = self.own(RedisServer("redis-flush-live"))
        prefix = unique_prefix("flushlive")
        server = self.new_server("redis-flush-live", mode="async_queue",
                                 env=redis_env(redis, prefix))
        first = [unique_email("fla") for _ in range(300)]
        second = [unique_email("flb") for _ in range(300)]
        results = post_many(lambda i: server, first, threads=8)
        self.assertEqual(redis.command("FLUSHALL"), "OK")
        results += post_many(lambda i: server, second, threads=8)
        statuses = {}
        for _, resp in results:
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
        print(f"\nanswers around the FLUSHALL: {statuses}")
        bad = [(e, r) for e, r in results if r.status not in (201, 202)
               or (r.status == 201 and r.json.get("fallback") is not True)]
        self.assertEqual(bad[:3], [], f"{len(bad)} answers neither 202 nor a 201 fallback")
        wait_until_drained(server, len(first) + len(second), timeout=DRAIN_TIMEOUT_S)
        self.assertExactlyOnce(server, first + second)
        # And the queue takes jobs again afterwards (a loaded machine may
        # have opened the circuit meanwhile: it closes within seconds).
        later = wait_until(lambda: server.create_user(email=unique_email("flc")), 30.0,
                           "a 202 again after the FLUSHALL", interval=0.5,
                           until=lambda later: later.status == 202)
        self.assertEqual(later.status, 202, later)
        self.assertEqual(server.get("/readyz").json["queue"],
                         {"backend": "redis", "healthy": True, "circuit": "closed"})
        self.assertEqual([k for k in redis.keys() if not k.startswith(prefix)], [])


if __name__ == "__main__":
    unittest.main()
