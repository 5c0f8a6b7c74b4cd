"""Telegram alerts against a fake Bot API (fake_telegram.py): the message of each
kind (escaping, pretty details, truncation), 429 retry_after, 400 without retry,
chat migration, giving up, throttling into summaries, delivery after a restart,
`usher alerts test`, the start-up WARNING, request latency while the Bot API
hangs or fails, and the bot token in no log line."""

import json
import re
import secrets
import time
import unittest
import uuid
from datetime import datetime, timezone

from fake_telegram import (FakeTelegram, bad_request, hang, migrate, ok, server_error,
                           too_many)
from usher_harness import (ServerPerTestCase, ServerTestCase, UsherServer, base_env, run_cli,
                           unique_email, wait_until)

# Looks like a real bot token (digits:secret) so that any leak is easy to grep.
TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
CHATS = ("1001", "-1002")
MODE = "/api/v1/admin/system/mode"
# Every character that means something to HTML or to Telegram's Markdown.
NASTY = "Zoë <b>O'Brien</b> & _Sons_ *[x]* <script>&amp;"
ISO_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
EMOJI = {"SWITCH": "\U0001F500", "ERROR": "\u274C", "CRITICAL": "\U0001F6A8", "RESOLVED": "\u2705"}


def telegram_env(fake, **extra):
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_CHAT_ID": ",".join(CHATS),
           "TELEGRAM_API_URL": fake.url, "ALERT_POLL_MS": "50", "ALERT_BACKOFF_MS": "200",
           "TELEGRAM_TIMEOUT_MS": "2000", "TELEGRAM_CONNECT_TIMEOUT_MS": "1000"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def alert_server(name, fake, mode="sync_direct", env=None, **telegram):
    """A server whose set-up (migrate, tokens, mode) runs without alerts, so that
    only what a test does reaches the fake; alerts are on from start()."""
    server = UsherServer(name, mode=mode, env=env)
    server.env.update(telegram_env(fake, **telegram))
    return server


def other_mode(server):
    current = server.get(MODE, token="admin").json["mode"]
    return "async_queue" if current == "sync_direct" else "sync_direct"


def switch(server, reason, token="admin"):
    resp = server.request("PUT", MODE, body={"mode": other_mode(server), "reason": reason},
                          token=token)
    assert resp.status == 200 and resp.json["changed"], resp
    return resp


def with_text(requests, needle):
    return [r for r in requests if r.text and needle in r.text]


def details_of(visible):
    """The pretty JSON after 'Details:' in a delivered message."""
    start = visible.index("Details:\n") + len("Details:\n")
    return json.loads(visible[start:])


def marker_delivered(server, fake):
    """Switches the mode with a fresh reason (the marker) and waits until every
    chat received it. The sender takes due messages in outbox order, so what
    was due before the switch has been sent or given up by then. Only where the
    switch alerts at once (ALERT_THROTTLE_MS=0, or no SWITCH window open).
    Returns the marker."""
    marker = f"marker {uuid.uuid4().hex[:8]}"
    switch(server, marker)
    fake.wait_for(lambda s: len([r for r in with_text(s, marker) if r.status == 200]) == len(CHATS),
                  what=f"the marker switch {marker!r} in every chat")
    return marker


def without(requests, needle):
    return [r for r in requests if not (r.text and needle in r.text)]


def outbox_rows(server, needle):
    """(status, attempts) of the outbox messages containing `needle`, once none
    of them is pending any more."""
    return wait_until(lambda: server.query("SELECT status, attempts FROM alert_outbox "
                                           "WHERE text LIKE ? ORDER BY status, attempts",
                                           (f"%{needle}%",)),
                      what=f"the messages of {needle!r} to be sent or failed",
                      until=lambda rows: rows and all(r[0] != "pending" for r in rows))


