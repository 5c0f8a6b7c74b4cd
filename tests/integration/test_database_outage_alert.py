"""The database's own outage alerts (issue 15, "Hardening"): the health log and
the alert outbox live in the database, so while PostgreSQL is down nothing can
be written there. usher's database watch (health/database_watch.hpp) probes
the database every second; once every probe has failed for DB_OUTAGE_ALERT_MS
it sends one CRITICAL message straight to the Bot API, and when PostgreSQL
answers again one RESOLVED, then writes the outage (a CRITICAL and an INFO
event, with its start and end) to the health log (docs/alerts.md, "Database
outage").

- One `usher serve`, PostgreSQL shut down for longer than the threshold:
  exactly one CRITICAL per chat (not before the threshold; the Bot API's
  first answer is a 429, whose retry_after is waited), then after the
  restart exactly one RESOLVED per chat, and the two events in the database.
- Two `usher serve` on one PostgreSQL and one Redis: the claim in Redis lets
  one of them alert: one CRITICAL and one RESOLVED per chat in all, naming
  the instance that sent them; both write the outage they saw to the log.

Waits on what the fake Bot API received and on the database, never on a
sleep; "exactly one" is asserted after the RESOLVED arrived (the CRITICAL
was due long before it).

Runs against a real PostgreSQL of its own (pg_harness), which it stops and
starts: a missing PostgreSQL (or redis-server) fails.
"""

import json
import re
import secrets
import time
import unittest

from fake_telegram import FakeTelegram, too_many
from pg_harness import PostgresCluster
from redis_harness import RedisServer, redis_env, sibling, unique_prefix
from usher_harness import ServerPerTestCase, UsherServer, wait_until

TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
CHATS = ("1001", "-1002")
THRESHOLD_S = 3
# Down this long: several probes past the threshold, where a second CRITICAL
# would come if the watch sent one per probe.
DOWN_S = THRESHOLD_S + 5
ISO_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
CRITICAL = "\U0001F6A8 CRITICAL"
RESOLVED = "\u2705 RESOLVED"


def telegram_env(fake):
    return {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_CHAT_ID": ",".join(CHATS),
            "TELEGRAM_API_URL": fake.url, "ALERT_POLL_MS": "50", "ALERT_BACKOFF_MS": "200",
            "TELEGRAM_TIMEOUT_MS": "2000", "TELEGRAM_CONNECT_TIMEOUT_MS": "1000",
            "DB_OUTAGE_ALERT_MS": str(THRESHOLD_S * 1000), "DB_BUSY_TIMEOUT_MS": "2000"}


def outage_messages(requests, head):
    """Delivered messages that open with `head` and are about the database."""
    return [r for r in requests if r.status == 200 and r.visible
            and r.visible.startswith(head) and "database" in r.visible]


def per_chat(messages):
    counts = {}
    for m in messages:
        counts[str(m.chat_id)] = counts.get(str(m.chat_id), 0) + 1
    return counts


def details_of(visible):
    start = visible.index("Details:\n") + len("Details:\n")
    return json.loads(visible[start:])


def metadata_of(value):
    return value if isinstance(value, dict) else json.loads(value)


