"""The kill switch (API and CLI) and the health log API."""

import json
import unittest
import urllib.parse
import uuid

from usher_harness import ServerTestCase, wait_until

MODE = "/api/v1/admin/system/mode"
LOGS = "/api/v1/admin/health/logs"
MODES = ("async_queue", "sync_direct")
EVENT_KEYS = {"id", "type", "message", "metadata", "instance", "count", "created_at"}


def other(mode):
    return MODES[1] if mode == MODES[0] else MODES[0]


def parse_log_line(line):
    """`ID CREATED_AT TYPE message ... metadata-json` -> (id, created_at, type, metadata)."""
    parts = line.split()
    metadata = None
    for i, ch in enumerate(line):
        if ch == "{":
            try:
                metadata = json.loads(line[i:])
                break
            except ValueError:
                continue
    return int(parts[0]), parts[1], parts[2], metadata


class ModeTest(ServerTestCase):
    # A fresh database: the mode is left as the migration created it.
    server_name = "mode"
    server_mode = None

    @classmethod
    def prepare_server(cls, server):
        cls.cli_initial = server.cli(["mode", "get"])

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api_initial = cls.server.get(MODE, token="admin")

    # --- helpers --------------------------------------------------------------
    def get_mode(self):
        resp = self.server.get(MODE, token="admin")
        self.assertEqual(resp.status, 200, resp)
        return resp.json

    def put_mode(self, mode, reason=None):
        body = {"mode": mode}
        if reason is not None:
            body["reason"] = reason
        return self.server.request("PUT", MODE, body=body, token="admin")

    def logs(self, **params):
        query = urllib.parse.urlencode(params)
        return self.server.get(f"{LOGS}?{query}" if query else LOGS, token="admin")

    def switch_count(self):
        return self.server.query(
            "SELECT COUNT(*) FROM system_health_logs WHERE event_type = 'SWITCH'")[0][0]

    def toggle(self, times):
        for _ in range(times):
            current = self.get_mode()["mode"]
            resp = self.put_mode(other(current), reason="toggle")
            self.assertEqual(resp.status, 200, resp)
            self.assertIs(resp.json["changed"], True)

    # --- tests ----------------------------------------------------------------
    def test_fresh_database_starts_in_async_queue_version_1(self):
        self.assertEqual(self.cli_initial.returncode, 0, self.cli_initial.stderr)
        self.assertEqual(self.cli_initial.stdout.splitlines()[0], "async_queue")
        self.assertEqual(self.api_initial.status, 200, self.api_initial)
        self.assertEqual(self.api_initial.json["mode"], "async_queue")
        self.assertEqual(self.api_initial.json["version"], 1)

    def test_get_mode_shape(self):
        state = self.get_mode()
        for key in ("mode", "effective_mode", "version", "updated_at", "updated_by", "queue"):
            self.assertIn(key, state)
        self.assertIn(state["mode"], MODES)
        self.assertIn(state["effective_mode"], MODES)
        self.assertIsInstance(state["version"], int)
        self.assertIsInstance(state["updated_at"], str)
        self.assertIsInstance(state["updated_by"], str)
        for key in ("backend", "healthy", "circuit"):
            self.assertIn(key, state["queue"])
        self.assertIsInstance(state["queue"]["healthy"], bool)

    def test_switch_via_api_writes_one_switch_event(self):
        before = self.get_mode()
        target = other(before["mode"])
        reason = f"api switch {uuid.uuid4().hex[:8]}"
        switches = self.switch_count()

        resp = self.put_mode(target, reason)
        self.assertEqual(resp.status, 200, resp)
        self.assertIs(resp.json["changed"], True)
        self.assertEqual(resp.json["mode"], target)
        self.assertEqual(resp.json["version"], before["version"] + 1)
        for key in ("effective_mode", "updated_at", "updated_by", "queue"):
            self.assertIn(key, resp.json)
        self.assertTrue(resp.json["updated_by"])
        self.assertEqual(self.switch_count(), switches + 1)

        after = self.get_mode()
        self.assertEqual(after["mode"], target)
        self.assertEqual(after["version"], before["version"] + 1)

        events = self.logs(type="SWITCH", limit=1)
        self.assertEqual(events.status, 200, events)
        event = events.json["events"][0]
        self.assertEqual(set(event), EVENT_KEYS)
        self.assertEqual(event["type"], "SWITCH")
        self.assertEqual(event["metadata"]["from"], before["mode"])
        self.assertEqual(event["metadata"]["to"], target)
        self.assertEqual(event["metadata"]["reason"], reason)
        who = [v for k, v in event["metadata"].items() if k not in ("from", "to", "reason")]
        self.assertTrue(any("admin-token" in str(v) for v in who),
                        f"no metadata names the admin token: {event['metadata']}")
        self.assertEqual(event["instance"], "itest-mode")
        self.assertEqual(event["count"], 1)
        self.assertIsInstance(event["message"], str)
        self.assertTrue(event["message"])

        # The same mode again: no change, no event, same version.
        again = self.put_mode(target, "again")
        self.assertEqual(again.status, 200, again)
        self.assertIs(again.json["changed"], False)
        self.assertEqual(again.json["mode"], target)
        self.assertEqual(again.json["version"], before["version"] + 1)
        self.assertEqual(self.switch_count(), switches + 1)

    def test_switch_without_reason(self):
        target = other(self.get_mode()["mode"])
        resp = self.put_mode(target)
        self.assertEqual(resp.status, 200, resp)
        self.assertIs(resp.json["changed"], True)

    def test_switch_via_cli_is_seen_by_api_and_logs(self):
        before = self.get_mode()
        target = other(before["mode"])
        reason = f"cli-{uuid.uuid4().hex[:8]}"
        result = self.server.cli(["mode", "set", target, "--reason", reason])
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], target)
        self.assertEqual(lines[1], f"switched; version {before['version'] + 1}")

        state = wait_until(self.get_mode, 3.0, f"the API to show {target}", interval=0.1,
                           until=lambda state: state["mode"] == target)
        self.assertEqual(state["mode"], target)
        self.assertEqual(state["version"], before["version"] + 1)

        got = self.server.cli(["mode", "get"])
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertEqual(got.stdout.splitlines()[0], target)

        logs = self.server.cli(["logs", "--type", "SWITCH", "--limit", "1"])
        self.assertEqual(logs.returncode, 0, logs.stderr)
        log_lines = [l for l in logs.stdout.splitlines() if l.strip()]
        self.assertEqual(len(log_lines), 1, logs.stdout)
        event_id, _, event_type, metadata = parse_log_line(log_lines[0])
        self.assertEqual(event_type, "SWITCH")
        self.assertIsNotNone(metadata, log_lines[0])
        self.assertEqual(metadata["reason"], reason)
        self.assertEqual(metadata["to"], target)

        api_event = self.logs(type="SWITCH", limit=1).json["events"][0]
        self.assertEqual(api_event["id"], event_id)
        self.assertEqual(api_event["metadata"]["reason"], reason)

        unchanged = self.server.cli(["mode", "set", target])
        self.assertEqual(unchanged.returncode, 0, unchanged.stderr)
        self.assertEqual(unchanged.stdout.splitlines()[:2],
                         [target, f"unchanged; version {before['version'] + 1}"])

    def test_invalid_mode_is_400_and_changes_nothing(self):
        before = self.get_mode()
        switches = self.switch_count()
        for bad in ("turbo", "async-queue", "sync_direct "):
            with self.subTest(mode=bad):
                self.assertProblem(self.put_mode(bad), 400, "mode_invalid", field="mode")
        self.assertEqual(self.get_mode()["version"], before["version"])
        self.assertEqual(self.switch_count(), switches)

    def test_pagination_walks_every_event_once(self):
        self.toggle(5)
        full = self.logs(type="SWITCH", limit=500)
        self.assertEqual(full.status, 200, full)
        everything = [e["id"] for e in full.json["events"]]
        self.assertGreaterEqual(len(everything), 5)
        self.assertEqual(everything, sorted(everything, reverse=True))
        self.assertIsNone(full.json["next_before_id"])

        walked = []
        params = {"type": "SWITCH", "limit": 2}
        for _ in range(len(everything) + 2):
            page = self.logs(**params)
            self.assertEqual(page.status, 200, page)
            ids = [e["id"] for e in page.json["events"]]
            self.assertLessEqual(len(ids), 2)
            walked.extend(ids)
            if len(ids) == 2:
                self.assertEqual(page.json["next_before_id"], ids[-1])
            else:
                self.assertIsNone(page.json["next_before_id"])
            if page.json["next_before_id"] is None:
                break
            params["before_id"] = page.json["next_before_id"]
        self.assertEqual(walked, everything)

    def test_default_limit_is_50(self):
        self.toggle(51)
        resp = self.logs()
        self.assertEqual(resp.status, 200, resp)
        events = resp.json["events"]
        self.assertEqual(len(events), 50)
        self.assertEqual(resp.json["next_before_id"], events[-1]["id"])
        self.assertEqual(len(self.logs(limit=500).json["events"]),
                         min(500, self.server.counts(("system_health_logs",))["system_health_logs"]))

    def test_type_filter(self):
        self.toggle(1)
        switch = self.logs(type="SWITCH", limit=500).json["events"]
        self.assertTrue(switch)
        self.assertTrue(all(e["type"] == "SWITCH" for e in switch))
        self.assertEqual(len(switch), self.switch_count())
        for event_type in ("INFO", "WARNING", "ERROR", "CRITICAL"):
            with self.subTest(event_type):
                resp = self.logs(type=event_type)
                self.assertEqual(resp.status, 200, resp)
                self.assertTrue(all(e["type"] == event_type for e in resp.json["events"]))

    def test_since_filter(self):
        self.toggle(1)
        newest = self.logs(limit=1).json["events"][0]
        created = newest["created_at"]
        self.assertRegex(created, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
        self.assertIn(newest["id"], [e["id"] for e in self.logs(since="2000-01-01").json["events"]])
        self.assertIn(newest["id"],
                      [e["id"] for e in self.logs(since="2000-01-01T00:00:00Z").json["events"]])
        future = self.logs(since="2999-01-01T00:00:00Z")
        self.assertEqual(future.status, 200, future)
        self.assertEqual(future.json["events"], [])
        self.assertIsNone(future.json["next_before_id"])
        # An event is at or after the start of its own second.
        whole_second = created[:19] + "Z"
        same_second = self.logs(since=whole_second).json["events"]
        self.assertIn(newest["id"], [e["id"] for e in same_second],
                      f"since={whole_second} left out an event created at {created}")
        self.assertIn(newest["id"], [e["id"] for e in self.logs(since=created).json["events"]])

    def test_limits_accepted(self):
        for limit in (1, 500):
            with self.subTest(limit=limit):
                resp = self.logs(limit=limit)
                self.assertEqual(resp.status, 200, resp)
                self.assertLessEqual(len(resp.json["events"]), limit)

    def test_bad_query_parameters(self):
        bad = [
            ("limit", "0"), ("limit", "501"), ("limit", "abc"), ("limit", "-1"), ("limit", "1.5"),
            ("limit", ""), ("type", "BOGUS"), ("type", ""), ("before_id", "0"),
            ("before_id", "abc"), ("before_id", "-3"), ("since", "yesterday"),
            ("since", "01/02/2024"),
        ]
        for name, value in bad:
            with self.subTest(f"{name}={value}"):
                resp = self.logs(**{name: value})
                self.assertProblem(resp, 400, "query_invalid", field=name)
        self.assertProblem(self.logs(colour="red"), 400, "unknown_field")
        self.assertProblem(self.logs(limit=5, sort="asc"), 400, "unknown_field")


if __name__ == "__main__":
    unittest.main()
