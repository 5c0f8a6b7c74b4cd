"""Redis dies under load (SIGKILL while 32 clients POST): no 5xx, every answer
within 1 s, 202 or 201 with "fallback": true, every accepted email provisioned
exactly once (jobs Redis lost are found again), one folded CRITICAL row,
/readyz shows the open circuit; after a restart on the same port the queue
recovers by itself (202 again, circuit closed, an INFO "job queue recovered"),
and the fake Telegram gets at most three messages, the last the RESOLVED one."""

import secrets
import threading
import time
import unittest
import uuid

from fake_telegram import FakeTelegram
from redis_harness import (ExactlyOnceAssertions, RedisServer, redis_env, unique_prefix,
                           wait_until_drained)
from usher_harness import (ServerPerTestCase, UsherServer, WaitTimeout, unique_email,
                           wait_for_job, wait_until)

USERS = "/api/v1/users"
CLIENTS = 32
# The load runs until this many answers were seen before the kill, and this
# many fallbacks (and /readyz answers) during the outage.
QUEUED_BEFORE_KILL = 64
FALLBACKS_DURING_OUTAGE = 96
READYZ_DURING_OUTAGE = 20
LOAD_TIMEOUT_S = 60.0
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

        def queued_again():
            email = unique_email("recover")
            status, body, elapsed, error = post_timed(server, email)
            self.assertIsNone(error, error)
            self.assertIn(status, (201, 202), f"after restart: {status} {body}")
            self.check_answer(status, body, "after restart")
            posted.append((email, status, body))
            return status == 202
        try:
            wait_until(queued_again, RECOVERY_TIMEOUT_S, "a 202 after restarting redis-server",
                       interval=0.2)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}; readyz {server.get('/readyz').json}") from None
        return time.monotonic() - restarted, posted


class RedisKilledUnderLoadTest(OutageChecks, ExactlyOnceAssertions, ServerPerTestCase):
    def setUp(self):
        self.redis = self.own(RedisServer("redis-outage"))  # closed after the server

    def test_sigkill_redis_while_32_clients_post(self):
        self.server = self.own(UsherServer("redis-outage", mode="async_queue",
                                           env=redis_env(self.redis, unique_prefix("outage"),
                                                         ALERT_THROTTLE_MS=60000,
                                                         REDIS_COMMAND_TIMEOUT_MS=300,
                                                         REDIS_CONNECT_TIMEOUT_MS=300)))
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
                stop.wait(0.1)  # a sample every 100 ms until the load stops

        def answers(phase, status):
            with lock:
                return sum(1 for r in records if r[0] == phase and r[2] == status)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        watcher = threading.Thread(target=watch_readyz, daemon=True)
        try:
            wait_until(lambda: answers("before", 202), LOAD_TIMEOUT_S,
                       f"{QUEUED_BEFORE_KILL} jobs queued before the kill",
                       until=lambda n: n >= QUEUED_BEFORE_KILL)
            self.redis.kill()
            killed.set()
            watcher.start()
            wait_until(lambda: (answers("outage", 201), len(readyz)), LOAD_TIMEOUT_S,
                       f"{FALLBACKS_DURING_OUTAGE} fallbacks and {READYZ_DURING_OUTAGE} /readyz "
                       "answers while Redis is down",
                       until=lambda seen: seen[0] >= FALLBACKS_DURING_OUTAGE
                       and seen[1] >= READYZ_DURING_OUTAGE)
        finally:
            stop.set()
        if watcher.ident is not None:
            watcher.join(15)
        for t in threads:
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

        # One CRITICAL row for the outage: the circuit opening (once) plus
        # every fallback folded into its repeat_count (counted in memory and
        # written shortly after: wait). Requests sent just before the kill
        # ("before") can fall back too: wait for all of them, or the API read
        # below may see a later count.
        all_fallbacks = sum(1 for r in records if r[2] == 201)
        def critical_rows():
            return server.query("SELECT id, repeat_count, message FROM system_health_logs "
                                "WHERE event_type = 'CRITICAL'")
        wait_until(lambda: sum(r[1] for r in critical_rows()), 10.0,
                   f"the circuit opening and {all_fallbacks} fallbacks counted in the CRITICAL row",
                   until=lambda n: n == all_fallbacks + 1)
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


class OutageAlertsTest(OutageChecks, ServerPerTestCase):
    def setUp(self):
        # Closed after the server (cleanups run last-in, first-out).
        self.fake = self.own(FakeTelegram(TOKEN))
        self.redis = self.own(RedisServer("redis-alerts"))

    def test_200_fallbacks_send_at_most_three_messages_one_of_them_resolved(self):
        env = redis_env(self.redis, unique_prefix("alerts"), ALERT_THROTTLE_MS=60000,
                        REDIS_COMMAND_TIMEOUT_MS=300, REDIS_CONNECT_TIMEOUT_MS=300,
                        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_ADMIN_CHAT_ID=CHAT,
                        TELEGRAM_API_URL=self.fake.url, ALERT_POLL_MS=50, ALERT_BACKOFF_MS=200,
                        TELEGRAM_TIMEOUT_MS=2000, TELEGRAM_CONNECT_TIMEOUT_MS=1000)
        self.server = self.own(UsherServer("redis-alerts", mode="async_queue", env=env))
        server = self.server
        server.start()
        # No message before the outage: the job went through, and nothing was
        # written to the outbox (the only way to the Bot API) meanwhile.
        queued = server.create_user()
        self.assertEqual(queued.status, 202, queued)
        wait_for_job(server, queued.json["job_id"], "succeeded")
        self.assertEqual(server.query("SELECT COUNT(*) FROM alert_outbox"), [(0,)])
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
        # Every fallback has been recorded (they fold into the CRITICAL row, written
        # shortly after being counted), and whatever they queued has been sent.
        wait_until(lambda: server.query("SELECT COALESCE(SUM(repeat_count), 0) FROM "
                                        "system_health_logs WHERE event_type = 'CRITICAL'")[0][0],
                   10.0, "every fallback to be counted in the CRITICAL row",
                   until=lambda n: n >= len(answers))
        wait_until(lambda: server.query("SELECT COUNT(*) FROM alert_outbox "
                                        "WHERE status = 'pending'")[0][0], 10.0,
                   "the outbox to hold nothing pending", until=lambda n: n == 0)
        during = self.fake.snapshot()
        self.assertLessEqual(len(during), 2, f"too many messages during the outage: {during}")

        self.recover(server, self.redis)
        self.fake.wait_for(
            lambda s: any(r.visible and r.visible.startswith(f"{EMOJI_RESOLVED} RESOLVED")
                          for r in s), timeout=15, what="the RESOLVED notice")
        # Nothing more arrives: nothing is pending or folded for a summary, and a
        # marker (a mode switch, alerted at once) sent now finds nothing before it.
        wait_until(server.alerts_settled, 10.0, "the outbox to settle")
        marker = f"marker {uuid.uuid4().hex[:8]}"
        switched = server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                                  body={"mode": "sync_direct", "reason": marker})
        self.assertEqual(switched.status, 200, switched)
        self.fake.wait_for(lambda s: any(r.status == 200 and marker in (r.visible or "") for r in s),
                           timeout=10, what="the marker switch")
        snap = [r for r in self.fake.snapshot() if marker not in (r.visible or "")]
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
