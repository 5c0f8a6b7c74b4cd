"""Logs (issue 14, item 2; docs/configuration.md, LOG_FORMAT): with
LOG_FORMAT=json every line usher writes on stderr is one JSON object (time,
level, instance, message and the call's structured fields) whatever the text
holds, and the harness's check that no secret reaches a server's log
(usher_harness.UsherServer.assert_no_secrets_in_logs, run by every stop())
really fails on a leak."""

import json
import secrets

from fake_telegram import FakeTelegram, bad_request
from usher_harness import (ServerPerTestCase, UsherServer, remember_secret, secrets_in_text,
                           seen_secrets,
                           unique_email)

TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"
CHAT = "1001"
ISO_UTC_MS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
# What the Bot API answers reaches a log line: quotes, a backslash, newlines,
# a tab, control characters and non-ASCII text.
NASTY = 'Bad Request: "chat" not\nfound\r\n\tat \\x \u0001\u001f\u007f end Zoë ✓'
MODE = "/api/v1/admin/system/mode"


class JsonLogTest(ServerPerTestCase):
    def test_every_log_line_is_one_json_object_with_the_call_fields(self):
        fake = FakeTelegram(TOKEN)
        self.addCleanup(fake.close)
        fake.default(bad_request(NASTY))
        server = UsherServer("json-logs", env={"LOG_FORMAT": "json"})
        server.env.update({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_CHAT_ID": CHAT,
                           "TELEGRAM_API_URL": fake.url, "ALERT_POLL_MS": "50",
                           "ALERT_THROTTLE_MS": "0"})
        self.own(server).start()

        # A few requests: health, a user provisioned inline, activation and
        # login, a malformed body, an unknown route, and a mode switch whose
        # alert the Bot API rejects with NASTY (logged with its fields).
        self.assertEqual(server.healthz().status, 200)
        created = server.create_user(email=unique_email("json"))
        self.assertEqual(created.status, 201, created)
        password = f"pw-{secrets.token_hex(8)}"
        activated = server.request("POST", "/api/v1/auth/activate",
                                   body={"token": created.json["activation_token"],
                                         "password": password})
        self.assertEqual(activated.status, 200, activated)
        login = server.request("POST", "/api/v1/auth/login",
                               body={"email": created.json["email"], "password": password})
        self.assertEqual(login.status, 200, login)
        self.assertEqual(server.request("POST", "/api/v1/users", body='{"email": "\n\x01',
                                        headers={"Content-Type": "application/json"},
                                        token="sales").status, 400)
        self.assertEqual(server.get("/no/such/\"route\"", token="admin").status, 404)
        current = server.get(MODE, token="admin").json["mode"]
        switched = server.request("PUT", MODE, token="admin", body={
            "mode": "async_queue" if current == "sync_direct" else "sync_direct",
            "reason": 'json "logs" \\ Zoë'})
        self.assertEqual(switched.status, 200, switched)
        server.wait_for_log("Telegram rejected")
        self.assertEqual(server.stop(), 0)

        with open(server.stderr_path, "rb") as f:
            raw = f.read()
        self.assertTrue(raw.endswith(b"\n"), raw[-200:])
        lines = [json.loads(line.decode("utf-8")) for line in raw.split(b"\n")[:-1]]
        self.assertGreaterEqual(len(lines), 4, raw)
        for line in lines:
            self.assertIsInstance(line, dict)
            self.assertRegex(line["time"], f"^{ISO_UTC_MS}$")
            self.assertIn(line["level"], ("trace", "debug", "info", "warning", "error",
                                          "critical"))
            self.assertEqual(line["instance"], "itest-json-logs")
            self.assertIsInstance(line["message"], str)
        messages = [line["message"] for line in lines]
        self.assertTrue(any(m.startswith("usher ") and "listening on" in m for m in messages))
        self.assertEqual(messages[-1], "usher stopped")

        rejected = [line for line in lines if "Telegram rejected" in line["message"]]
        self.assertEqual(len(rejected), 1, messages)
        line = rejected[0]
        self.assertEqual(line["level"], "warning")
        self.assertIn(NASTY, line["message"])  # escaped on the way, equal once parsed
        self.assertEqual(line["description"], NASTY)
        self.assertEqual(line["chat_id"], CHAT)
        self.assertEqual(line["kind"], "SWITCH")
        self.assertEqual(line["http_status"], 400)
        self.assertIsInstance(line["outbox_id"], int)
        self.assertEqual(server.query("SELECT id FROM alert_outbox"), [(line["outbox_id"],)])

        # stdout is not a log: it holds the URL line the harness reads, only.
        with open(server.stdout_path, encoding="utf-8") as f:
            stdout_lines = f.read().splitlines()
        self.assertEqual(len(stdout_lines), 1, stdout_lines)
        self.assertRegex(stdout_lines[0], r"^usher listening on http://127\.0\.0\.1:\d+$")


class SecretCheckTest(ServerPerTestCase):
    def test_a_secret_the_tests_saw_in_a_server_log_fails_its_stop(self):
        server = self.new_server("secret-check")
        created = server.create_user(email=unique_email("leak"))
        self.assertEqual(created.status, 201, created)
        activation = created.json["activation_token"]
        server.stop()  # clean so far: stop() checked the log and passed
        with open(server.stderr_path, "a", encoding="utf-8") as f:
            f.write(f"2026-01-01T00:00:00.000Z info x pretend leak {activation}\n")
        with self.assertRaisesRegex(AssertionError, "secrets in the log") as caught:
            server.stop()
        self.assertNotIn(activation, str(caught.exception), "the failure repeats the secret")
        # The harness's own API tokens (from `usher token create`) are secrets too.
        with open(server.stderr_path, "a", encoding="utf-8") as f:
            f.write(f"Bearer {server.tokens['admin']}\n")
        with open(server.stderr_path, encoding="utf-8") as f:
            leaks = secrets_in_text(f.read(), server.secrets())
        self.assertEqual(len(leaks), 2, leaks)
        server.check_secrets = False  # what this test wrote, not usher

    def test_secrets_in_text_finds_each_secret_and_masks_it(self):
        remember_secret("x")  # too short to be told from ordinary text: ignored
        self.assertNotIn("x", seen_secrets())
        self.assertEqual(secrets_in_text("a\nfoo s3cr3t-value bar\nb", {"s3cr3t-value"}),
                         [("s3c…(12 chars)", "foo <s3c…(12 chars)> bar")])
        self.assertEqual(secrets_in_text("nothing here", {"s3cr3t-value"}), [])
