"""Scale-out on PostgreSQL (issue 12 item 4): three `usher serve` and two
`usher worker` processes on one throw-away PostgreSQL, once with the embedded
(database) queue and once with Redis, under concurrent load: new users with
and without an Idempotency-Key, the same email again (also in another case,
also sent to the three servers at the same moment) and replays of keys.
During the load one worker process kills itself (SIGKILL, USHER_FAULT_AFTER)
after each step of a job in turn -- claim, account, profile,
before_complete, after_commit -- and is started again each time, and
PostgreSQL is shut down and started again (fast shutdown) half-way.

Proven at the end, from the answers and the database:

- every answer is 201/202, 409 (`user_exists`), or 503 with Retry-After
  while PostgreSQL was down (never another 5xx, a transport error or an
  answer slower than SPEC's 10 s);
- per email at most one request was accepted (2xx) -- an idempotent replay
  answers the first request's status and body again, without the activation
  token --, and every accepted email is exactly one account with one
  profile and one activation token, its job succeeded pointing at it;
  an account without a 2xx exists only where a request got 503 (a cut
  COMMIT may have committed: SPEC allows it, a retry answers 409);
- every job is succeeded, or dead with its reason; nothing is left queued or
  running after a bounded wait;
- every job's attempt count is explained. The test adds an audit trigger to
  its throw-away database (`scale_audit`, written in each transaction that
  changes a job's status or attempts, so it holds exactly the committed
  transitions): each job's attempts equal its claims, and every attempt that
  did not end in success was either claimed by a worker process the test
  killed, or was in flight when PostgreSQL went down. Anything else -- a
  lease that expired under a live worker, a duplicate delivery that counted
  an attempt -- fails the test.

Always runs on a PostgreSQL (and a Redis) of its own, which it stops and
starts: a missing PostgreSQL or redis-server fails, never skips.
"""

import collections
import random
import signal
import sys
import threading
import time
import unittest
import uuid

from pg_harness import PostgresCluster
from redis_harness import RedisServer, WorkerProcess, redis_env, sibling, unique_prefix
from usher_harness import ServerPerTestCase, UsherServer, http_request, wait_until

STEPS = ("claim", "account", "profile", "before_complete", "after_commit")
BOUND = 10.0  # SPEC §3: 503 with Retry-After within 10 s, never a hang
# A request that started this long after every server answered /readyz 200
# again must not get 503 (connections broken by the restart are dropped on
# first use; that first use may still fail).
RECOVERY_GRACE = 5.0
CLIENTS = 8
LEASE_MS = 4000
SETTINGS = {
    # Short leases, polls and backoff, so that a killed worker's jobs come back
    # within seconds; long enough that a loaded machine does not let a live
    # worker's lease expire (which the attempt check would flag).
    "JOB_LEASE_MS": str(LEASE_MS),
    "QUEUE_POLL_MS": "100",
    "JOB_BACKOFF_MS": "100",
    # Kills and the restart cost attempts; no job may die of them.
    "JOB_MAX_ATTEMPTS": "10",
    # Small claims, so that the five processes share the work.
    "JOB_CLAIM_BATCH": "8",
    "WORKER_CONCURRENCY": "2",
    "BLOCKING_THREADS": "2",
    "DB_BUSY_TIMEOUT_MS": "2000",
}
FULL_NAME = "Scale Buyer"

# Every committed change of a job's status or attempts, with the time it was
# made (PostgreSQL's clock, seconds since the epoch like Python's time.time()).
AUDIT_SQL = """
CREATE TABLE scale_audit (
  id BIGSERIAL PRIMARY KEY,
  job_id BIGINT NOT NULL,
  at DOUBLE PRECISION NOT NULL DEFAULT EXTRACT(EPOCH FROM clock_timestamp()),
  old_status TEXT, new_status TEXT, old_attempts INTEGER, new_attempts INTEGER,
  old_owner TEXT, new_owner TEXT, last_error TEXT);
CREATE FUNCTION scale_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO scale_audit (job_id, new_status, new_attempts, new_owner, last_error)
    VALUES (NEW.id, NEW.status, NEW.attempts, NEW.lease_owner, NEW.last_error);
  ELSIF OLD.status IS DISTINCT FROM NEW.status OR OLD.attempts IS DISTINCT FROM NEW.attempts THEN
    INSERT INTO scale_audit (job_id, old_status, new_status, old_attempts, new_attempts,
                             old_owner, new_owner, last_error)
    VALUES (NEW.id, OLD.status, NEW.status, OLD.attempts, NEW.attempts, OLD.lease_owner,
            NEW.lease_owner, NEW.last_error);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER scale_audit AFTER INSERT OR UPDATE ON jobs
  FOR EACH ROW EXECUTE FUNCTION scale_audit_row();
"""

