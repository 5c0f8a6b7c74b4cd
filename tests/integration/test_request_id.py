"""Request ids (issue 14, item 2; docs/api.md, X-Request-Id): every response
carries X-Request-Id, the caller's when it is usable (1 to 128 letters,
digits and "-_.:/+=@") and a new one otherwise; the id of the request that
made a job is kept with it and shows in the job, its timeline, its ERROR
event, the Telegram alert about it and the JSON log lines about it, so one
id ties an alert to the request that caused it."""

import json
import re
import secrets

from fake_telegram import FakeTelegram
from test_alerts import TOKEN, alert_server
from usher_harness import (ServerPerTestCase, ServerTestCase, raw_exchange, status_of_raw,
                           unique_email, wait_for_job, wait_until)

GENERATED = r"^[0-9a-f]{32}$"
HEADER = "X-Request-Id"


def request_id_of(resp):
    return resp.headers.get("x-request-id")


class RequestIdHeaderTest(ServerTestCase):
    server_name = "reqid"

    def get(self, path="/healthz", request_id=None, **kw):
        headers = {HEADER: request_id} if request_id is not None else None
        return self.server.request("GET", path, headers=headers, **kw)

    def test_a_usable_id_comes_back_as_sent(self):
        for given in ("abc-123", "6f1c2b1e-3c1d-4f5e-9a2b-0c1d2e3f4a5b", "x" * 128,
                      "a.b_c:d/e+f=g@h", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"):
            with self.subTest(given=given):
                self.assertEqual(request_id_of(self.get(request_id=given)), given)

    def test_without_one_each_response_gets_a_new_id(self):
        ids = [request_id_of(self.get()) for _ in range(3)]
        for rid in ids:
            self.assertRegex(rid or "", GENERATED)
        self.assertEqual(len(set(ids)), 3, ids)

    def test_an_unusable_id_is_replaced_not_refused(self):
        for given in ("x" * 129, "has space", 'quo"te', "semi;colon", "<script>", "é"):
            with self.subTest(given=given):
                resp = self.get(request_id=given)
                self.assertEqual(resp.status, 200, resp)
                self.assertRegex(request_id_of(resp) or "", GENERATED)

    def test_errors_carry_it_too(self):
        rid = "err-" + secrets.token_hex(4)
        self.assertProblem(self.get("/no/such/route", request_id=rid, token="admin"), 404,
                           "not_found")
        self.assertEqual(request_id_of(self.get("/no/such/route", request_id=rid)), rid)
        unauthorised = self.server.request("GET", "/api/v1/admin/jobs", headers={HEADER: rid})
        self.assertEqual(unauthorised.status, 401, unauthorised)
        self.assertEqual(request_id_of(unauthorised), rid)
        bad = self.server.request("POST", "/api/v1/users", body={"email": "not an email"},
                                  token="sales", headers={HEADER: rid})
        self.assertEqual(bad.status, 400, bad)
        self.assertEqual(request_id_of(bad), rid)

    def test_the_431_answer_carries_it(self):
        rid = "big-" + secrets.token_hex(4)
        payload = (f"GET /healthz HTTP/1.1\r\nHost: x\r\n{HEADER}: {rid}\r\n"
                   f"X-Padding: {'p' * 20000}\r\n\r\n").encode()
        data, _ = raw_exchange(self.server.port, payload)
        self.assertEqual(status_of_raw(data), 431, data[:200])
        self.assertIn(f"x-request-id: {rid}\r\n".lower(), data.decode("latin-1").lower())


class RequestIdJobTest(ServerPerTestCase):
    def created_with_id(self, server, rid):
        resp = server.create_user(email=unique_email("reqid"), headers={HEADER: rid})
        self.assertIn(resp.status, (201, 202), resp)
        self.assertEqual(request_id_of(resp), rid)
        return resp.json["job_id"]

    def test_inline_provisioning_keeps_it_in_the_job_and_the_timeline(self):
        server = self.new_server("reqid-sync", mode="sync_direct")
        rid = "sync-" + secrets.token_hex(6)
        job_id = self.created_with_id(server, rid)
        self.assertEqual(server.get(f"/api/v1/jobs/{job_id}", token="admin").json["request_id"],
                         rid)
        timeline = server.get(f"/api/v1/admin/jobs/{job_id}/timeline", token="admin")
        self.assertEqual(timeline.status, 200, timeline)
        self.assertEqual(timeline.json["job"]["request_id"], rid)
        requests = [e for e in timeline.json["entries"] if e["kind"] == "request"]
        self.assertEqual([e["request_id"] for e in requests], [rid])
        # Without a header the job keeps the id usher made and answered with.
        resp = server.create_user(email=unique_email("reqid-none"))
        self.assertEqual(resp.status, 201, resp)
        made = request_id_of(resp)
        self.assertRegex(made or "", GENERATED)
        self.assertEqual(server.get(f"/api/v1/jobs/{resp.json['job_id']}",
                                    token="admin").json["request_id"], made)

    def test_a_dead_job_names_it_in_its_event_alert_and_log_lines(self):
        fake = self.own(FakeTelegram(TOKEN))
        server = alert_server("reqid-dead", fake, mode="async_queue",
                              env={"JOB_MAX_ATTEMPTS": "2", "USHER_FAULT_AFTER": "account",
                                   "USHER_FAULT_MODE": "throw", "QUEUE_POLL_MS": "50",
                                   "JOB_BACKOFF_MS": "50", "LOG_FORMAT": "json"},
                              ALERT_THROTTLE_MS=0)
        self.own(server).start()
        rid = "checkout-" + secrets.token_hex(6)
        job_id = self.created_with_id(server, rid)
        dead = wait_for_job(server, job_id, "dead")
        self.assertEqual(dead["request_id"], rid)

        errors = server.get("/api/v1/admin/health/logs?type=ERROR", token="admin").json["events"]
        mine = [e for e in errors if e["metadata"].get("job_id") == job_id]
        self.assertEqual(len(mine), 1, errors)
        self.assertEqual(mine[0]["metadata"]["request_id"], rid)

        snap = fake.wait_for(lambda s: any(f"job {job_id} " in r.visible for r in s), timeout=20)
        alert = next(r for r in snap if f"job {job_id} " in r.visible)
        self.assertIn(f"\nRequest: {rid}\n", alert.visible + "\n")

        timeline = server.get(f"/api/v1/admin/jobs/{job_id}/timeline", token="admin").json
        self.assertEqual(timeline["job"]["request_id"], rid)

        # The worker's log line about each failed attempt carries it as a field.
        server.wait_for_log(f"job {job_id} attempt 2 failed")
        lines = [json.loads(line) for line in server.stderr_text().splitlines()
                 if line.startswith("{")]
        failed = [line for line in lines
                  if re.match(rf"job {job_id} attempt \d failed", line["message"])]
        self.assertEqual(len(failed), 2, failed)
        for line in failed:
            self.assertEqual(line["request_id"], rid)
            self.assertEqual(line["job_id"], job_id)
