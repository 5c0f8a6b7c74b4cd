"""Redis dies under load (SIGKILL while 32 clients POST): no 5xx, every answer
within 1 s, 202 or 201 with "fallback": true, every accepted email provisioned
exactly once (jobs Redis lost are found again), one folded CRITICAL row,
/readyz shows the open circuit; after a restart on the same port the queue
recovers by itself (202 again, circuit closed, an INFO "job queue recovered"),
and the fake Telegram gets at most three messages, the last the RESOLVED one."""

import json
import secrets
import threading
import time
import unittest
import uuid

from fake_telegram import FakeTelegram
from redis_harness import (ExactlyOnceAssertions, RedisServer, redis_env, unique_prefix,
                           wait_until, wait_until_drained)
from usher_harness import UsherServer, unique_email

USERS = "/api/v1/users"
CLIENTS = 32
BEFORE_KILL_S = 1.5
OUTAGE_LOAD_S = 4.5
MAX_LATENCY_S = 1.0
RECOVERY_TIMEOUT_S = 30.0
FALLBACK_KEYS = {"status", "user_id", "job_id", "email", "mode", "fallback", "activation_token"}
QUEUED_KEYS = {"status", "job_id", "email", "mode", "activation_token"}
OPEN = {"backend": "redis", "healthy": False, "circuit": "open"}
CLOSED = {"backend": "redis", "healthy": True, "circuit": "closed"}

TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
CHAT = "1001"
EMOJI_CRITICAL = "\U0001F6A8"
EMOJI_RESOLVED = "\u2705"


def post_timed(server, email, timeout=5.0):
    """(status or None, json, seconds, error)."""
    started = time.monotonic()
    try:
        resp = server.request("POST", USERS, body={"email": email, "full_name": "Outage Buyer"},
                              token="sales", timeout=timeout)
        return resp.status, resp.json, time.monotonic() - started, None
    except Exception as e:  # noqa: BLE001 - a transport error is a failure, reported
        return None, None, time.monotonic() - started, repr(e)


class OutageChecks:
    def check_answer(self, status, body, phase):
        """202 queued, or 201 created inline with fallback: true."""
        if status == 202:
            self.assertEqual(set(body), QUEUED_KEYS, body)
            self.assertEqual((body["status"], body["mode"]), ("queued", "async_queue"), body)
        else:
            self.assertEqual(status, 201, f"{phase}: {status} {body}")
            self.assertEqual(set(body), FALLBACK_KEYS, body)
            self.assertEqual(body["status"], "created", body)
            self.assertEqual(body["mode"], "async_queue", body)
            self.assertIs(body["fallback"], True, body)
            self.assertIsInstance(body["user_id"], int, body)
            self.assertIsInstance(body["job_id"], int, body)

    def recover(self, server, redis):
        """Restarts redis-server; POSTs until one gets 202 (within 30 s). Returns
        (seconds to the first 202, [(email, status, body)])."""
        redis.restart()
        restarted = time.monotonic()
        posted = []
        while True:
            email = unique_email("recover")
            status, body, elapsed, error = post_timed(server, email)
            self.assertIsNone(error, error)
            self.assertIn(status, (201, 202), f"after restart: {status} {body}")
            self.check_answer(status, body, "after restart")
            posted.append((email, status, body))
            if status == 202:
                return time.monotonic() - restarted, posted
            self.assertLess(time.monotonic() - restarted, RECOVERY_TIMEOUT_S,
                            f"no 202 within {RECOVERY_TIMEOUT_S} s of restarting redis-server; "
                            f"readyz {server.get('/readyz').json}")
            time.sleep(0.2)


