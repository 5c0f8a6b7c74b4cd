"""GET /metrics (issue 14 item 1): the Prometheus text format read by a real
parser (Debian's python3-prometheus-client), counters that move by exactly
what the test did, route labels that are templates, no email anywhere, and
METRICS_LISTEN serving /metrics on a listener of its own."""

import os
import re
import secrets
import subprocess
import unittest

from prometheus_client.parser import text_string_to_metric_families

from fake_telegram import FakeTelegram, ok, server_error
from redis_harness import RedisServer, redis_env, unique_prefix
from usher_harness import (USHER_BIN, ServerPerTestCase, ServerTestCase, UsherServer, http_request,
                           unique_email, wait_until)

REQUESTS = "usher_http_requests_total"
DURATION = "usher_http_request_duration_seconds"


def parse(text):
    """{family name: family} and {(sample name, sorted labels): value}."""
    families = {}
    samples = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families, samples


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


class MetricsScrape:
    """Scrapes and parses one server's /metrics on `port`."""

    def scrape(self, port=None):
        resp = http_request(port or self.server.port, "GET", "/metrics")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.content_type, "text/plain; version=0.0.4; charset=utf-8")
        text = resp.body.decode("utf-8")
        families, samples = parse(text)
        return text, families, samples


class MetricsTest(MetricsScrape, ServerTestCase):
    server_name = "metrics"
    server_mode = "sync_direct"

    def test_requests_are_counted_by_route_template_and_status(self):
        _, _, before = self.scrape()
        emails = [unique_email("metrics") for _ in range(3)]
        user_ids = []
        for email in emails:
            resp = self.server.create_user(email=email)
            self.assertEqual(resp.status, 201, resp)
            user_ids.append(resp.json["user_id"])
        self.assertEqual(self.server.get(f"/api/v1/users/{user_ids[0]}", token="sales").status, 200)
        self.assertEqual(self.server.get("/no/such/path").status, 404)
        self.assertEqual(self.server.get(f"/api/v1/users/{user_ids[1]}").status, 401)
        text, families, after = self.scrape()

        def moved(name, **labels):
            return after.get(key(name, **labels), 0) - before.get(key(name, **labels), 0)

        self.assertEqual(moved(REQUESTS, route="/api/v1/users", method="POST", status="201"), 3)
        self.assertEqual(moved(REQUESTS, route="/api/v1/users/:id", method="GET", status="200"), 1)
        self.assertEqual(moved(REQUESTS, route="/api/v1/users/:id", method="GET", status="401"), 1)
        self.assertEqual(moved(REQUESTS, route="unmatched", method="GET", status="404"), 1)
        # The scrape before this one was counted once it was answered.
        self.assertEqual(moved(REQUESTS, route="/metrics", method="GET", status="200"), 1)
        self.assertEqual(moved(DURATION + "_count", route="/api/v1/users"), 3)
        self.assertEqual(moved(DURATION + "_count", route="/api/v1/users/:id"), 2)
        self.assertEqual(after[key(DURATION + "_bucket", route="/api/v1/users", le="+Inf")],
                         after[key(DURATION + "_count", route="/api/v1/users")])
        # Inline creations went through the writer: batches were committed.
        self.assertGreater(moved("usher_writer_batch_size_count"), 0)
        self.assertGreater(moved("usher_writer_commit_seconds_count"), 0)

        routes = {dict(labels)["route"] for (name, labels) in after if name == REQUESTS}
        self.assertIn("/api/v1/users/:id", routes)
        for route in routes:
            self.assertTrue(route == "unmatched" or route.startswith("/"), route)
            self.assertIsNone(re.search(r"/\d+(/|$)", route), f"a path, not a template: {route}")
        self.assertNotIn("/no/such/path", text)
        for email in emails:
            self.assertNotIn(email, text)
        self.assertNotIn("@", text)
        for user_id in user_ids:
            self.assertNotIn(f"/{user_id}", text)

    def test_every_family_is_typed_and_process_metrics_are_read(self):
        _, families, samples = self.scrape()
        expected = {
            "usher_http_requests": "counter",
            DURATION: "histogram",
            "usher_build_info": "gauge",
            "usher_jobs": "counter",
            "usher_job_attempts": "counter",
            "usher_job_intake_to_success_seconds": "histogram",
            "usher_queue_depth": "gauge",
            "usher_queue_oldest_waiting_seconds": "gauge",
            "usher_queue_circuit_state": "gauge",
            "usher_queue_fallbacks": "counter",
            "usher_mode": "gauge",
            "usher_mode_switches": "counter",
            "usher_alerts": "counter",
            "usher_alert_outbox_depth": "gauge",
            "usher_writer_batch_size": "histogram",
            "usher_writer_commit_seconds": "histogram",
            "process_resident_memory_bytes": "gauge",
            "process_open_fds": "gauge",
            "process_threads": "gauge",
            "process_start_time_seconds": "gauge",
        }
        for name, kind in expected.items():
            self.assertIn(name, families)
            self.assertEqual(families[name].type, kind, name)
        build = [s for s in families["usher_build_info"].samples]
        self.assertEqual(len(build), 1)
        self.assertEqual(build[0].value, 1)
        self.assertRegex(build[0].labels["version"], r"^\d+\.\d+\.\d+")
        self.assertGreater(samples[key("process_resident_memory_bytes")], 1 << 20)
        self.assertGreaterEqual(samples[key("process_open_fds")], 3)
        self.assertGreaterEqual(samples[key("process_threads")], 2)
        self.assertEqual(samples[key("usher_mode", mode="sync_direct")], 1)
        self.assertEqual(samples[key("usher_mode", mode="async_queue")], 0)
        self.assertEqual(samples[key("usher_queue_circuit_state", state="closed")], 1)
        self.assertEqual(samples[key("usher_queue_circuit_state", state="open")], 0)

    def test_metrics_needs_no_token_and_refuses_nothing_else(self):
        self.assertEqual(self.server.get("/metrics").status, 200)
        self.assertEqual(self.server.get("/metrics", token="sales").status, 200)
        self.assertEqual(self.server.request("POST", "/metrics", body={}).status, 404)


