"""Several processes on one database and one Redis: two `serve` and one
`usher worker`, all with workers, process every job exactly once (attempts
1); and a kill-switch flip on one instance is followed by the other within
2 s through Redis pub/sub, also after redis-server restarted (SPEC §5)."""

import time
import unittest

from redis_harness import (ExactlyOnceAssertions, RedisServer, WorkerProcess, job_counts,
                           post_many, redis_env, sibling, unique_prefix, wait_until_drained)
from usher_harness import ServerPerTestCase, UsherServer, WaitTimeout, unique_email, wait_until

MODE = "/api/v1/admin/system/mode"
FOLLOW_LIMIT_S = 2.0
POLL_S = 0.02
RECONNECT_S = 10.0
CLOSED = {"backend": "redis", "healthy": True, "circuit": "closed"}


def other(mode):
    return "sync_direct" if mode == "async_queue" else "async_queue"


class TwoServersAndAWorkerTest(ExactlyOnceAssertions, ServerPerTestCase):
    def test_320_users_across_two_servers_each_processed_once(self):
        # Cleanups run last-in, first-out: the worker stops, then B, A and Redis.
        redis = self.own(RedisServer("redis-multi"))
        prefix = unique_prefix("multi")
        a = self.own(UsherServer("redis-multi-a", mode="async_queue", env=redis_env(redis, prefix)))
        b = self.own(sibling(a, "redis-multi-b"))
        a.start()
        b.start()
        worker = WorkerProcess(a, name="multi-worker")
        self.addCleanup(worker.stop)
        for s in (a, b):
            self.assertEqual(s.get("/readyz").json["queue"], CLOSED)

        emails = [unique_email("multi") for _ in range(320)]
        results = post_many(lambda i: (a, b)[i % 2], emails, threads=16)
        self.assertEqual(len(results), len(emails))
        # A loaded CI machine may stall a Redis call past its timeout: that
        # request is provisioned inline (a 201 fallback), which is still once.
        not_queued = [(e, r) for e, r in results if r.status != 202 and not (
            r.status == 201 and r.json.get("fallback") is True)]
        self.assertEqual(not_queued[:3], [], f"{len(not_queued)} answers neither 202 "
                         "nor a 201 fallback")
        fallbacks = sum(1 for _, r in results if r.status == 201)
        self.assertLess(fallbacks, len(emails) // 2, "the queue hardly took any job")

        try:
            wait_until_drained(a, len(emails), timeout=60.0)
        except AssertionError as e:
            raise AssertionError(f"{e}; worker stderr: {worker.stderr_tail()}") from None
        # No late duplicate delivery can come: Redis holds no entry, pending
        # delivery, known id or delayed retry any more (each is deleted when
        # its job is finished), so there is nothing left to deliver again.
        def left_in_redis():
            return {"entries": redis.command("XLEN", f"{prefix}jobs"),
                    "pending": redis.command("XPENDING", f"{prefix}jobs", "workers")[0],
                    "known": redis.command("SCARD", f"{prefix}known"),
                    "delayed": redis.command("ZCARD", f"{prefix}delayed")}
        wait_until(left_in_redis, 30.0, "Redis to hold no unfinished work",
                   until=lambda left: not any(left.values()))
        self.assertEqual(job_counts(a), {"succeeded": len(emails)})
        self.assertExactlyOnce(a, emails, attempts_one=True)
        self.assertTrue(worker.alive(), worker.stderr_tail())
        self.assertEqual(worker.stop(), 0)


class CrossInstanceKillSwitchTest(ServerPerTestCase):
    """B's behaviour is observed through POST /api/v1/users (202 in async_queue,
    201 with mode sync_direct in sync_direct): that reads B's cached mode. GET
    /api/v1/admin/system/mode is not used on B while measuring, because it
    reads the database (and refreshes B's cache), so it would follow even
    without any cross-instance signal."""

    def setUp(self):
        self.redis = self.own(RedisServer("redis-switch"))  # closed after A and B

    def mode_seen_by(self, server):
        """The mode `server` applies to a new request, from its answer: 202, or
        201 with "fallback": true (the queue could not take it), is async_queue;
        201 without fallback is sync_direct."""
        resp = server.create_user(email=unique_email("flip"))
        if resp.status == 202:
            return "async_queue"
        self.assertEqual(resp.status, 201, resp)
        if resp.json.get("fallback") is True:
            self.assertEqual(resp.json["mode"], "async_queue", resp)
            return "async_queue"
        self.assertEqual(resp.json["mode"], "sync_direct", resp)
        return "sync_direct"

    def flip(self, target):
        """PUT the mode on A; returns the new version."""
        resp = self.a.request("PUT", MODE, body={"mode": target, "reason": "cross-instance test"},
                              token="admin")
        self.assertEqual(resp.status, 200, resp)
        self.assertIs(resp.json["changed"], True, resp)
        return resp.json["version"]

    def follow_delay(self, target, limit):
        """Seconds until B applies `target` (polling every 20 ms), or None after `limit`."""
        started = time.monotonic()
        try:
            wait_until(lambda: self.mode_seen_by(self.b), limit, f"B to apply {target}",
                       interval=POLL_S, until=lambda seen: seen == target)
        except WaitTimeout:
            return None
        return time.monotonic() - started

    def test_b_follows_a_flip_within_2_s_also_after_a_redis_restart(self):
        env = redis_env(self.redis, unique_prefix("switch"), CONFIG_CACHE_TTL_MS=600000)
        self.a = self.own(UsherServer("redis-switch-a", mode="async_queue", env=env))
        self.b = self.own(sibling(self.a, "redis-switch-b"))
        self.a.start()
        self.b.start()
        delays = []
        for target in ("sync_direct", "async_queue"):
            self.assertNotEqual(self.mode_seen_by(self.b), target)
            self.flip(target)
            self.assertEqual(self.mode_seen_by(self.a), target, "A itself did not switch at once")
            delay = self.follow_delay(target, 5.0)
            print(f"\nB followed A's flip to {target} after {delay} s")
            self.assertIsNotNone(delay, f"B did not follow A's flip to {target} within 5 s")
            self.assertLess(delay, FOLLOW_LIMIT_S, f"B followed only after {delay:.2f} s")
            delays.append(delay)

        # The subscription drops with redis-server and must come back.
        mark = self.b.log_mark()
        self.redis.kill()
        self.b.wait_for_log(r"subscription to \S+ lost", since=mark)
        self.redis.restart()
        restarted = time.monotonic()
        # Each try flips A and waits 2 s for B; the first flip B follows within
        # 2 s must come within the reconnection allowance.
        tries = []
        while True:
            seen = self.mode_seen_by(self.b)
            target = other(seen)
            if self.a.get(MODE, token="admin").json["mode"] == target:
                # B is stale (it missed a flip): bring A to what B applies
                # first, so that following the next flip means something.
                self.flip(seen)
            at = time.monotonic() - restarted
            self.flip(target)
            delay = self.follow_delay(target, FOLLOW_LIMIT_S)
            tries.append((round(at, 2), target, delay))
            if delay is not None:
                break
            self.assertLess(time.monotonic() - restarted, RECONNECT_S + FOLLOW_LIMIT_S,
                            f"B followed no flip within {FOLLOW_LIMIT_S} s in the "
                            f"{RECONNECT_S} s after redis-server restarted: {tries}")
        print(f"after the Redis restart: tries (s after restart, target, delay) {tries}")
        # And it keeps working.
        target = other(target)
        self.flip(target)
        delay = self.follow_delay(target, 5.0)
        print(f"next flip to {target} followed after {delay} s")
        self.assertIsNotNone(delay)
        self.assertLess(delay, FOLLOW_LIMIT_S)
        # The database agrees (GET reads it).
        self.assertEqual(self.b.get(MODE, token="admin").json["mode"], target)


if __name__ == "__main__":
    unittest.main()
