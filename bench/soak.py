"""A bounded soak with chaos, on loopback only (issue 15, item 3); run through
bench/soak.sh DURATION [--database postgresql].

One `usher serve` (with its worker) and one `usher worker` on a temporary
SQLite database (or, with --database postgresql, a throw-away PostgreSQL
cluster of its own: tests/integration/pg_harness.py) and a real
redis-server, alerts to a fake Bot API. For
DURATION seconds: creates with and without an Idempotency-Key, replays of
keyed creates, reads (lookups, job status, queue overview), logins (right and
wrong) and mode flips, while a schedule (fractions of DURATION) injects faults:

    0.10 redis-server SIGKILL      0.20 redis-server restarted (empty)
    0.30 FLUSHALL                  0.40 the `usher worker` SIGKILLed (0.45 restarted)
    0.50 Bot API answers 429       0.55 redis-server SIGKILL   0.62 Bot API answers 500
    0.65 redis-server restarted    0.72 Bot API hangs          0.75 redis-server SIGKILL
    0.82 redis-server restarted    0.85 Bot API answers again

(three outages, the last two alerted while the Bot API fails). On PostgreSQL
also, between the FLUSHALL and the worker's SIGKILL:

    0.33 PostgreSQL shut down (fast: sessions ended, as `pg_ctl stop -m fast`)
    0.38 PostgreSQL started again (same port; usher reconnects by itself)

While it is down every write, read and login answers 503 with Retry-After
(docs/operations.md "Running on PostgreSQL"); a create whose COMMIT was cut
may have been committed although it answered 503, so an account for an
email that was answered 503 is allowed (and counted), any other is not.

At the end it proves, from the database and the answers:
- every 2xx user exists exactly once (one account per email, a replay names
  the same user or job);
- no 5xx other than documented 503s (problem+json with a code, or /readyz's
  not_ready), each with Retry-After;
- every job succeeded, or is dead with a reason (last_error);
- Bot API messages about queue outages: at most 3 per outage (CRITICAL rows);
- usher serve's anonymous RSS (RssAnon: heap and stacks, what a leak
  grows; shared libraries loaded on first use are file-backed) flat: the
  mean of the last quarter of the run within 10 % of the mean of its second
  quarter (for 60 s: 45-60 s against 15-30 s; the
  issue's "last minute against the second minute" for a 10-minute run would
  leave no first minute's warm-up out of a 60-second one); 25 % or 8 MiB,
  whichever is more, for runs under 5 minutes, not checked under a
  sanitizer (RSS_TOLERANCE below).

Exit status 0 when every check holds; the figures are printed either way.
"""

import json
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import fake_telegram  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402
from redis_harness import FAST_REDIS, RedisServer, WorkerProcess, unique_prefix  # noqa: E402
from usher_harness import UsherServer, unique_email, wait_until  # noqa: E402

DATABASES = ("sqlite", "postgresql")

TOKEN = "7123456789:AAEsoak-" + uuid.uuid4().hex[:20]
CHAT = "1001"
USERS = "/api/v1/users"
CREATE_CLIENTS = 6
# RSS: the last quarter of the run within 10 % of the second quarter (the
# issue's measure, for runs of 5 minutes and more). A shorter run starts
# from an empty database: the SQLite page caches (2 MiB per connection by
# default, one per pool thread, the writer and maintenance) and malloc's
# arenas are still filling in its first minute, so there the bound is 25 %
# (6 MiB on 24 MiB: about 180 bytes kept per request of a 60 s run would
# still fail it). Under a sanitizer RSS measures the sanitizer (ASan's
# quarantine keeps freed memory), so it is printed, not checked.
RSS_TOLERANCE = 0.10
RSS_TOLERANCE_SHORT = 0.25
# ... or this much, whichever is more, in a short run: its second quarter is
# still warming up (SQLite's page caches, 2 MiB per connection, and malloc's
# arenas fill during the first minute; a 10-minute run is flat after it).
RSS_WARM_UP_KIB = 8 * 1024
SHORT_RUN_S = 300
SANITIZED = bool(os.environ.get("USHER_SANITIZE"))