class JobMetricsTest(MetricsScrape, ServerTestCase):
    """Queued jobs: a worker's success moves the job counters and the
    intake-to-success histogram by one each; a switch moves the mode."""

    server_name = "metrics-jobs"
    server_mode = "async_queue"
    # A CLI switch reaches the cached mode within half a second (SQLite has
    # no notification; the default lifetime is a minute).
    server_env = {"CONFIG_CACHE_TTL_MS": "500"}

    def test_a_queued_job_is_counted_once_when_it_succeeds(self):
        _, _, before = self.scrape()
        resp = self.server.create_user(email=unique_email("metrics-job"))
        self.assertEqual(resp.status, 202, resp)

        def succeeded():
            samples = self.scrape()[2]
            return samples if samples[key("usher_jobs_total", outcome="succeeded")] > \
                before[key("usher_jobs_total", outcome="succeeded")] else None
        after = wait_until(succeeded, what="usher_jobs_total{outcome=succeeded} to move")

        def moved(name, **labels):
            return after.get(key(name, **labels), 0) - before.get(key(name, **labels), 0)

        self.assertEqual(moved("usher_jobs_total", outcome="succeeded"), 1)
        self.assertEqual(moved("usher_jobs_total", outcome="failed_attempt"), 0)
        self.assertEqual(moved("usher_jobs_total", outcome="dead"), 0)
        self.assertEqual(moved("usher_job_attempts_total"), 1)
        self.assertEqual(moved("usher_job_intake_to_success_seconds_count"), 1)
        self.assertGreater(moved("usher_job_intake_to_success_seconds_sum"), 0)
        self.assertEqual(moved(REQUESTS, route="/api/v1/users", method="POST", status="202"), 1)

    def test_a_mode_switch_moves_the_mode_gauge_and_the_counter(self):
        _, _, before = self.scrape()
        self.assertEqual(before[key("usher_mode", mode="async_queue")], 1)
        switch = self.server.request("PUT", "/api/v1/admin/system/mode",
                                     body={"mode": "sync_direct", "reason": "metrics test"},
                                     token="admin")
        self.assertEqual(switch.status, 200, switch)
        self.addCleanup(self.server.request, "PUT", "/api/v1/admin/system/mode",
                        body={"mode": "async_queue", "reason": "metrics test"}, token="admin")
        _, _, after = self.scrape()
        self.assertEqual(after[key("usher_mode", mode="sync_direct")], 1)
        self.assertEqual(after[key("usher_mode", mode="async_queue")], 0)
        self.assertEqual(after[key("usher_mode_switches_total")]
                         - before[key("usher_mode_switches_total")], 1)
        self.assertEqual(after[key("usher_mode_version")] - before[key("usher_mode_version")], 1)

    def test_a_switch_made_elsewhere_moves_the_mode_version(self):
        _, _, before = self.scrape()
        current = self.server.get("/api/v1/admin/system/mode", token="admin").json["mode"]
        other = "sync_direct" if current == "async_queue" else "async_queue"
        self.server.cli_checked(["mode", "set", other, "--reason", "metrics test, CLI"])
        self.addCleanup(self.server.cli_checked, ["mode", "set", current, "--reason", "back"])

        # The gauges show the mode this instance holds, which it reloads when a
        # request needs it once CONFIG_CACHE_TTL_MS has passed (or at once on
        # a notification): a new user each round makes it look.
        def seen():
            self.assertIn(self.server.create_user(email=unique_email("metrics-cli")).status,
                          (201, 202))
            samples = self.scrape()[2]
            return samples if samples[key("usher_mode", mode=other)] == 1 else None
        after = wait_until(seen, what="the CLI's switch to reach the cached mode", interval=0.5)
        self.assertEqual(after[key("usher_mode_version")] - before[key("usher_mode_version")], 1)
        # Not made through this instance's API: the API's counter stays.
        self.assertEqual(after[key("usher_mode_switches_total")],
                         before[key("usher_mode_switches_total")])