def utc_now_iso():
    """Now as usher writes times (ISO 8601 UTC, milliseconds)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def warnings_matching(server, needle):
    return server.query("SELECT message, metadata FROM system_health_logs "
                        "WHERE event_type = 'WARNING' AND message LIKE ?", (f"%{needle}%",))


def p99(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class TokenNeverLogged:
    """Mixin: the bot token appears in no log line, event, outbox error or CLI output."""

    def assertTokenAbsent(self, server, *outputs):
        for path in (server.stdout_path, server.stderr_path):
            with open(path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
            self.assertNotIn(TOKEN, data, f"the bot token is in {path}")
            self.assertNotIn(TOKEN.split(":", 1)[1], data, f"the token's secret is in {path}")
        rows = server.query("SELECT message || metadata FROM system_health_logs")
        rows += server.query("SELECT text || COALESCE(last_error, '') FROM alert_outbox")
        for (text,) in rows:
            self.assertNotIn(TOKEN, text)
        for out in outputs:
            self.assertNotIn(TOKEN, out)


class AlertMessagesTest(TokenNeverLogged, ServerTestCase):
    """One server, every event alerting at once (ALERT_THROTTLE_MS=0)."""

    @classmethod
    def make_server(cls):
        cls.fake = FakeTelegram(TOKEN)
        cls.addClassCleanup(cls.fake.close)  # after the server stopped
        return alert_server("alerts-msg", cls.fake, ALERT_THROTTLE_MS=0)

    @classmethod
    def prepare_server(cls, server):
        server.tokens["nasty"] = server.create_token("admin", NASTY)

    def tearDown(self):
        self.assertTokenAbsent(self.server)

    def test_switch_message_names_kind_time_instance_and_escaped_details(self):
        reason = f"maintenance {uuid.uuid4().hex[:6]} {NASTY}"
        switch(self.server, reason, token="nasty")
        delivered = self.fake.wait_for(
            lambda s: len([r for r in s if r.status == 200 and r.visible and reason in r.visible]) == 2)
        delivered = [r for r in delivered if r.status == 200 and reason in (r.visible or "")]
        self.assertEqual(sorted(str(r.chat_id) for r in delivered), sorted(CHATS))
        for message in delivered:
            self.assertEqual(message.body["parse_mode"], "HTML")
            self.assertIsInstance(message.body["chat_id"], int)
            visible = message.visible
            lines = visible.split("\n")
            self.assertEqual(lines[0], f"{EMOJI['SWITCH']} SWITCH")
            self.assertRegex(lines[1], r"^system mode switched from \w+ to \w+$")
            self.assertRegex(visible, rf"\nTime: {ISO_UTC}\n")
            self.assertIn("\nInstance: itest-alerts-msg\n", visible)
            details = details_of(visible)
            self.assertEqual(details["reason"], reason)
            self.assertEqual(details["by"].split(" (token")[0], NASTY)
            # Escaped in the HTML, intact after Telegram's entity parsing.
            self.assertIn("&lt;b&gt;O'Brien&lt;/b&gt; &amp; _Sons_ *[x]* &lt;script&gt;&amp;amp;",
                          message.text)
            self.assertIn("<pre>{\n  \"by\": ", message.text)

    def test_cli_switch_with_a_10_kb_reason_is_truncated_to_4096_and_says_so(self):
        marker = uuid.uuid4().hex[:8]
        reason = f"{marker} " + (NASTY + " ") * (10 * 1024 // len(NASTY))
        self.assertGreater(len(reason.encode()), 10 * 1024)
        target = other_mode(self.server)
        result = self.server.cli(["mode", "set", target, "--reason", reason])
        self.assertEqual(result.returncode, 0, result.stderr)
        snap = self.fake.wait_for(lambda s: len([r for r in with_text(s, marker) if r.status]) >= 2)
        for message in with_text(snap, marker):
            self.assertEqual(message.status, 200, message.rejected_reason)
            length = len(message.visible.encode("utf-16-le")) // 2
            self.assertLessEqual(length, 4096)
            self.assertGreater(length, 3900, "cut far shorter than needed")
            self.assertTrue(message.visible.startswith(f"{EMOJI['SWITCH']} SWITCH\nsystem mode "))
            self.assertIn("truncated", message.visible)
            self.assertIn("</pre>", message.text)
            self.assertIn("Instance: itest-alerts-msg", message.visible)
        self.assertTokenAbsent(self.server, result.stdout, result.stderr)

    def test_429_then_success_delivers_exactly_once_after_retry_after(self):
        reason = f"rate limited {uuid.uuid4().hex[:8]}"
        self.fake.push(too_many(1))
        switch(self.server, reason)
        snap = self.fake.wait_for(lambda s: len([r for r in with_text(s, reason) if r.status == 200]) == 2)
        requests = with_text(snap, reason)
        limited = [r for r in requests if r.status == 429]
        self.assertEqual(len(limited), 1, requests)
        same_chat = [r for r in requests if r.chat_id == limited[0].chat_id]
        self.assertEqual([r.status for r in same_chat], [429, 200])
        self.assertGreaterEqual(same_chat[1].received_at - same_chat[0].received_at, 0.95)
        # Nothing more arrives: both messages are settled (a sent message is never
        # claimed again), and a marker sent after them finds nothing before it.
        self.assertEqual(outbox_rows(self.server, reason), [("sent", 1), ("sent", 2)])
        marker_delivered(self.server, self.fake)
        self.assertEqual(len([r for r in with_text(self.fake.snapshot(), reason) if r.status == 200]), 2)

    def test_400_is_not_retried_and_recorded_as_a_warning_with_telegrams_description(self):
        reason = f"rejected {uuid.uuid4().hex[:8]}"
        description = f"Bad Request: chat not found {uuid.uuid4().hex[:6]}"
        self.fake.push(bad_request(description))
        switch(self.server, reason)
        self.fake.wait_for(lambda s: len([r for r in with_text(s, reason) if r.status]) == 2)
        warnings = wait_until(lambda: warnings_matching(self.server, description),
                              what="the WARNING of the rejected alert")
        self.assertEqual(len(warnings), 1)
        self.assertIn("Telegram rejected SWITCH alert", warnings[0][0])
        self.assertEqual(json.loads(warnings[0][1])["description"], description)
        # No retry: the rejected message failed for good after one attempt. And the
        # WARNING itself is never alerted: it queued nothing (it was written with
        # the failure), so a marker sent after it arrives with nothing before it.
        self.assertEqual(outbox_rows(self.server, reason), [("failed", 1), ("sent", 1)])
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM alert_outbox WHERE text LIKE ?",
                                           (f"%{description}%",)), [(0,)])
        marker_delivered(self.server, self.fake)
        requests = with_text(self.fake.snapshot(), reason)
        self.assertEqual(sorted(r.status for r in requests), [200, 400])
        self.assertEqual(with_text(self.fake.snapshot(), description), [])


class DeadJobAlertTest(TokenNeverLogged, ServerPerTestCase):
    def test_dead_jobs_alert_once_then_a_summary_of_the_repeats(self):
        fake = self.own(FakeTelegram(TOKEN))
        server = self.own(alert_server("alerts-dead", fake, mode="async_queue",
                                       env={"JOB_MAX_ATTEMPTS": "1", "USHER_FAULT_AFTER": "account",
                                            "USHER_FAULT_MODE": "throw", "QUEUE_POLL_MS": "50"},
                                       ALERT_THROTTLE_MS=2000))
        server.start()
        emails = [f"o&connor_*{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(4)]
        for email in emails:
            resp = server.create_user(email=email, full_name=NASTY)
            self.assertEqual(resp.status, 202, resp)
        # The first dead job alerts at once; the other three come as one summary
        # when the 2 s window ends.
        snap = fake.wait_for(lambda s: len([r for r in s if r.status == 200]) == 4, timeout=20)
        delivered = [r for r in snap if r.status == 200]
        firsts = [r for r in delivered if "(repeated)" not in r.visible]
        summaries = [r for r in delivered if "(repeated)" in r.visible]
        self.assertEqual(len(firsts), 2)
        self.assertEqual(len(summaries), 2)
        for first in firsts:
            lines = first.visible.split("\n")
            self.assertEqual(lines[0], f"{EMOJI['ERROR']} ERROR")
            self.assertRegex(lines[1], r"^job \d+ for .+ is dead after 1 attempts")
            email = re.search(r"for (\S+) is dead", lines[1]).group(1)
            self.assertIn(email, emails)
            self.assertIn("&amp;connor_*", first.text)
            details = details_of(first.visible)
            self.assertEqual(details["email"], email)
            self.assertIn("injected fault", details["last_error"])
        for summary in summaries:
            self.assertTrue(summary.visible.startswith(
                f"{EMOJI['ERROR']} ERROR (repeated)\n\u2026and 3 more in the last 2 s\nLatest: job "),
                summary.visible)
            self.assertGreaterEqual(summary.received_at - firsts[0].received_at, 1.5)
        # Every dead job keeps its own ERROR row (a customer each).
        self.assertEqual(server.query("SELECT COUNT(*) FROM system_health_logs "
                                      "WHERE event_type = 'ERROR'"), [(4,)])
        # Nothing more arrives: every message is settled and no window holds
        # repeats for another summary; the four are all there ever were.
        wait_until(server.alerts_settled, what="the outbox to settle")
        self.assertEqual(server.query("SELECT status, COUNT(*) FROM alert_outbox "
                                      "GROUP BY status"), [("sent", 4)])
        self.assertEqual(len(fake.delivered()), 4)
        self.assertTokenAbsent(server)


class ThrottleAndDeliveryTest(TokenNeverLogged, ServerPerTestCase):
    def setUp(self):
        self.fake = self.own(FakeTelegram(TOKEN))  # closed after the servers (cleanups run LIFO)

    def server(self, name, **kw):
        return self.own(alert_server(name, self.fake, **kw))

    def test_repeated_switches_fold_into_one_summary(self):
        server = self.server("alerts-throttle", ALERT_THROTTLE_MS=2000).start()
        switches_before = server.query("SELECT COUNT(*) FROM system_health_logs "
                                       "WHERE event_type = 'SWITCH'")[0][0]
        started = time.monotonic()
        for i in range(6):
            switch(server, f"flap {i}")
        first = self.fake.wait_delivered(2)
        self.assertTrue(all("flap 0" in r.visible for r in first), first)
        self.assertLess(first[0].received_at - started, 3.0, "the first alert was not sent at once")
        snap = self.fake.wait_delivered(4, timeout=10)
        summaries = [r for r in snap if "(repeated)" in r.visible]
        self.assertEqual(len(summaries), 2)
        for summary in summaries:
            self.assertIn("\u2026and 5 more in the last 2 s\nLatest: system mode switched", summary.visible)
            self.assertEqual(details_of(summary.visible)["reason"], "flap 5")
        # The window rolled on with nothing in it: when it has ended, no third
        # message came, and the next switch alerts at once.
        ends = server.query("SELECT window_ends_at FROM alert_conditions "
                            "WHERE condition_key = 'SWITCH:system_mode'")[0][0]
        wait_until(lambda: utc_now_iso() > ends, timeout=10,
                   what=f"the rolled-on window to end at {ends}", interval=0.1)
        marker = marker_delivered(server, self.fake)
        wait_until(server.alerts_settled, what="the outbox to settle")
        delivered = self.fake.delivered()
        self.assertEqual(len(without(delivered, marker)), 4, delivered)
        self.assertEqual([r.visible.split("\n", 1)[0] for r in with_text(delivered, marker)],
                         [f"{EMOJI['SWITCH']} SWITCH"] * 2, "the switch after the window was folded")
        # SWITCH events keep a row each: the audit trail of who switched and why
        # (the six flaps and the marker).
        self.assertEqual(server.query("SELECT COUNT(*) FROM system_health_logs "
                                      "WHERE event_type = 'SWITCH'")[0][0], switches_before + 7)
        self.assertTokenAbsent(server)

    def test_group_migration_is_followed_and_recorded(self):
        server = self.server("alerts-migrate", ALERT_THROTTLE_MS=0).start()
        self.fake.push(migrate(-100777))
        switch(server, "migrating")
        snap = self.fake.wait_delivered(2)
        self.assertEqual(sorted(str(r.chat_id) for r in snap), sorted(["-100777", CHATS[1]]))
        warning = wait_until(lambda: warnings_matching(server, "upgraded to the supergroup -100777"),
                             what="the migration WARNING")
        self.assertIn("TELEGRAM_ADMIN_CHAT_ID", warning[0][0])
        # Later alerts for the old chat go straight to the supergroup.
        switch(server, "after migration")
        snap = self.fake.wait_delivered(4)
        later = [r for r in snap if "after migration" in r.visible]
        self.assertEqual(sorted(str(r.chat_id) for r in later), sorted(["-100777", CHATS[1]]))
        self.assertEqual(len([r for r in self.fake.snapshot() if r.status == 400]), 1)
        self.assertTokenAbsent(server)

    def test_failing_bot_api_is_retried_with_backoff_then_given_up_with_a_warning(self):
        self.fake.default(server_error())
        server = self.server("alerts-giveup", ALERT_THROTTLE_MS=0, ALERT_GIVE_UP_MS=2000,
                             LOG_FORMAT="json").start()
        switch(server, "never delivered")
        warnings = wait_until(lambda: len(warnings_matching(server, "gave up delivering")) == 2
                              and warnings_matching(server, "gave up delivering"),
                              timeout=15, what="two give-up WARNINGs")
        for message, metadata in warnings:
            self.assertIn("HTTP 500", message)
            self.assertEqual(json.loads(metadata)["http_status"], 500)
        rows = server.query("SELECT status, attempts FROM alert_outbox")
        self.assertEqual([r[0] for r in rows], ["failed", "failed"])
        per_chat = {}
        for r in self.fake.snapshot():
            per_chat.setdefault(str(r.chat_id), []).append(r.received_at)
        for chat, times in per_chat.items():
            self.assertGreaterEqual(len(times), 3, f"chat {chat}: {len(times)} attempts")
            gaps = [b - a for a, b in zip(times, times[1:])]
            self.assertGreaterEqual(max(gaps), 0.35, f"no backoff for chat {chat}: {gaps}")
            self.assertLessEqual(times[-1] - times[0], 6.0)
        # Given up for good: once the Bot API answers again, a marker gets
        # through and nothing given up is sent again.
        count = len(self.fake.snapshot())
        self.fake.default(ok())
        marker = marker_delivered(server, self.fake)
        self.assertEqual(len(without(self.fake.snapshot(), marker)), count, "retried after giving up")
        self.assertEqual([r for r in self.fake.snapshot() if "gave up" in (r.text or "")], [],
                         "a failed delivery was alerted")
        self.assertTokenAbsent(server)

    def test_undelivered_alerts_are_delivered_after_a_restart(self):
        self.fake.default(server_error())
        server = self.server("alerts-restart", ALERT_THROTTLE_MS=0)
        server.start()
        switch(server, "while telegram is down")
        self.fake.wait_for(lambda s: len(s) >= 2, what="the failed attempts")
        self.assertEqual(server.stop(), 0)
        self.assertEqual(self.fake.delivered(), [])
        # While usher is down, a switch through the CLI is recorded for later too.
        target = "sync_direct" if server.cli(["mode", "get"]).stdout.startswith("async") else "async_queue"
        cli = server.cli(["mode", "set", target, "--reason", "while usher is down"])
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(server.query("SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'"),
                         [(4,)])
        self.fake.default(ok())
        server.start()
        snap = self.fake.wait_delivered(4, timeout=15)
        for reason in ("while telegram is down", "while usher is down"):
            got = [r for r in snap if reason in r.visible]
            self.assertEqual(sorted(str(r.chat_id) for r in got), sorted(CHATS), reason)
        # Each sent once: all four settled as sent, and a marker after them finds
        # nothing sent twice before it.
        self.assertEqual(wait_until(
            lambda: server.query("SELECT status, COUNT(*) FROM alert_outbox GROUP BY status"),
            what="the four messages to settle",
            until=lambda rows: all(status != "pending" for status, _ in rows)), [("sent", 4)])
        marker = marker_delivered(server, self.fake)
        self.assertEqual(len(without(self.fake.delivered(), marker)), 4, "delivered twice")
        self.assertTokenAbsent(server, cli.stdout, cli.stderr)


class LatencyTest(TokenNeverLogged, unittest.TestCase):
    """Sending never slows a request: the sender's requests run outside every
    transaction, on its own thread."""

    # The Bot API's timeout here: a request that waited for a hanging Bot API
    # would take at least this long. The test asserts that none did (a
    # functional property); how fast requests are is bench/'s business.
    TELEGRAM_TIMEOUT_S = 5.0

    def measure(self, server, posts, switches):
        post_times, switch_times = [], []
        for _ in range(posts):
            t = time.perf_counter()
            resp = server.create_user(email=unique_email("p99"))
            post_times.append(time.perf_counter() - t)
            self.assertEqual(resp.status, 201, resp)
        for i in range(switches):
            t = time.perf_counter()
            resp = server.request("PUT", MODE, body={"mode": ("async_queue", "sync_direct")[i % 2],
                                                     "reason": "latency"}, token="admin")
            switch_times.append(time.perf_counter() - t)
            self.assertEqual(resp.status, 200, resp)
        return max(post_times), max(switch_times)

    def test_a_hanging_or_failing_bot_api_does_not_slow_requests(self):
        fake = FakeTelegram(TOKEN)
        server = alert_server("alerts-p99", fake, ALERT_THROTTLE_MS=0,
                              TELEGRAM_TIMEOUT_MS=int(self.TELEGRAM_TIMEOUT_S * 1000))
        try:
            server.start()
            normal = self.measure(server, 200, 40)  # ends in sync_direct
            fake.default(hang(30))
            switch(server, "into the hang")
            switch(server, "back")
            fake.wait_for(lambda s: any(r.status is None for r in s), what="the sender to hang")
            delivered_before = len(fake.delivered())
            hanging = self.measure(server, 200, 40)
            fake.default(server_error())
            failing = self.measure(server, 100, 20)
            print(f"\nslowest POST /api/v1/users, PUT mode (ms): normal {normal[0]*1e3:.1f}, "
                  f"{normal[1]*1e3:.1f}; Bot API hanging {hanging[0]*1e3:.1f}, "
                  f"{hanging[1]*1e3:.1f}; failing {failing[0]*1e3:.1f}, {failing[1]*1e3:.1f}")
            for name, (post, put) in (("hanging", hanging), ("failing", failing)):
                self.assertLess(max(post, put), self.TELEGRAM_TIMEOUT_S * 0.8,
                                f"a request waited for the Bot API ({name})")
            self.assertEqual(len(fake.delivered()), delivered_before)
            # And a stop does not wait out the hanging request (30 s).
            t = time.monotonic()
            self.assertEqual(server.stop(), 0)
            self.assertLess(time.monotonic() - t, 15.0)
            self.assertTokenAbsent(server)
        finally:
            server.close()
            fake.close()


class OperationsTest(TokenNeverLogged, unittest.TestCase):
    def test_alerts_test_command_sends_and_reports_telegrams_description(self):
        fake = FakeTelegram(TOKEN)
        try:
            env = base_env(telegram_env(fake))
            good = run_cli(["alerts", "test"], env=env)
            self.assertEqual(good.returncode, 0, good.stderr)
            delivered = fake.delivered()
            self.assertEqual(sorted(str(r.chat_id) for r in delivered), sorted(CHATS))
            for message in delivered:
                self.assertTrue(message.visible.startswith("\U0001F9EA TEST\n"), message.visible)
            self.assertEqual(good.stdout.count("test message sent to chat"), 2)

            fake.push(bad_request("Bad Request: chat not found"))
            bad = run_cli(["alerts", "test"], env=env)
            self.assertNotEqual(bad.returncode, 0)
            self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
            self.assertTrue(bad.stderr.startswith("usher: "), bad.stderr)
            self.assertIn("chat 1001: Bad Request: chat not found", bad.stderr)

            wrong = run_cli(["alerts", "test"], env=base_env(telegram_env(fake,
                                                             TELEGRAM_BOT_TOKEN="1:wrong")))
            self.assertNotEqual(wrong.returncode, 0)
            self.assertIn("Unauthorized", wrong.stderr)

            fake.default(hang(30))
            t = time.monotonic()
            slow = run_cli(["alerts", "test"], env=base_env(telegram_env(fake,
                                                            TELEGRAM_TIMEOUT_MS=500)))
            self.assertLess(time.monotonic() - t, 10)
            self.assertNotEqual(slow.returncode, 0)
            self.assertIn("no answer from the Bot API within 500 ms", slow.stderr)

            unset = run_cli(["alerts", "test"], env=base_env())
            self.assertNotEqual(unset.returncode, 0)
            self.assertIn("not configured", unset.stderr)
            for result in (good, bad, wrong, slow, unset):
                for out in (result.stdout, result.stderr):
                    self.assertNotIn(TOKEN, out)
        finally:
            fake.close()

    def test_start_up_warns_when_alerts_are_not_configured(self):
        server = UsherServer("alerts-off")
        try:
            server.start()
            events = server.get("/api/v1/admin/health/logs?type=WARNING", token="admin").json["events"]
            self.assertTrue(any("Telegram alerts are off: TELEGRAM_BOT_TOKEN is not set" in e["message"]
                                for e in events), events)
            self.assertIn("Telegram alerts are off", server.stderr_tail())
            # Nothing is queued for anyone when alerts are off.
            switch(server, "no alerts")
            self.assertEqual(server.query("SELECT COUNT(*) FROM alert_outbox"), [(0,)])
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
