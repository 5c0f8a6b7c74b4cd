"""Real network faults between usher and Redis, under load (issue 15, item 4).

PartitionTest: redis-server and the fake Telegram Bot API run in a network
namespace behind a veth pair (the alerts of the outage wait in the durable
outbox until the link is back); while
16 clients POST, the link is cut (`ip link set ... down` on the namespace side:
packets vanish, calls hang until their timeout) for USHER_PARTITION_CUT_S
seconds (default 12: the issue's 30 s proves nothing more about the breaker,
whose period is 1 s, and would triple this test's share of the suite's time;
set USHER_PARTITION_CUT_S=30 to run the issue's figure) and restored.

ProxyFaultTest: the same load through a fault-injecting TCP proxy: 200 ms more
per round trip, a share of the bytes dropped, every connection stalled.

Each asserts: every request answered (201/202, never 5xx) within the breaker's
bound, every 2xx user exists exactly once and every job succeeded, the breaker
opens (seen on /readyz) and closes, and the fake Bot API receives exactly one
CRITICAL and one RESOLVED message per outage.

Needs root and iproute2 (CI has both): without them the test FAILS, never skips.
"""

import os
import secrets
import time
import unittest
import uuid

from fake_telegram import FakeTelegram
from net_faults import FaultProxy, Load, NetnsRedis
from redis_harness import (FAST_REDIS, ExactlyOnceAssertions, RedisServer, unique_prefix,
                           wait_until_drained)
from usher_harness import ServerPerTestCase, UsherServer, wait_until

CLIENTS = 16
CUT_S = float(os.environ.get("USHER_PARTITION_CUT_S", "12"))
COMMAND_TIMEOUT_MS = 300
# Through the proxy: 200 ms more per round trip must fit in the timeout.
PROXY_COMMAND_TIMEOUT_MS = 600
# The breaker's bound on one answer. One dispatcher thread sends the waiting
# requests to Redis in batches, so a request may wait for the batch already
# in flight and then for its own: two calls, each at most the connect plus
# the command timeout (a failed call closes the connection; the next batch
# reconnects first), then it is provisioned inline. Once the circuit is open
# it does not touch Redis at all. 0.7 s more leaves room for the inline
# provisioning on a loaded CI machine (the ASan CI run of 2026-12-02 saw ten
# answers at 1.30 s through the lossy proxy: two 600 ms command timeouts
# plus the inline provisioning, over a bound that counted only one call).
SLACK_S = 0.7
QUEUED_BEFORE = 32
QUEUED_AFTER = 32
TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
CHAT = "1001"
CRITICAL_LINE = "\U0001F6A8 CRITICAL"
RESOLVED_LINE = "\u2705 RESOLVED"


def partition_load(server):
    """CLIENTS creating users (10 s client timeout) and /readyz's circuit
    sampled every 100 ms."""
    return Load(server, CLIENTS, 10, "p", "Partition Buyer", ready_timeout=5, watch_every=0.1)