class QueueDepthMetricsTest(MetricsScrape, ServerTestCase):
    """No worker: queued jobs stay, and the maintenance thread's refresh (every
    5 s, never on a scrape) shows them in the depth and the waiting age."""

    server_name = "metrics-depth"
    server_mode = "async_queue"
    server_env = {"START_WORKER": "false"}

    def test_queued_jobs_show_in_the_depth_and_the_waiting_age(self):
        for _ in range(2):
            resp = self.server.create_user(email=unique_email("metrics-depth"))
            self.assertEqual(resp.status, 202, resp)

        def refreshed():
            samples = self.scrape()[2]
            return samples if samples[key("usher_queue_depth")] == 2 else None
        after = wait_until(refreshed, what="usher_queue_depth to read 2")
        self.assertGreaterEqual(after[key("usher_queue_oldest_waiting_seconds")], 0)
        self.assertLess(after[key("usher_queue_oldest_waiting_seconds")], 60)


class AlertMetricsTest(MetricsScrape, ServerTestCase):
    """The outbox's deliveries: a SWITCH alert that fails once (a 500 from the
    fake Bot API) then goes through moves failed and sent by one each."""

    TOKEN = f"7{secrets.randbelow(10**9):09d}:AAE{secrets.token_urlsafe(26)}"

    @classmethod
    def make_server(cls):
        cls.fake = FakeTelegram(cls.TOKEN)
        cls.addClassCleanup(cls.fake.close)  # after the server stopped
        server = UsherServer("metrics-alerts", mode="sync_direct")
        # Alerts on from start() only: the set-up's own switch sends nothing.
        server.env.update({"TELEGRAM_BOT_TOKEN": cls.TOKEN, "TELEGRAM_ADMIN_CHAT_ID": "1001",
                           "TELEGRAM_API_URL": cls.fake.url, "ALERT_POLL_MS": "50",
                           "ALERT_BACKOFF_MS": "200", "ALERT_THROTTLE_MS": "0"})
        return server

    def test_a_retried_then_delivered_alert_counts_one_failure_and_one_send(self):
        _, _, before = self.scrape()
        self.fake.push(server_error(), ok())
        switch = self.server.request("PUT", "/api/v1/admin/system/mode",
                                     body={"mode": "async_queue", "reason": "metrics alerts"},
                                     token="admin")
        self.assertEqual(switch.status, 200, switch)
        self.fake.wait_delivered(1)

        def counted():
            samples = self.scrape()[2]
            sent = samples[key("usher_alerts_total", outcome="sent")]
            return samples if sent > before[key("usher_alerts_total", outcome="sent")] else None
        after = wait_until(counted, what="usher_alerts_total{outcome=sent} to move")

        def moved(outcome):
            return (after[key("usher_alerts_total", outcome=outcome)]
                    - before[key("usher_alerts_total", outcome=outcome)])

        self.assertEqual(moved("sent"), 1)
        self.assertEqual(moved("failed"), 1)
        self.assertEqual(moved("given_up"), 0)
        self.assertEqual(moved("rejected"), 0)
        self.assertIn(key("usher_alert_outbox_depth"), after)


class RedisMetricsTest(MetricsScrape, ServerPerTestCase):
    """The Redis queue's circuit and the fallback: Redis killed, one request
    provisioned inline moves the fallbacks by one and shows the circuit open."""

    def test_redis_down_opens_the_circuit_and_counts_the_fallback(self):
        redis = self.own(RedisServer("metrics-redis"))  # closed after the server
        self.server = self.own(UsherServer(
            "metrics-redis", mode="async_queue",
            env=redis_env(redis, unique_prefix("metrics"), REDIS_BREAKER_FAILURES=1,
                          REDIS_BREAKER_OPEN_MS=600000, REDIS_COMMAND_TIMEOUT_MS=300,
                          REDIS_CONNECT_TIMEOUT_MS=300))).start()
        _, _, before = self.scrape()
        self.assertEqual(before[key("usher_queue_circuit_state", state="closed")], 1)
        self.assertEqual(before[key("usher_queue_circuit_state", state="open")], 0)
        redis.kill()
        resp = self.server.create_user(email=unique_email("metrics-redis"))
        self.assertEqual(resp.status, 201, resp)
        self.assertIs(resp.json["fallback"], True)
        _, _, after = self.scrape()
        self.assertEqual(after[key("usher_queue_fallbacks_total")]
                         - before[key("usher_queue_fallbacks_total")], 1)
        self.assertEqual(after[key("usher_queue_circuit_state", state="open")], 1)
        self.assertEqual(after[key("usher_queue_circuit_state", state="closed")], 0)