Exchange = collections.namedtuple(
    "Exchange", "kind email sent key serve status json retry_after started ended error")


def instance_of(owner):
    """A lease owner is INSTANCE:PID:RANDOM:THREAD (worker.cpp), or `inline`."""
    return (owner or "").split(":", 1)[0]


class Load:
    """CLIENTS threads sending a mix of requests to the three servers back to
    back until stop(); every exchange is kept."""

    def __init__(self, serves, seed):
        self.serves = serves
        self.seed = seed
        self.exchanges = []
        self.emails = []       # every email sent, as sent
        self.replayable = []   # keyed exchanges that got a 2xx
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(BOUND * 3)
        assert not any(t.is_alive() for t in self.threads), "a client hung"

    def count(self, predicate=lambda e: True):
        with self.lock:
            return sum(1 for e in self.exchanges if predicate(e))

    def post(self, kind, email, key=None, serve=None, rnd=None):
        serve = rnd.randrange(len(self.serves)) if serve is None else serve
        headers = {"Idempotency-Key": key} if key else None
        started = time.time()
        try:
            resp = self.serves[serve].create_user(email=email, full_name=FULL_NAME,
                                                  headers=headers)
            ex = Exchange(kind, email.strip().lower(), email, key, serve, resp.status, resp.json,
                          "retry-after" in resp.headers, started, time.time(), None)
        except OSError as e:  # a hang (timeout) or a dropped connection: a failure
            ex = Exchange(kind, email.strip().lower(), email, key, serve, None, None, False, started,
                          time.time(), repr(e))
        with self.lock:
            self.exchanges.append(ex)
            if kind in ("new", "keyed", "race"):
                self.emails.append(email)
            if key and ex.status in (201, 202):
                self.replayable.append(ex)
        return ex

    def run(self, index):
        rnd = random.Random(f"{self.seed}-{index}")
        while not self.stopping.is_set():
            pick = rnd.random()
            with self.lock:
                known = list(self.emails[-200:])
                replayable = list(self.replayable[-200:])
            if pick < 0.40:
                self.post("new", f"scale-{uuid.uuid4().hex[:12]}@example.com", rnd=rnd)
            elif pick < 0.65:
                self.post("keyed", f"scale-{uuid.uuid4().hex[:12]}@example.com",
                          key=f"k-{uuid.uuid4().hex}", rnd=rnd)
            elif pick < 0.78 and known:
                # The same email again, in another case, with or without a key.
                email = rnd.choice(known)
                local, domain = email.split("@")
                self.post("duplicate", f"{local.upper()}@{domain}",
                          key=f"k-{uuid.uuid4().hex}" if rnd.random() < 0.5 else None, rnd=rnd)
            elif pick < 0.94 and replayable:
                first = rnd.choice(replayable)
                self.post("replay", first.sent, key=first.key, rnd=rnd)  # the same body
            elif pick < 0.97:
                # The same new email to the three servers at the same moment.
                email = f"scale-race-{uuid.uuid4().hex[:12]}@example.com"
                barrier = threading.Barrier(len(self.serves), timeout=BOUND)

                def racer(i):
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass
                    self.post("race", email, serve=i)
                racers = [threading.Thread(target=racer, args=(i,), daemon=True)
                          for i in range(len(self.serves))]
                for t in racers:
                    t.start()
                for t in racers:
                    t.join(BOUND * 3)
            else:
                self.post("new", f"scale-{uuid.uuid4().hex[:12]}@example.com", rnd=rnd)