class FaultAssertions(ExactlyOnceAssertions):
    timeout_ms = COMMAND_TIMEOUT_MS

    def start_server(self, redis_url, name, telegram_behind=None, **extra):
        """`telegram_behind`: a net_faults link whose far side the fake Bot API
        listens on (cut with it); loopback otherwise."""
        link = telegram_behind
        self.fake = self.own(FakeTelegram(TOKEN, host=link.ns_ip, within=link.within)
                             if link else FakeTelegram(TOKEN))
        env = {"REDIS_URL": redis_url, "REDIS_PREFIX": unique_prefix(name), **FAST_REDIS,
               "REDIS_COMMAND_TIMEOUT_MS": self.timeout_ms,
               "REDIS_CONNECT_TIMEOUT_MS": self.timeout_ms,
               "ALERT_THROTTLE_MS": 60000, "TELEGRAM_BOT_TOKEN": TOKEN,
               "TELEGRAM_ADMIN_CHAT_ID": CHAT, "TELEGRAM_API_URL": self.fake.url,
               "ALERT_POLL_MS": 50, "ALERT_BACKOFF_MS": 200, "TELEGRAM_TIMEOUT_MS": 2000,
               "TELEGRAM_CONNECT_TIMEOUT_MS": 1000, **extra}
        server = self.own(UsherServer(name, mode="async_queue", env=env))
        server.start()
        self.assertEqual(server.get("/readyz").json["queue"]["circuit"], "closed")
        return server

    def run_until(self, load, phase, condition, timeout, what):
        load.phase = phase
        try:
            return wait_until(condition, timeout, what, interval=0.1)
        except AssertionError:
            load.stop()
            raise

    def check_load(self, load):
        """No transport error, no status but 201/202, each within the bound.
        Returns the accepted emails."""
        records = load.answers()
        statuses = {}
        for r in records:
            statuses[(r.phase, r.status)] = statuses.get((r.phase, r.status), 0) + 1
        slowest = sorted((r.seconds for r in records), reverse=True)[:3]
        print(f"\n{len(records)} requests: {statuses}; slowest {slowest} s")
        errors = [r for r in records if r.error is not None]
        self.assertEqual(errors[:3], [], f"{len(errors)} requests failed in transport")
        wrong = [(r.phase, r.status, r.json) for r in records if r.status not in (201, 202)]
        self.assertEqual(wrong[:3], [], f"{len(wrong)} answers were neither 201 nor 202")
        for r in records:
            self.assertEqual(r.json["email"], r.email, r.json)
            if r.status == 201:
                self.assertIs(r.json.get("fallback"), True, r.json)
        bound = 2 * (2 * self.timeout_ms) / 1000 + SLACK_S
        slow = [r.seconds for r in records if r.seconds >= bound]
        self.assertEqual(slow, [], f"{len(slow)} answers took {bound} s or more")
        return [r.email for r in records]

    def check_exactly_once(self, server, accepted):
        wait_until_drained(server, len(accepted), timeout=60.0)
        self.assertExactlyOnce(server, accepted)

    def check_alerts(self, server, outages, exact=True):
        """`outages` CRITICAL rows, INFO recoveries and CRITICAL and RESOLVED
        messages: exactly one of each per outage (at most one folded repeat
        summary each besides). Not `exact` (a flapping link, outages close
        together): within the throttling window later outages may fold into
        the first one's row and messages, so at least one CRITICAL and one
        RESOLVED, at most one each per outage, at most 3 messages per outage,
        and the last one RESOLVED."""
        self.fake.wait_for(lambda s: sum(1 for r in s if r.visible and
                                         r.visible.startswith(RESOLVED_LINE)) >= outages,
                           timeout=15, what=f"{outages} RESOLVED notices")
        try:
            wait_until(server.alerts_settled, 15.0, "the alert outbox to settle")
        except AssertionError as e:
            raise AssertionError(
                f"{e}; conditions {server.query('SELECT * FROM alert_conditions')}; outbox "
                f"{server.query('SELECT id, status FROM alert_outbox')}; messages "
                f"{[r.visible for r in self.fake.snapshot()]}") from None
        marker = f"marker {uuid.uuid4().hex[:8]}"
        switched = server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                                  body={"mode": "sync_direct", "reason": marker})
        self.assertEqual(switched.status, 200, switched)
        self.fake.wait_for(lambda s: any(marker in (r.visible or "") and r.status == 200
                                         for r in s), timeout=10, what="the marker message")
        firsts = [r.visible.split("\n", 1)[0] for r in self.fake.snapshot()
                  if r.visible and marker not in r.visible]
        print(f"Bot API messages: {firsts}")
        self.assertLessEqual(len(firsts), 3 * outages, firsts)
        self.assertTrue(all(r.status == 200 for r in self.fake.snapshot()), self.fake.snapshot())
        critical = server.query("SELECT COUNT(*) FROM system_health_logs "
                                "WHERE event_type = 'CRITICAL'")[0][0]
        if exact:
            self.assertEqual(firsts.count(CRITICAL_LINE), outages, firsts)
            self.assertEqual(firsts.count(RESOLVED_LINE), outages, firsts)
            self.assertEqual(critical, outages)
        else:
            self.assertTrue(1 <= firsts.count(CRITICAL_LINE) <= outages, firsts)
            self.assertTrue(1 <= firsts.count(RESOLVED_LINE) <= outages, firsts)
            self.assertTrue(1 <= critical <= outages, critical)
        self.assertEqual(firsts[-1], RESOLVED_LINE, firsts)
        recovered = server.query("SELECT COUNT(*) FROM system_health_logs WHERE "
                                 "event_type = 'INFO' AND message LIKE 'job queue recovered%'")
        self.assertEqual(recovered[0][0], outages)

    def outage(self, load, begin, end, name, hold_s):
        """Fault on (begin()), the breaker opens and the load is served inline for
        hold_s seconds, fault off (end()), the queue takes jobs again."""
        begun = len(load.records)
        load.phase = f"{name}"
        begin()
        self.run_until(load, name, lambda: load.circuit_seen(name, "open"), 15.0,
                       f"/readyz to show the open circuit during {name}")
        deadline = time.monotonic() + hold_s
        self.run_until(load, name, lambda: time.monotonic() >= deadline, hold_s + 5.0,
                       f"{hold_s} s of {name}")
        self.assertTrue(load.count(name, 201) > 0, f"no fallback during {name}")
        end()
        after = f"after {name}"
        self.run_until(load, after, lambda: load.count(after, 202) >= QUEUED_AFTER, 30.0,
                       f"{QUEUED_AFTER} jobs queued after {name}")
        server = load.server
        self.run_until(load, after,
                       lambda: server.get("/readyz").json["queue"]["circuit"] == "closed", 10.0,
                       f"/readyz to show the closed circuit after {name}")
        return len(load.records) - begun