class DatabaseOutageAlertTest(ServerPerTestCase):
    def setUp(self):
        self.fake = FakeTelegram(TOKEN)
        self.addCleanup(self.fake.close)
        self.cluster = self.own(PostgresCluster("pg-outage-alert"))

    def start_servers(self, names, env=None):
        """Servers on one new database, alerts on from start() (the set-up's CLI
        commands run without them, so only the outage reaches the fake)."""
        database = self.cluster.create_database("outage")
        first = self.own(UsherServer(names[0], mode="sync_direct", env=env,
                                     pg=(self.cluster, database)))
        servers = [first] + [self.own(sibling(first, name)) for name in names[1:]]
        for server in servers:
            server.env.update(telegram_env(self.fake))
            server.start()
            server.wait_for_log(r"database watch: a probe every", timeout=10)
        return servers

    def outage(self, servers):
        """Stops PostgreSQL, waits for the CRITICAL in every chat and DOWN_S,
        starts it, waits for the RESOLVED in every chat. Returns (stopped at,
        CRITICAL messages, RESOLVED messages) once both arrived."""
        for server in servers:
            self.assertEqual(server.get("/readyz").status, 200)
        down_at = time.monotonic()
        self.cluster.stop("fast")
        self.fake.wait_for(lambda s: len(per_chat(outage_messages(s, CRITICAL))) == len(CHATS),
                           timeout=THRESHOLD_S + 20, what="the CRITICAL in every chat")
        wait_until(lambda: time.monotonic() >= down_at + DOWN_S, DOWN_S + 5,
                   f"{DOWN_S} s of outage")
        self.cluster.start()
        snap = self.fake.wait_for(
            lambda s: len(per_chat(outage_messages(s, RESOLVED))) == len(CHATS),
            timeout=30, what="the RESOLVED in every chat")
        for server in servers:
            wait_until(lambda: server.get("/readyz").status == 200, 30, "/readyz 200 again")
        return down_at, outage_messages(snap, CRITICAL), outage_messages(snap, RESOLVED)

    def outage_events(self, server):
        return server.query("SELECT event_type, message, metadata, instance FROM "
                            "system_health_logs WHERE message LIKE '%database%' "
                            "AND event_type IN ('CRITICAL', 'INFO') ORDER BY id")

    def test_postgresql_stopped_past_the_threshold_alerts_once_and_resolves_once(self):
        (server,) = self.start_servers(["dbwatch"])
        self.fake.push(too_many(retry_after=1))  # the first request: flood control
        down_at, critical, resolved = self.outage([server])

        # The 429 was obeyed: its chat's delivery came retry_after later.
        limited = [r for r in self.fake.snapshot() if r.status == 429]
        self.assertEqual(len(limited), 1, self.fake.snapshot())
        (retried,) = [m for m in critical if m.chat_id == limited[0].chat_id]
        self.assertGreaterEqual(retried.received_at - limited[0].received_at, 0.95)

        self.assertEqual(per_chat(critical), {chat: 1 for chat in CHATS}, critical)
        self.assertEqual(per_chat(resolved), {chat: 1 for chat in CHATS}, resolved)
        for message in critical:
            self.assertGreaterEqual(message.received_at - down_at, THRESHOLD_S - 0.1,
                                    "the CRITICAL came before the threshold")
            self.assertIn("The PostgreSQL database has not answered for", message.visible)
            self.assertRegex(message.visible, rf"Time: {ISO_UTC}")
            self.assertIn(f"Instance: {server.env['USHER_INSTANCE']}", message.visible)
            details = details_of(message.visible)
            self.assertEqual(details["condition"], "database_unreachable")
            self.assertRegex(details["failing_since"], ISO_UTC)
            self.assertGreaterEqual(details["failed_probes"], THRESHOLD_S)
            self.assertNotIn(self.cluster.password, message.text)
        for message in resolved:
            self.assertIn("The PostgreSQL database answers again after", message.visible)
            self.assertRegex(message.visible, rf"CRITICAL since: {ISO_UTC}")
            self.assertIn(f"Instance: {server.env['USHER_INSTANCE']}", message.visible)
            self.assertGreater(min(r.received_at for r in resolved),
                               max(c.received_at for c in critical))

        # The outage in the health log, once the database took the write.
        events = wait_until(lambda: self.outage_events(server), 30,
                            "the outage's events in the health log",
                            until=lambda rows: len(rows) >= 2)
        self.assertEqual([e[0] for e in events], ["CRITICAL", "INFO"], events)
        meta = metadata_of(events[0][2])
        self.assertEqual(meta, metadata_of(events[1][2]))
        self.assertEqual(meta["condition"], "database_unreachable")
        self.assertRegex(meta["outage_started_at"], ISO_UTC)
        self.assertRegex(meta["outage_ended_at"], ISO_UTC)
        self.assertLess(meta["outage_started_at"], meta["outage_ended_at"])
        self.assertGreaterEqual(meta["down_for_s"], DOWN_S - 1)
        self.assertEqual(meta["alert"], f"sent directly to {len(CHATS)} of {len(CHATS)} chat(s)")
        self.assertIn(meta["outage_started_at"], events[0][1])
        self.assertEqual({e[3] for e in events}, {server.env["USHER_INSTANCE"]})
        # Nothing of it went through the outbox: it was sent directly.
        self.assertEqual(server.query("SELECT COUNT(*) FROM alert_outbox WHERE text LIKE "
                                      "'%database_unreachable%'"), [(0,)])
        server.assert_no_secrets_in_logs()

    def test_two_instances_with_redis_send_one_alert_between_them(self):
        redis = self.own(RedisServer("redis-outage-alert"))
        a, b = self.start_servers(["dbwatch-a", "dbwatch-b"],
                                  env=redis_env(redis, unique_prefix("dbwatch")))
        _, critical, resolved = self.outage([a, b])

        self.assertEqual(per_chat(critical), {chat: 1 for chat in CHATS}, critical)
        self.assertEqual(per_chat(resolved), {chat: 1 for chat in CHATS}, resolved)
        senders = {re.search(r"Instance: (\S+)", m.visible).group(1) for m in critical + resolved}
        self.assertEqual(len(senders), 1, f"the CRITICAL and RESOLVED came from {senders}")
        self.assertTrue(senders <= {a.env["USHER_INSTANCE"], b.env["USHER_INSTANCE"]}, senders)

        # Each instance writes the outage it saw; the one that did not send
        # says who did.
        events = wait_until(lambda: self.outage_events(a), 30,
                            "both instances' outage events in the health log",
                            until=lambda rows: len(rows) >= 4)
        alerts = {e[3]: metadata_of(e[2])["alert"] for e in events if e[0] == "CRITICAL"}
        self.assertEqual(set(alerts), {a.env["USHER_INSTANCE"], b.env["USHER_INSTANCE"]}, events)
        (sender,) = senders
        self.assertEqual(alerts[sender], f"sent directly to {len(CHATS)} of {len(CHATS)} chat(s)")
        (other,) = set(alerts) - senders
        self.assertTrue(alerts[other].startswith(f"sent by another instance ({sender} (pid "),
                        alerts[other])
        for server in (a, b):
            server.assert_no_secrets_in_logs()


if __name__ == "__main__":
    unittest.main()