class ScaleOutTest(ServerPerTestCase):
    def test_embedded_queue_three_serves_two_workers_kills_and_a_postgresql_restart(self):
        self.run_scale("embedded")

    def test_redis_queue_three_serves_two_workers_kills_and_a_postgresql_restart(self):
        self.run_scale("redis")

    # --- the run --------------------------------------------------------------
    def run_scale(self, queue):
        began = time.monotonic()
        # Cleanups run last in, first out: the workers and servers stop before
        # Redis and PostgreSQL.
        self.cluster = self.own(PostgresCluster(f"pg-scale-{queue}"))
        database = self.cluster.create_database("scale")
        if queue == "redis":
            redis = self.own(RedisServer("redis-scale"))
            env = {**redis_env(redis, unique_prefix("scale")), **SETTINGS}
        else:
            env = {**SETTINGS, "REDIS_URL": "", "REDIS_HOST": ""}
        first = self.own(UsherServer("scale-a", mode="async_queue", env=env,
                                     pg=(self.cluster, database)))
        self.first = first
        conn = self.cluster.connect(database)
        try:
            conn.cursor().execute(AUDIT_SQL)
        finally:
            conn.close()
        serves = [first, self.own(sibling(first, "scale-b")), self.own(sibling(first, "scale-c"))]
        self.serves = serves
        for s in serves:
            s.start()
        worker_a = WorkerProcess(first, name="scale-wa")
        self.addCleanup(worker_a.stop)
        self.killed = {}  # instance -> step

        load = Load(serves, seed=f"{queue}-{uuid.uuid4().hex[:6]}")
        load.start()
        self.addCleanup(load.stop)
        wait_until(lambda: load.count(lambda e: e.status == 202), 30, "accepted requests",
                   until=lambda n: n >= 150)

        for step in STEPS[:3]:
            self.kill_a_worker_after(step)
        self.restart_postgresql(load, serves)
        for step in STEPS[3:]:
            self.kill_a_worker_after(step)
        worker_b = WorkerProcess(first, name="scale-wb")
        self.addCleanup(worker_b.stop)
        # The restarted worker takes jobs before the load ends.
        wait_until(lambda: self.query("SELECT COUNT(*) FROM scale_audit WHERE new_status = "
                                      "'succeeded' AND old_owner LIKE 'itest-scale-wb:%'")[0][0],
                   30, "the restarted worker to finish jobs")
        load.stop()
        loaded = time.monotonic() - began

        # Nothing left queued or running, within a bounded wait.
        wait_until(lambda: dict(self.query("SELECT status, COUNT(*) FROM jobs GROUP BY status")),
                   60, "every job to be succeeded or dead",
                   until=lambda counts: set(counts) <= {"succeeded", "dead"})
        for proc, name in ((worker_a, "scale-wa"), (worker_b, "scale-wb")):
            self.assertTrue(proc.alive(), f"{name} exited: {proc.stderr_tail()}")
        for s in serves:
            self.assertTrue(s.alive(), f"{s.name} exited: {s.stderr_tail()}")

        exchanges = list(load.exchanges)
        self.check_answers(exchanges)
        accepted = self.check_exactly_once(exchanges)
        attempts = self.check_attempts(
            long_lived={f"itest-{n}" for n in ("scale-a", "scale-b", "scale-c", "scale-wa",
                                               "scale-wb")})
        kinds = collections.Counter((e.kind, e.status) for e in exchanges)
        print(f"\n[{queue}] {len(exchanges)} requests in {loaded:.1f} s, "
              f"{len(accepted)} accepted emails, total {time.monotonic() - began:.1f} s; "
              f"answers {dict(sorted(kinds.items(), key=str))}; attempts {attempts}",
              file=sys.stderr)

    def query(self, sql, params=()):
        return self.first.query(sql, params)

    def kill_a_worker_after(self, step):
        """A worker process that SIGKILLs itself right after `step` of its
        first job; the test waits until it has."""
        name = f"scale-wb-{step.replace('_', '')}"
        worker = WorkerProcess(self.first, {"USHER_FAULT_AFTER": step}, name=name)
        self.addCleanup(worker.stop)
        code = wait_until(lambda: worker.proc.poll(), 30,
                          f"the worker with USHER_FAULT_AFTER={step} to kill itself",
                          interval=0.02, until=lambda c: c is not None)
        self.assertEqual(code, -signal.SIGKILL, worker.stderr_tail())
        self.assertIn(f"killing the process after step {step}", worker.stderr_tail())
        self.killed[f"itest-{name}"] = step

    def restart_postgresql(self, load, serves):
        self.down_at = time.time()
        self.cluster.stop("fast")
        # Claims may still commit while the shutdown ends its sessions.
        self.stopped_at = time.time()
        # The servers say so: /readyz 503, and the writes fail fast with 503.
        ready = wait_until(lambda: http_request(serves[1].port, "GET", "/readyz",
                                                timeout=BOUND + 5),
                           BOUND, "/readyz to answer 503", until=lambda r: r.status == 503)
        self.assertIn("retry-after", ready.headers)
        wait_until(lambda: load.count(lambda e: e.status == 503 and e.started > self.down_at),
                   30, "503 answers while PostgreSQL is down", until=lambda n: n >= 5)
        self.up_at = time.time()
        self.cluster.start()
        for s in serves:
            wait_until(lambda s=s: http_request(s.port, "GET", "/readyz", timeout=BOUND + 5), 30,
                       f"{s.name}: /readyz 200 again", until=lambda r: r.status == 200)
        self.recovered_at = time.time()
        wait_until(lambda: load.count(lambda e: e.status == 202 and e.started > self.recovered_at),
                   30, "accepted requests after the restart", until=lambda n: n >= 100)

    # --- the proof ------------------------------------------------------------
    def check_answers(self, exchanges):
        failed = [e for e in exchanges if e.error is not None]
        self.assertEqual(failed[:3], [], f"{len(failed)} requests without an answer")
        slow = [e for e in exchanges if e.ended - e.started >= BOUND]
        self.assertEqual(slow[:3], [], f"{len(slow)} answers slower than {BOUND} s")
        for e in exchanges:
            if e.status == 503:
                self.assertTrue(e.retry_after, f"503 without Retry-After: {e}")
                if not (e.ended >= self.down_at
                        and e.started <= self.recovered_at + RECOVERY_GRACE):
                    why = [line for line in self.serves[e.serve].stderr_text().splitlines()
                           if "deadlock" in line or "lock" in line]
                    self.fail(f"503 outside the PostgreSQL restart ({self.down_at:.2f}.."
                              f"{self.recovered_at:.2f}): {e}; the server's log: {why[-5:]}")
            elif e.status == 409:
                # A replay finds its key's stored answer, unless another
                # client replays the same key at the same moment; every other
                # key is new, so a 409 is the email's.
                expected = "idempotency_key_in_flight" if e.kind == "replay" else "user_exists"
                self.assertEqual(e.json.get("code"), expected, e)
            elif e.status == 201:
                # Inline only when the queue could not take the job (Redis).
                self.assertTrue(e.json.get("fallback"), e)
            else:
                self.assertEqual(e.status, 202, e)
        # Every kind of request was exercised, and answered as it should be.
        kinds = collections.Counter((e.kind, e.status) for e in exchanges)
        self.assertGreaterEqual(kinds[("duplicate", 409)], 5, kinds)
        self.assertGreaterEqual(kinds[("replay", 202)], 5, kinds)
        self.assertGreaterEqual(kinds[("keyed", 202)], 10, kinds)
        self.assertGreaterEqual(kinds[("race", 409)], 4, kinds)
        self.assertGreaterEqual(kinds[("race", 202)], 2, kinds)

    def check_exactly_once(self, exchanges):
        """Returns {email: its accepted answers}."""
        by_email = collections.defaultdict(list)
        for e in exchanges:
            by_email[e.email].append(e)
        accepted = {}
        for email, answers in by_email.items():
            ok = [e for e in answers if e.status in (201, 202)]
            if not ok:
                continue
            # One accepted request per email: the others are replays of its key.
            originals = [e for e in ok if e.kind != "replay"]
            self.assertEqual(len(originals), 1, f"{email} accepted {len(originals)} times: "
                             f"{originals}")
            first = originals[0]
            self.assertIn("activation_token", first.json, first)
            expected = {k: v for k, v in first.json.items() if k != "activation_token"}
            for replay in ok:
                if replay is first:
                    continue
                self.assertEqual(replay.key, first.key, f"{email}: a second 2xx {replay}")
                self.assertEqual((replay.status, replay.json), (first.status, expected),
                                 f"{email}: a replay that differs from the first answer")
            accepted[email] = first

        accounts = {email: (count, account_id) for email, count, account_id in self.query(
            "SELECT email_normalized, COUNT(*), MIN(id) FROM accounts GROUP BY email_normalized")}
        twice = [(e, c) for e, (c, _) in accounts.items() if c != 1]
        self.assertEqual(twice, [], "emails with more than one account")
        missing = [e for e in accepted if e not in accounts]
        self.assertEqual(missing[:5], [], f"{len(missing)} accepted emails without an account")
        # An account nobody was told about: only where a COMMIT was cut (503).
        unexplained = [e for e in accounts if e not in accepted
                       and not any(x.status == 503 for x in by_email.get(e, []))]
        self.assertEqual(unexplained[:5], [], "accounts without an accepted request or a 503")
        for sql, what in (
                ("SELECT a.email_normalized, COUNT(t.id) FROM accounts a LEFT JOIN tripwire_users "
                 "t ON t.user_id = a.id GROUP BY a.id, a.email_normalized HAVING COUNT(t.id) != 1",
                 "accounts without exactly one profile"),
                ("SELECT a.email_normalized, COUNT(x.id) FROM accounts a LEFT JOIN "
                 "activation_tokens x ON x.account_id = a.id GROUP BY a.id, a.email_normalized "
                 "HAVING COUNT(x.id) != 1", "accounts without exactly one activation token"),
                ("SELECT a.email_normalized, COUNT(j.id) FROM accounts a LEFT JOIN jobs j ON "
                 "j.user_id = a.id AND j.status = 'succeeded' GROUP BY a.id, a.email_normalized "
                 "HAVING COUNT(j.id) != 1", "accounts without exactly one succeeded job")):
            rows = self.query(sql)
            self.assertEqual(rows[:5], [], f"{len(rows)} {what}")

        jobs = {job_id: (email, status, user_id, last_error) for job_id, email, status, user_id,
                last_error in self.query(
                    "SELECT id, email_normalized, status, user_id, last_error FROM jobs")}
        for job_id, (email, status, user_id, last_error) in jobs.items():
            if status == "dead":
                self.assertTrue(last_error, f"job {job_id} is dead without a reason")
            else:
                self.assertEqual(status, "succeeded", job_id)
                self.assertEqual(user_id, accounts.get(email, (0, None))[1],
                                 f"job {job_id} for {email} points at another account")
        for email, first in accepted.items():
            job = jobs.get(first.json.get("job_id"))
            self.assertIsNotNone(job, first)
            self.assertEqual((job[0], job[1], job[2]), (email, "succeeded", accounts[email][1]),
                             f"the job {first.json.get('job_id')} of an accepted request")
            if first.status == 201:
                self.assertEqual(first.json.get("user_id"), accounts[email][1], first)
        return accepted

    def check_attempts(self, long_lived):
        """Every job's attempts are its committed claims; every attempt that
        did not succeed was a killed worker's or in flight at the restart."""
        per_job = collections.defaultdict(list)
        for row in self.query("SELECT job_id, at, old_status, new_status, old_attempts, "
                              "new_attempts, old_owner, new_owner, last_error FROM scale_audit "
                              "ORDER BY job_id, id"):
            per_job[row[0]].append(row)
        tally = collections.Counter()
        unexplained = []
        succeeded_by = collections.Counter()
        ended_by_killed = collections.defaultdict(collections.Counter)
        for job_id, status, attempts in self.query("SELECT id, status, attempts FROM jobs"):
            claims = 0
            claim = None
            for (_, at, old_status, new_status, old_attempts, new_attempts, _, new_owner,
                 last_error) in per_job.get(job_id, []):
                if new_status == "running":
                    self.assertIsNone(claim, f"job {job_id} claimed twice at once")
                    self.assertIn(old_status, (None, "queued"), job_id)
                    self.assertEqual(new_attempts, (old_attempts or 0) + 1,
                                     f"job {job_id}: a claim that did not count one attempt")
                    claims += 1
                    claim = (at, new_owner)
                elif old_status == "running":
                    self.assertIsNotNone(claim, f"job {job_id} left running unclaimed")
                    claimed_at, owner = claim
                    claim = None
                    killed_step = self.killed.get(instance_of(owner))
                    if killed_step is not None:
                        ended_by_killed[killed_step][new_status] += 1
                    if new_status == "succeeded":
                        succeeded_by[instance_of(owner)] += 1
                        continue
                    if killed_step is not None:
                        tally[f"killed after {killed_step}"] += 1
                    elif claimed_at <= self.stopped_at and at >= self.down_at:
                        tally["in flight at the restart"] += 1
                    else:
                        unexplained.append((job_id, owner, round(claimed_at, 2), round(at, 2),
                                            new_status, last_error))
            self.assertIsNone(claim, f"job {job_id} is still claimed")
            self.assertEqual(attempts, claims, f"job {job_id}: attempts is not its claims")
            self.assertGreaterEqual(attempts, 1, job_id)
            tally[f"jobs with {attempts} attempts"] += 1
        if unexplained:
            self.fail(f"{len(unexplained)} failed attempts neither a killed worker's nor in "
                      f"flight at the PostgreSQL restart (job, owner, claimed at, ended at, "
                      f"outcome, error): {unexplained[:5]}; PostgreSQL stopping {self.down_at:.2f}.."
                      f"{self.stopped_at:.2f}")
        # Each kill hit jobs: their transactions rolled back, another worker
        # finished them (after_commit: its batch had committed).
        for step in STEPS:
            outcome = ended_by_killed[step]
            if step == "after_commit":
                self.assertGreater(outcome["succeeded"], 0, f"{step}: {dict(outcome)}")
            else:
                self.assertGreater(outcome["queued"], 0, f"{step}: {dict(outcome)}")
        # Every long-lived process did some of the work.
        idle = sorted(i for i in long_lived if succeeded_by[i] == 0)
        self.assertEqual(idle, [], f"processes that finished no job: {dict(succeeded_by)}")
        return dict(sorted(tally.items()))


if __name__ == "__main__":
    unittest.main()