class PartitionTest(FaultAssertions, ServerPerTestCase):
    def test_link_cut_under_load(self):
        redis = self.own(NetnsRedis())
        # The Bot API sits behind the same link: the cut takes it away too, so
        # the CRITICAL waits in the outbox and arrives once the link is back.
        server = self.start_server(redis.url, "partition", telegram_behind=redis)
        load = partition_load(server)
        self.run_until(load, "before", lambda: load.count("before", 202) >= QUEUED_BEFORE, 30.0,
                       f"{QUEUED_BEFORE} jobs queued before the cut")
        self.assertEqual(self.fake.snapshot(), [], "a message before the cut")

        def cut():
            redis.cut()
            self.assertFalse(redis.reachable(), "Redis still answers across the cut link")

        def restore():
            # Nothing crossed the cut link: the CRITICAL is still in the outbox.
            self.assertEqual(self.fake.snapshot(), [], "a message crossed the cut link")
            redis.restore()
        self.outage(load, cut, restore, "partition", CUT_S)
        self.assertTrue(load.stop(), "a client thread hung")
        accepted = self.check_load(load)
        self.check_exactly_once(server, accepted)
        self.check_alerts(server, outages=1)


class ProxyFaultTest(FaultAssertions, ServerPerTestCase):
    timeout_ms = PROXY_COMMAND_TIMEOUT_MS

    def setUp(self):
        self.redis = self.own(RedisServer("proxied"))
        self.proxy = self.own(FaultProxy(self.redis.port))

    def test_latency_then_a_stall(self):
        proxy = self.proxy
        server = self.start_server(proxy.url, "proxy-stall")
        load = partition_load(server)
        self.run_until(load, "before", lambda: load.count("before", 202) >= QUEUED_BEFORE, 30.0,
                       f"{QUEUED_BEFORE} jobs queued before the faults")
        # 100 ms each way: 200 ms more per round trip, within the 600 ms timeout.
        proxy.latency_s = 0.1
        self.run_until(load, "latency", lambda: load.count("latency", 202) >= QUEUED_AFTER, 30.0,
                       f"{QUEUED_AFTER} jobs queued with 200 ms added")
        proxy.latency_s = 0.0
        # Every connection stalls: nothing forwarded, nothing closed.
        self.outage(load, proxy.stall, proxy.unstall, "stall", 3.0)
        self.assertTrue(load.stop(), "a client thread hung")
        accepted = self.check_load(load)
        self.check_exactly_once(server, accepted)
        self.check_alerts(server, outages=1)

    def test_a_share_of_the_bytes_lost(self):
        proxy = self.proxy
        server = self.start_server(proxy.url, "proxy-loss")
        load = partition_load(server)
        self.run_until(load, "before", lambda: load.count("before", 202) >= QUEUED_BEFORE, 30.0,
                       f"{QUEUED_BEFORE} jobs queued before the faults")

        # 30 % of the chunks vanish: calls fail, time out or read garbage; the
        # breaker opens (a probe may get through and close it for a moment:
        # each such flap is an outage of its own) and stays closed once the
        # loss stops.
        def lose():
            proxy.drop_share = 0.3

        def repair():
            proxy.drop_share = 0.0
        self.outage(load, lose, repair, "loss", 3.0)
        self.assertTrue(load.stop(), "a client thread hung")
        self.assertGreater(proxy.dropped_chunks, 0)
        accepted = self.check_load(load)
        self.check_exactly_once(server, accepted)
        outages = wait_until(
            lambda: server.query("SELECT COUNT(*) FROM system_health_logs WHERE event_type = "
                                 "'INFO' AND message LIKE 'job queue recovered%'")[0][0],
            10.0, "the INFO event 'job queue recovered'", until=lambda n: n >= 1)
        self.check_alerts(server, outages=outages, exact=False)


if __name__ == "__main__":
    unittest.main()