class MetricsListenTest(MetricsScrape, ServerTestCase):
    """METRICS_LISTEN: /metrics only on its own listener."""

    server_name = "metrics-listen"
    server_env = {"METRICS_LISTEN": "127.0.0.1:0"}

    def metrics_port(self):
        def announced():
            with open(self.server.stdout_path, encoding="utf-8") as f:
                match = re.search(r"usher metrics on http://127\.0\.0\.1:(\d+)/metrics\n",
                                  f.read())
            return int(match.group(1)) if match else None
        return wait_until(announced, what="the metrics listener's address on stdout")

    def test_metrics_is_served_only_on_its_own_listener(self):
        port = self.metrics_port()
        self.assertNotEqual(port, self.server.port)
        self.assertEqual(self.server.get("/metrics").status, 404)
        _, _, before = self.scrape(port)
        self.assertEqual(self.server.healthz().status, 200)
        self.assertEqual(http_request(port, "GET", "/healthz").status, 404)
        self.assertEqual(http_request(port, "GET", "/api/v1/users").status, 404)
        _, _, after = self.scrape(port)
        # One registry: the API listener's requests show on the metrics one.
        moved = (after[key(REQUESTS, route="unmatched", method="GET", status="404")]
                 - before.get(key(REQUESTS, route="unmatched", method="GET", status="404"), 0))
        self.assertEqual(moved, 2)
        self.assertEqual(after[key(REQUESTS, route="/healthz", method="GET", status="200")]
                         - before.get(key(REQUESTS, route="/healthz", method="GET",
                                          status="200"), 0), 1)


class WorkerMetricsTest(MetricsScrape, ServerPerTestCase):
    """`usher worker` with METRICS_LISTEN serves its own /metrics: the jobs it
    ran, its process, the build."""

    def test_the_worker_process_counts_the_jobs_it_ran(self):
        server = self.new_server("metrics-worker", mode="async_queue",
                                 env={"START_WORKER": "false", "QUEUE_POLL_MS": "50"})
        env = {**server.env, "METRICS_LISTEN": "127.0.0.1:0"}
        stdout_path = os.path.join(server.dir, "worker.stdout.log")
        with open(stdout_path, "wb") as out, \
                open(os.path.join(server.dir, "worker.stderr.log"), "wb") as err:
            worker = subprocess.Popen([USHER_BIN, "worker"], env=env, cwd=server.dir, stdout=out,
                                      stderr=err, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: worker.poll() is None and worker.kill())

        def announced():
            with open(stdout_path, encoding="utf-8") as f:
                match = re.search(r"usher metrics on http://127\.0\.0\.1:(\d+)/metrics\n",
                                  f.read())
            return int(match.group(1)) if match else None
        port = wait_until(announced, what="the worker's metrics address on stdout")
        _, _, before = self.scrape(port)
        self.assertEqual([value for (name, _), value in before.items()
                          if name == "usher_build_info"], [1])
        self.assertGreater(before[key("process_resident_memory_bytes")], 0)
        self.assertEqual(before[key("usher_queue_circuit_state", state="closed")], 1)
        self.assertEqual(before.get(key("usher_jobs_total", outcome="succeeded"), 0), 0)

        for _ in range(3):
            self.assertEqual(server.create_user(email=unique_email("metrics-w")).status, 202)

        def counted():
            samples = self.scrape(port)[2]
            return samples if samples.get(key("usher_jobs_total", outcome="succeeded")) == 3 \
                else None
        after = wait_until(counted, what="the worker to count 3 succeeded jobs")
        self.assertEqual(after[key("usher_job_attempts_total")], 3)
        self.assertEqual(after[key("usher_job_intake_to_success_seconds_count")], 3)
        # Only /metrics, and no request of serve's API counts here.
        other = http_request(port, "GET", "/healthz")
        self.assertEqual(other.status, 404)
        self.assertRegex(other.headers.get("x-request-id", ""), r"^[0-9a-f]{32}$")
        self.assertNotIn(key(REQUESTS, route="/api/v1/users", method="POST", status="202"), after)
        worker.terminate()
        self.assertEqual(worker.wait(timeout=15), 0)


if __name__ == "__main__":
    unittest.main()
