"""The timeline (SPEC §8): GET /api/v1/admin/jobs/{id}/timeline, its by-email
form, `usher jobs show ID`, and GET /api/v1/whoami. A job that dies (fault
injection) with alerts going to a fake Bot API, then is retried and succeeds:
its timeline holds the request, both attempts, the ERROR and INFO events and
the delivered alerts, in time order."""

import json
import secrets
import unittest

from fake_telegram import FakeTelegram
from usher_harness import UsherServer, unique_email, wait_for_job, wait_until

TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
FAST = {"JOB_LEASE_MS": "1000", "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50",
        "ALERT_POLL_MS": "50", "ALERT_BACKOFF_MS": "200"}


class TimelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTelegram(TOKEN)
        cls.server = UsherServer("timeline", mode="async_queue",
                                 env={**FAST, "JOB_MAX_ATTEMPTS": "2",
                                      "USHER_FAULT_AFTER": "account", "USHER_FAULT_MODE": "throw"})
        cls.server.tokens["other"] = cls.server.create_token("sales_manager", "other-token")
        cls.server.env.update({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_CHAT_ID": "4242",
                               "TELEGRAM_API_URL": cls.fake.url})
        cls.server.start()
        cls.email = unique_email("story")
        created = cls.server.create_user(email=cls.email, headers={"Idempotency-Key": "k-story"})
        assert created.status == 202, created
        cls.job = created.json["job_id"]
        wait_for_job(cls.server, cls.job, "dead")
        cls.server.stop()
        del cls.server.env["USHER_FAULT_AFTER"]
        cls.server.start()
        retried = cls.server.request("POST", f"/api/v1/admin/jobs/{cls.job}/retry", token="admin")
        assert retried.status == 200, retried
        wait_for_job(cls.server, cls.job, "succeeded")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.fake.close()

    def timeline(self, token="admin", job=None):
        return self.server.get(f"/api/v1/admin/jobs/{job or self.job}/timeline", token=token)

    def wait_for_delivered_alert(self):
        return wait_until(lambda: self.timeline().json, 20, "a delivered alert in the timeline",
                          until=lambda body: any(e["kind"] == "alert" and e["delivered"]
                                                 for e in body["entries"]))

    def test_the_story_of_a_job_that_died_and_was_retried(self):
        body = self.wait_for_delivered_alert()
        self.assertEqual(body["job"]["id"], self.job)
        self.assertEqual(body["job"]["status"], "succeeded")
        self.assertEqual(body["job"]["created_by"], "sales-token (token 2)")
        entries = body["entries"]
        ats = [e["at"] for e in entries]
        self.assertEqual(ats, sorted(ats), "in time order")
        self.assertEqual(entries[0]["kind"], "request")
        request = entries[0]
        self.assertEqual(request["by"], "sales-token (token 2)")
        self.assertEqual(request["mode"], "async_queue")
        self.assertIs(request["idempotency_key"], True)
        self.assertIs(request["fallback"], False)

        attempts = [e for e in entries if e["kind"] == "attempt"]
        self.assertEqual([a["number"] for a in attempts], [1, 2, 3])
        self.assertEqual([a["outcome"] for a in attempts], ["failed", "dead", "succeeded"])
        self.assertIn("injected fault", attempts[0]["error"])
        self.assertIsNone(attempts[2]["error"])
        for a in attempts:
            self.assertGreaterEqual(a["duration_ms"], 0)
            self.assertTrue(a["worker"].startswith("itest-timeline:"), a)

        events = [e for e in entries if e["kind"] == "event"]
        self.assertEqual([e["type"] for e in events], ["ERROR", "INFO"])
        self.assertEqual(events[0]["details"]["job_id"], self.job)
        self.assertEqual(events[0]["count"], 1)
        alerts = [e for e in entries if e["kind"] == "alert"]
        self.assertEqual(len(alerts), 1, alerts)
        self.assertEqual(alerts[0]["chat_id"], "4242")
        self.assertEqual(alerts[0]["event_id"], events[0]["id"])
        self.assertIn(self.email, alerts[0]["text"])
        # The dead attempt, its ERROR event and alert, the retry, the success:
        # the ERROR event comes at or after the dead attempt began, and
        # nothing after the successful attempt began. (Entries in the same
        # millisecond are ordered attempts before events, so the retry's INFO
        # event and the attempt it led to may share a millisecond and then
        # show in that order: the CI run of 2026-12-02 saw it.)
        self.assertGreaterEqual(events[0]["at"], attempts[1]["at"])
        self.assertTrue(all(e["at"] <= attempts[2]["at"] for e in entries),
                        [(e["kind"], e["at"]) for e in entries])
        self.assertLessEqual(events[1]["at"], attempts[2]["at"])

    def test_sync_direct_requests_are_provisioned_inline(self):
        def set_mode(mode):
            answer = self.server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                                         body={"mode": mode, "reason": "timeline test"})
            self.assertEqual(answer.status, 200, answer)
        set_mode("sync_direct")
        try:
            created = self.server.create_user(email=unique_email("inline"))
            self.assertEqual(created.status, 201, created)
            body = self.timeline(job=created.json["job_id"]).json
            self.assertEqual(len(body["entries"]), 1, body)
            request = body["entries"][0]
            self.assertEqual(request["mode"], "sync_direct")
            self.assertIs(request["provisioned_inline"], True)
            self.assertIs(request["idempotency_key"], False)
        finally:
            set_mode("async_queue")

    def test_who_may_read_it(self):
        self.assertEqual(self.timeline(token="sales").status, 200, "the creator")
        other = self.timeline(token="other")
        self.assertEqual((other.status, other.code), (403, "forbidden"))
        self.assertEqual(self.server.get(f"/api/v1/admin/jobs/{self.job}/timeline").status, 401)
        missing = self.timeline(job=999999)
        self.assertEqual((missing.status, missing.code), (404, "job_not_found"))

    def test_by_email(self):
        found = self.server.get(f"/api/v1/admin/timeline?email={self.email.upper()}", token="admin")
        self.assertEqual(found.status, 200, found)
        self.assertEqual(found.json["job"]["id"], self.job)
        self.assertEqual(self.server.get(f"/api/v1/admin/timeline?email={self.email}",
                                         token="sales").status, 403)
        none = self.server.get(f"/api/v1/admin/timeline?email={unique_email('nobody')}", token="admin")
        self.assertEqual((none.status, none.code), (404, "job_not_found"))
        bad = self.server.get("/api/v1/admin/timeline?email=nope", token="admin")
        self.assertEqual((bad.status, bad.code), (400, "email_invalid"))
        self.assertEqual(self.server.get("/api/v1/admin/timeline", token="admin").code,
                         "field_required")

    def test_cli_jobs_show(self):
        self.wait_for_delivered_alert()
        shown = self.server.cli(["jobs", "show", str(self.job)])
        self.assertEqual(shown.returncode, 0, shown.stderr)
        lines = shown.stdout.splitlines()
        self.assertIn(f"job {self.job} {self.email}: succeeded", lines[0])
        self.assertIn("request  by sales-token (token 2), mode async_queue", lines[1])
        self.assertTrue(any("attempt  #2" in l and "dead" in l for l in lines), lines)
        self.assertTrue(any(" alert " in l and "chat 4242" in l for l in lines), lines)
        as_json = self.server.cli(["jobs", "show", str(self.job), "--json"])
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        self.assertEqual(json.loads(as_json.stdout)["job"]["id"], self.job)
        missing = self.server.cli(["jobs", "show", "999999"])
        self.assertNotEqual(missing.returncode, 0)
        self.assertTrue(missing.stderr.startswith("usher: "), missing.stderr)

    def test_whoami(self):
        me = self.server.get("/api/v1/whoami", token="sales")
        self.assertEqual(me.status, 200)
        self.assertEqual(me.json["name"], "sales-token")
        self.assertEqual(me.json["role"], "sales_manager")
        self.assertEqual(self.server.get("/api/v1/whoami", token="admin").json["role"], "admin")
        self.assertEqual(self.server.get("/api/v1/whoami").status, 401)


if __name__ == "__main__":
    unittest.main()