class Soak:
    def __init__(self, duration, database="sqlite"):
        self.duration = duration
        self.database = database
        self.lock = threading.Lock()
        self.answers = []   # (kind, status, detail, has Retry-After)
        self.created = {}   # email -> (status, user_id, job_id)
        self.refused = set()  # emails whose create answered 503
        self.replays = []   # (email, first json, replay json)
        self.rss = []       # (second, KiB)
        self.rss_anon = []  # (second, KiB): RssAnon
        self.events = []
        self.stopping = threading.Event()
        self.fake = FakeTelegram(TOKEN)
        self.redis = RedisServer("soak-redis")
        self.pg = None
        pg = None
        if database == "postgresql":
            from pg_harness import PostgresCluster  # noqa: PLC0415 (needs psycopg2)
            self.pg = PostgresCluster("soak-pg")
            pg = (self.pg, self.pg.create_database("soak"))
        env = {"REDIS_URL": self.redis.url, "REDIS_PREFIX": unique_prefix("soak"), **FAST_REDIS,
               "REDIS_COMMAND_TIMEOUT_MS": 300, "REDIS_CONNECT_TIMEOUT_MS": 300,
               "JOB_LEASE_MS": 3000, "ALERT_THROTTLE_MS": 60000,
               "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_CHAT_ID": CHAT,
               "TELEGRAM_API_URL": self.fake.url, "ALERT_POLL_MS": 100, "ALERT_BACKOFF_MS": 200,
               "TELEGRAM_TIMEOUT_MS": 2000, "TELEGRAM_CONNECT_TIMEOUT_MS": 1000}
        self.server = UsherServer("soak", mode="async_queue", env=env, pg=pg)
        self.server.start()
        self.worker = WorkerProcess(self.server, name="soak-worker")
        self.password = "soak-password-" + uuid.uuid4().hex[:8]
        self.login_email = self.activated_account()

    def activated_account(self):
        email = unique_email("soaklogin")
        resp = self.server.create_user(email=email)
        assert resp.status in (201, 202), resp
        token = resp.json["activation_token"]
        job = resp.json.get("job_id")
        wait_until(lambda: self.server.get(f"/api/v1/jobs/{job}", token="admin"), 30,
                   "the login account's job", until=lambda r: r.json.get("status") == "succeeded")
        act = self.server.request("POST", "/api/v1/auth/activate",
                                  body={"token": token, "password": self.password})
        assert act.status == 200, act
        with self.lock:
            self.created[email] = (resp.status, resp.json.get("user_id"), job)
        return email

    def note(self, kind, status, detail="", resp=None):
        retry_after = resp is not None and "retry-after" in resp.headers
        if isinstance(detail, bytes):  # a body: the checks look for text in it
            detail = detail.decode("utf-8", "replace")
        with self.lock:
            self.answers.append((kind, status, detail, retry_after))

    # --- load ------------------------------------------------------------------
    def creates(self, i):
        n = 0
        while not self.stopping.is_set():
            n += 1
            email = unique_email(f"soak{i}")
            keyed = n % 3 == 0
            headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"} if keyed else None
            try:
                first = self.server.create_user(email=email, headers=headers)
            except OSError as e:
                self.note("create", None, repr(e))
                continue
            self.note("create", first.status, first.body[:200], first)
            if first.status in (201, 202):
                with self.lock:
                    self.created[email] = (first.status, first.json.get("user_id"),
                                           first.json.get("job_id"))
                if keyed:
                    try:
                        again = self.server.create_user(email=email, headers=headers)
                    except OSError as e:
                        self.note("replay", None, repr(e))
                        continue
                    self.note("replay", again.status, again.body[:200], again)
                    with self.lock:
                        self.replays.append((email, first.json, again.json, again.status))
            elif first.status == 503:
                with self.lock:
                    self.refused.add(email)

    def reads(self):
        while not self.stopping.is_set():
            with self.lock:
                sample = list(self.created.items())[-5:]
            for email, (_, _, job) in sample:
                for path, token in ((f"{USERS}?email={email}", "sales"),
                                    (f"/api/v1/jobs/{job}", "admin"),
                                    ("/api/v1/admin/queue", "admin"), ("/readyz", None)):
                    try:
                        r = self.server.get(path, token=token)
                        self.note("read", r.status, r.body[:200], r)
                    except OSError as e:
                        self.note("read", None, repr(e))
            self.stopping.wait(0.05)

    def logins(self):
        n = 0
        while not self.stopping.is_set():
            n += 1
            right = n % 4 == 0
            body = {"email": self.login_email if right else "nobody-soak@example.com",
                    "password": self.password if right else "wrong-password"}
            try:
                r = self.server.request("POST", "/api/v1/auth/login", body=body)
                self.note("login", r.status, r.body[:200], r)
            except OSError as e:
                self.note("login", None, repr(e))
            self.stopping.wait(0.2)

    def mode_flips(self):
        modes = ["sync_direct", "async_queue"]
        n = 0
        while not self.stopping.wait(max(2.0, self.duration / 12)):
            mode = modes[n % 2]
            n += 1
            try:
                r = self.server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                                        body={"mode": mode, "reason": f"soak flip {n}"})
                self.note("mode", r.status, r.body[:200], r)
            except OSError as e:
                self.note("mode", None, repr(e))

    def sample_rss(self):
        # VmRSS, and RssAnon: the anonymous part (heap, stacks), which is
        # what a leak grows. The file-backed rest is mostly shared libraries'
        # pages, and libcurl with its libraries is mapped by the first
        # Telegram send, whenever the schedule's first alert goes out.
        started = time.monotonic()
        while not self.stopping.wait(1.0):
            try:
                with open(f"/proc/{self.server.proc.pid}/status") as f:
                    fields = {line.split(":")[0]: line.split()[1] for line in f
                              if line.startswith(("VmRSS:", "RssAnon:"))}
                kib, anon = int(fields["VmRSS"]), int(fields["RssAnon"])
            except (OSError, KeyError, ValueError):
                continue
            self.rss.append((time.monotonic() - started, kib))
            self.rss_anon.append((time.monotonic() - started, anon))

    # --- faults ----------------------------------------------------------------
    def schedule(self):
        d = self.duration
        ok, limited = fake_telegram.ok(), fake_telegram.too_many(1)
        failing, hanging = fake_telegram.server_error(), fake_telegram.hang(5.0)
        database = []
        if self.pg is not None:
            database = [(0.33 * d, "PostgreSQL fast shutdown", lambda: self.pg.stop("fast")),
                        (0.38 * d, "PostgreSQL started", self.pg.start)]
        return [
            (0.10 * d, "redis-server SIGKILL", self.redis.kill),
            (0.20 * d, "redis-server restarted", self.redis.restart),
            (0.30 * d, "FLUSHALL", lambda: self.redis.command("FLUSHALL")),
            *database,
            (0.40 * d, "usher worker SIGKILL", lambda: self.worker.proc.send_signal(signal.SIGKILL)),
            (0.45 * d, "usher worker restarted",
             lambda: setattr(self, "worker", WorkerProcess(self.server, name="soak-worker"))),
            # Outages while the Bot API fails, so that their alerts meet the faults.
            (0.50 * d, "Bot API answers 429", lambda: self.fake.default(limited)),
            (0.55 * d, "redis-server SIGKILL", self.redis.kill),
            (0.62 * d, "Bot API answers 500", lambda: self.fake.default(failing)),
            (0.65 * d, "redis-server restarted", self.redis.restart),
            (0.72 * d, "Bot API hangs", lambda: self.fake.default(hanging)),
            (0.75 * d, "redis-server SIGKILL", self.redis.kill),
            (0.82 * d, "redis-server restarted", self.redis.restart),
            (0.85 * d, "Bot API answers again", lambda: self.fake.default(ok)),
        ]

    def run(self):
        threads = [threading.Thread(target=self.creates, args=(i,), daemon=True)
                   for i in range(CREATE_CLIENTS)]
        threads += [threading.Thread(target=f, daemon=True)
                    for f in (self.reads, self.logins, self.mode_flips, self.sample_rss)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for at, name, action in self.schedule():
            self.stopping.wait(max(0.0, started + at - time.monotonic()))
            print(f"  {time.monotonic() - started:5.1f} s: {name}", flush=True)
            action()
            self.events.append((at, name))
        self.stopping.wait(max(0.0, started + self.duration - time.monotonic()))
        self.stopping.set()
        for t in threads:
            t.join(30)
        hung = [t for t in threads if t.is_alive()]
        # Back to normal for the drain: the queue and the Bot API answer.
        self.fake.default(fake_telegram.ok())
        self.server.request("PUT", "/api/v1/admin/system/mode", token="admin",
                            body={"mode": "async_queue", "reason": "soak over"})
        return hung

    # --- checks ----------------------------------------------------------------
    def check(self, hung):
        failures = []
        server = self.server

        def expect(ok, what):
            print(f"  [{'ok' if ok else 'FAILED'}] {what}")
            if not ok:
                failures.append(what)

        expect(not hung, f"every client thread finished ({len(hung)} hung)")
        by_kind = {}
        for kind, status, _, _ in self.answers:
            by_kind.setdefault(kind, {}).setdefault(status, 0)
            by_kind[kind][status] += 1
        print(f"  answers: {json.dumps({k: {str(s): n for s, n in v.items()} for k, v in by_kind.items()})}")
        transport = [a for a in self.answers if a[1] is None]
        expect(not transport, f"no transport errors ({len(transport)}, e.g. {transport[:2]})")
        bad5xx = [a for a in self.answers if a[1] is not None and a[1] >= 500
                  and not (a[1] == 503 and a[3] and
                           ("\"code\"" in a[2] or "\"not_ready\"" in a[2]))]
        expect(not bad5xx, f"no 5xx but documented 503s ({len(bad5xx)}, e.g. {bad5xx[:2]})")

        # Drain: no job queued or running (bounded).
        try:
            wait_until(lambda: server.query("SELECT COUNT(*) FROM jobs WHERE status IN "
                                            "('queued', 'running')")[0][0], 90.0,
                       "the jobs to drain", until=lambda n: n == 0, interval=0.5)
            drained = True
        except AssertionError as e:
            drained = False
            print(f"  {e}")
        expect(drained, "every job finished within 90 s of the end")
        statuses = dict(server.query("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        print(f"  jobs: {statuses}")
        reasonless = server.query("SELECT COUNT(*) FROM jobs WHERE status = 'dead' AND "
                                  "(last_error IS NULL OR last_error = '')")[0][0]
        expect(set(statuses) <= {"succeeded", "dead"} and reasonless == 0,
               "every job succeeded or is dead with a reason")

        accounts = dict(server.query("SELECT email_normalized, COUNT(*) FROM accounts "
                                     "GROUP BY email_normalized"))
        missing = [e for e in self.created if accounts.get(e) != 1]
        expect(not missing, f"every 2xx user exists exactly once ({len(self.created)} users; "
               f"{len(missing)} not, e.g. {[(e, accounts.get(e)) for e in missing[:3]]})")
        extra = [e for e in accounts if e not in self.created and e not in self.refused]
        cut = [e for e in accounts if e not in self.created and e in self.refused]
        expect(not extra, f"no account nobody was told about ({len(extra)}; "
               f"{len(cut)} answered 503 with the COMMIT cut, allowed)")
        jobs_per_email = dict(server.query("SELECT email_normalized, COUNT(*) FROM jobs WHERE "
                                           "status = 'succeeded' GROUP BY email_normalized"))
        twice = [e for e, n in jobs_per_email.items() if n != 1]
        expect(not twice, f"one succeeded job per email ({len(twice)} with more)")
        # A replay answered 503 (PostgreSQL down: it could not be looked up)
        # is one of the documented 503s counted above, not a mismatch.
        mismatched = [(e, a, b) for e, a, b, s in self.replays
                      if s not in (201, 202, 409, 503) or
                      (s in (201, 202) and (a.get("job_id"), a.get("user_id")) !=
                       (b.get("job_id"), b.get("user_id")))]
        expect(not mismatched, f"every replay names the first answer's job and user "
               f"({len(self.replays)} replays, {len(mismatched)} not, e.g. {mismatched[:2]})")

        # Alerts: messages about queue outages, at most 3 per outage.
        wait_until(server.alerts_settled, 60.0, "the alert outbox to settle", interval=0.5)
        critical_rows = server.query("SELECT COUNT(*) FROM system_health_logs "
                                     "WHERE event_type = 'CRITICAL'")[0][0]
        firsts = [r.visible.split("\n", 1)[0] for r in self.fake.delivered() if r.visible]
        outage_messages = [f for f in firsts if "CRITICAL" in f or "RESOLVED" in f]
        refused = {}
        for r in self.fake.snapshot():
            refused[str(r.status)] = refused.get(str(r.status), 0) + 1
        print(f"  Bot API: {len(self.fake.snapshot())} requests {refused}, {len(firsts)} delivered; "
              f"outage messages {outage_messages}; CRITICAL rows {critical_rows}")
        expect(len(outage_messages) <= 3 * max(1, critical_rows),
               "at most 3 Bot API messages per outage")

        # RSS: the last quarter against the second quarter, of VmRSS (shown)
        # and of its anonymous part (checked: see sample_rss).
        d = self.duration

        def quarters(samples):
            second = [kib for t, kib in samples if d * 0.25 <= t < d * 0.5]
            last = [kib for t, kib in samples if t >= d * 0.75]
            return (statistics.mean(second), statistics.mean(last)) if second and last else None

        total, anon = quarters(self.rss), quarters(self.rss_anon)
        if total and anon:
            for name, (a, b) in (("RSS", total), ("anonymous RSS", anon)):
                print(f"  {name}: {a / 1024:.1f} MiB over {d * 0.25:.0f}-{d * 0.5:.0f} s, "
                      f"{b / 1024:.1f} MiB over {d * 0.75:.0f}-{d:.0f} s ({(b - a) / a * 100:+.1f} %)")
            print(f"  RSS peak {max(k for _, k in self.rss) / 1024:.1f} MiB")
            tolerance = RSS_TOLERANCE_SHORT if d < SHORT_RUN_S else RSS_TOLERANCE
            allowance = RSS_WARM_UP_KIB if d < SHORT_RUN_S else 0
            a, b = anon
            if SANITIZED:
                print(f"  RSS not checked: built with USHER_SANITIZE={os.environ['USHER_SANITIZE']}")
            else:
                expect(b - a <= max(a * tolerance, allowance),
                       f"anonymous RSS flat (within {tolerance:.0%}"
                       + (f" or {allowance / 1024:.0f} MiB)" if allowance else ")"))
        else:
            expect(False, "RSS sampled")
        expect(server.alive(), "usher serve still running")
        return failures

    def close(self):
        closers = [self.worker.stop, self.server.close, self.redis.close, self.fake.close]
        if self.pg is not None:
            closers.append(self.pg.close)
        for closer in closers:
            try:
                closer()
            except Exception as e:  # noqa: BLE001 - best effort at the end
                print(f"  cleanup: {e!r}")


def main():
    # `timeout` (bench/soak.sh) stops a run that overstays with SIGTERM: exit
    # through the cleanups, which stop every process the soak started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    args = sys.argv[1:]
    database = os.environ.get("USHER_SOAK_DATABASE", "sqlite")
    if "--database" in args:
        i = args.index("--database")
        database = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    usage = "usage: bench/soak.sh [DURATION (10-3600 seconds)] [--database sqlite|postgresql]"
    try:
        duration = float(args[0]) if args else 60.0
    except ValueError:
        duration = 0.0
    if not 10 <= duration <= 3600 or len(args) > 1 or database not in DATABASES:
        print(usage, file=sys.stderr)
        return 2
    print(f"soak: {duration:.0f} s on {database}, {os.cpu_count()} cores, load average "
          f"{open('/proc/loadavg').read().split()[:3]}", flush=True)
    began = time.monotonic()
    soak = Soak(duration, database)
    phases = [("start-up", time.monotonic())]
    try:
        hung = soak.run()
        phases.append(("load", time.monotonic()))
        failures = soak.check(hung)
        phases.append(("drain and checks", time.monotonic()))
    finally:
        soak.close()
        phases.append(("cleanup", time.monotonic()))
    spent, last = [], began
    for name, at in phases:
        spent.append(f"{name} {at - last:.1f} s")
        last = at
    print(f"soak: wall time {last - began:.1f} s ({', '.join(spent)})")
    print("soak: " + ("passed" if not failures else f"FAILED: {failures}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