class RedisKilledUnderLoadTest(OutageChecks, ExactlyOnceAssertions, unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer("redis-outage")
        self.server = None

    def tearDown(self):
        try:
            if self.server is not None:
                self.server.close()
        finally:
            self.redis.close()

    def test_sigkill_redis_while_32_clients_post(self):
        self.server = UsherServer("redis-outage", mode="async_queue",
                                  env=redis_env(self.redis, unique_prefix("outage"),
                                                ALERT_THROTTLE_MS=60000,
                                                REDIS_COMMAND_TIMEOUT_MS=300,
                                                REDIS_CONNECT_TIMEOUT_MS=300))
        server = self.server
        server.start()
        self.assertEqual(server.get("/readyz").json["queue"], CLOSED)

        records = []  # (phase, email, status, body, seconds, error)
        lock = threading.Lock()
        stop = threading.Event()
        killed = threading.Event()

        def client(i):
            while not stop.is_set():
                email = unique_email(f"out{i}")
                phase = "outage" if killed.is_set() else "before"
                status, body, elapsed, error = post_timed(server, email)
                with lock:
                    records.append((phase, email, status, body, elapsed, error))

        readyz = []  # answers of /readyz while redis-server is down

        def watch_readyz():
            while not stop.is_set():
                try:
                    r = server.get("/readyz", timeout=5)
                    readyz.append((r.status, r.json and r.json.get("queue")))
                except Exception as e:  # noqa: BLE001
                    readyz.append((None, repr(e)))
                time.sleep(0.1)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(BEFORE_KILL_S)
        self.redis.kill()
        killed.set()
        watcher = threading.Thread(target=watch_readyz, daemon=True)
        watcher.start()
        time.sleep(OUTAGE_LOAD_S)
        stop.set()
        for t in threads + [watcher]:
            t.join(15)
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread hung")

        # While Redis is still down: /readyz is 200 (the database answers) and
        # shows the open circuit.
        def open_now():
            r = server.get("/readyz", timeout=5)
            readyz.append((r.status, r.json and r.json.get("queue")))
            return r.status == 200 and r.json["queue"] == OPEN
        try:
            wait_until(open_now, 5.0, f"/readyz to show {OPEN} while Redis is down", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; last answers: {readyz[-3:]}") from None
        self.assertEqual([r for r in readyz if r[0] != 200], [], "/readyz not 200 while Redis down")
        self.assertFalse(any(isinstance(q, dict) and q.get("healthy") for _, q in readyz[5:]),
                         f"/readyz said healthy while Redis was down: {readyz}")

        errors = [r for r in records if r[5] is not None]
        self.assertEqual(errors[:5], [], f"{len(errors)} requests failed in transport")
        server_errors = [(r[0], r[2], r[3]) for r in records if r[2] >= 500]
        self.assertEqual(server_errors[:5], [], f"{len(server_errors)} answers were 5xx")
        slow = sorted((r[4] for r in records), reverse=True)
        statuses = {}
        for phase, _, status, _, _, _ in records:
            statuses[(phase, status)] = statuses.get((phase, status), 0) + 1
        print(f"\n{len(records)} requests: {statuses}; slowest {slow[:3]} s")
        self.assertLess(slow[0], MAX_LATENCY_S, f"{sum(s >= MAX_LATENCY_S for s in slow)} requests "
                        f"took {MAX_LATENCY_S} s or more (slowest {slow[:5]})")
        for phase, email, status, body, _, _ in records:
            self.check_answer(status, body, phase)
            self.assertEqual(body["email"], email)
        self.assertGreater(statuses.get(("before", 202), 0), 0, "nothing was queued before the kill")
        fallbacks = statuses.get(("outage", 201), 0)
        self.assertGreater(fallbacks, 10, "hardly any requests during the outage")

        # One CRITICAL row for the outage; every fallback folds into its
        # repeat_count (counted in memory and written shortly after: wait).
        def critical_rows():
            return server.query("SELECT id, repeat_count, message FROM system_health_logs "
                                "WHERE event_type = 'CRITICAL'")
        wait_until(lambda: sum(r[1] for r in critical_rows()) >= fallbacks, 10.0,
                   "every fallback to be counted in the CRITICAL row")
        critical = critical_rows()
        print(f"CRITICAL rows: {critical}; 201 fallbacks: {fallbacks}")
        self.assertEqual(len(critical), 1, critical)
        self.assertGreater(critical[0][1], 1, "the repeats did not fold into the CRITICAL row")
        api = server.get("/api/v1/admin/health/logs?type=CRITICAL", token="admin")
        self.assertEqual([(e["id"], e["count"]) for e in api.json["events"]],
                         [(critical[0][0], critical[0][1])], api)
        conditions = server.query("SELECT condition_key, health_log_id FROM alert_conditions "
                                  "WHERE condition_key LIKE '%queue_unavailable%'")
        self.assertEqual([c[1] for c in conditions], [critical[0][0]],
                         f"the CRITICAL row is not the queue_unavailable condition's: {conditions}")

        # Redis comes back on the same port: the queue recovers by itself.
        took, recovered = self.recover(server, self.redis)
        print(f"first 202 {took:.2f} s after restarting redis-server")
        wait_until(lambda: server.get("/readyz").json["queue"] == CLOSED, 5.0,
                   "/readyz to show the closed circuit after recovery")
        self.assertEqual(server.get("/api/v1/admin/system/mode", token="admin").json["queue"],
                         CLOSED)

        def recovered_event():
            events = server.get("/api/v1/admin/health/logs?type=INFO&limit=100",
                                token="admin").json["events"]
            return [e for e in events if e["message"].startswith("job queue recovered")]
        info = wait_until(recovered_event, 10.0, 'an INFO event "job queue recovered"')
        self.assertEqual(len(info), 1, info)
        self.assertEqual(len(server.query("SELECT id FROM system_health_logs "
                                          "WHERE event_type = 'CRITICAL'")), 1)

        # Every accepted email once, with its profile and token; every job
        # succeeded (those Redis lost in the SIGKILL included).
        accepted = [r[1] for r in records] + [email for email, _, _ in recovered]
        wait_until_drained(server, len(accepted), timeout=60.0)
        self.assertExactlyOnce(server, accepted)


class OutageAlertsTest(OutageChecks, unittest.TestCase):
    def setUp(self):
        self.fake = FakeTelegram(TOKEN)
        self.redis = RedisServer("redis-alerts")
        self.server = None

    def tearDown(self):
        try:
            if self.server is not None:
                self.server.close()
        finally:
            self.redis.close()
            self.fake.close()

    def test_200_fallbacks_send_at_most_three_messages_one_of_them_resolved(self):
        env = redis_env(self.redis, unique_prefix("alerts"), ALERT_THROTTLE_MS=60000,
                        REDIS_COMMAND_TIMEOUT_MS=300, REDIS_CONNECT_TIMEOUT_MS=300,
                        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_ADMIN_CHAT_ID=CHAT,
                        TELEGRAM_API_URL=self.fake.url, ALERT_POLL_MS=50, ALERT_BACKOFF_MS=200,
                        TELEGRAM_TIMEOUT_MS=2000, TELEGRAM_CONNECT_TIMEOUT_MS=1000)
        self.server = UsherServer("redis-alerts", mode="async_queue", env=env)
        server = self.server
        server.start()
        self.assertEqual(server.create_user().status, 202)
        time.sleep(0.3)
        self.assertEqual(self.fake.snapshot(), [], "a message before the outage")

        self.redis.kill()
        emails = [unique_email(f"al{i}") for i in range(200)]
        answers = []
        lock = threading.Lock()

        def client(i):
            for email in emails[i::8]:
                got = post_timed(server, email)
                with lock:
                    answers.append((email,) + got)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(answers), 200)
        for email, status, body, elapsed, error in answers:
            self.assertIsNone(error, error)
            self.assertEqual(status, 201, body)
            self.check_answer(status, body, "outage")
            self.assertLess(elapsed, MAX_LATENCY_S)
        self.fake.wait_for(
            lambda s: any(r.visible and r.visible.startswith(f"{EMOJI_CRITICAL} CRITICAL\n")
                          for r in s), timeout=10, what="the CRITICAL alert")
        time.sleep(0.5)
        during = self.fake.snapshot()
        self.assertLessEqual(len(during), 2, f"too many messages during the outage: {during}")

        self.recover(server, self.redis)
        self.fake.wait_for(
            lambda s: any(r.visible and r.visible.startswith(f"{EMOJI_RESOLVED} RESOLVED")
                          for r in s), timeout=15, what="the RESOLVED notice")
        time.sleep(1.5)  # nothing more arrives
        snap = self.fake.snapshot()
        print(f"\nBot API messages: {[r.visible.splitlines()[0] for r in snap if r.visible]}")
        self.assertLessEqual(len(snap), 3, snap)
        self.assertTrue(all(r.status == 200 for r in snap), snap)
        kinds = [r.visible.split("\n", 1)[0] for r in snap]
        self.assertEqual(kinds[0], f"{EMOJI_CRITICAL} CRITICAL", kinds)
        self.assertEqual(kinds[-1], f"{EMOJI_RESOLVED} RESOLVED", kinds)
        self.assertEqual(sum(k.startswith(EMOJI_RESOLVED) for k in kinds), 1, kinds)
        if len(kinds) == 3:
            self.assertEqual(kinds[1], f"{EMOJI_CRITICAL} CRITICAL (repeated)", kinds)
        self.assertEqual(len(server.query("SELECT id FROM system_health_logs "
                                          "WHERE event_type = 'CRITICAL'")), 1)


if __name__ == "__main__":
    unittest.main()
