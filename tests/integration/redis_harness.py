"""Helpers for the integration tests of the Redis job queue (Python 3 standard
library only).

RedisServer starts a real `redis-server` on a free loopback port without
persistence and can SIGKILL it, restart it on the same port and talk to it
(a tiny RESP client). A missing redis-server FAILS the test (never skips):
CI must not silently run without Redis.

Every wait here has a bound; every process started here is registered with
usher_harness's atexit leftover-killer.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

from usher_harness import (USHER_BIN, UsherServer, WaitTimeout, _live_lock, _live_processes,
                           base_env, unique_email, wait_for_job, wait_until)

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_START_TIMEOUT = 10.0
REDIS_COMMAND_TIMEOUT = 5.0

# Short queue and sweep settings for tests (docs/configuration.md).
FAST_REDIS = {
    # A loaded CI machine (two test jobs, sanitizer builds) can stall a thread
    # for 100 ms: tests about the queue's behaviour must not see a spurious
    # fallback. The outage tests set the product's default back explicitly.
    "REDIS_COMMAND_TIMEOUT_MS": "1000",
    "REDIS_CONNECT_TIMEOUT_MS": "1000",
    "REDIS_SWEEP_INTERVAL_MS": "500",
    "REDIS_SWEEP_GRACE_MS": "500",
    "QUEUE_POLL_MS": "50",
    "JOB_BACKOFF_MS": "50",
}


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = str(arg).encode("ascii")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("Redis closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP line {line[:80]!r}")


def redis_command(port, *args, timeout=REDIS_COMMAND_TIMEOUT, host="127.0.0.1"):
    """One command on a fresh connection; returns the decoded reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_encode(args))
        return _Reader(sock).reply()


def redis_transaction(port, *commands, timeout=REDIS_COMMAND_TIMEOUT, host="127.0.0.1"):
    """Runs `commands` (each a list of arguments) as one MULTI/EXEC on one
    connection, so no other client's command comes between them; returns EXEC's
    replies."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"".join(_encode(c) for c in (["MULTI"], *commands, ["EXEC"])))
        reader = _Reader(sock)
        replies = [reader.reply() for _ in range(len(commands) + 2)]
        return replies[-1]


class RedisServer:
    """A real redis-server on 127.0.0.1, no persistence, for one test (class)."""

    def __init__(self, name="redis"):
        if not (os.path.isfile(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
            # Fail, never skip: the Redis tests must run in CI.
            raise AssertionError(f"{REDIS_SERVER} is missing: install the Debian package "
                                 "redis-server (scripts/install-deps.sh does)")
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"usher-{name}-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.port = _free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=REDIS_START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self.dir],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        finally:
            log.close()
        with _live_lock:
            _live_processes.add(self.proc)

        last = [None]

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}: "
                                     f"{self.log_tail()}")
            try:
                return redis_command(self.port, "PING", timeout=1.0) == "PONG"
            except (OSError, ConnectionError, RedisError) as e:
                last[0] = e
                return False
        try:
            wait_until(answers, timeout, f"redis-server on port {self.port} to answer PING",
                       interval=0.02)
        except WaitTimeout as e:
            self.kill()
            raise AssertionError(f"{e} ({last[0]}): {self.log_tail()}") from None
        return self

    def restart(self, timeout=REDIS_START_TIMEOUT):
        """Starts it again on the same port (after kill() or stop()); empty."""
        return self.start(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL and wait: every client connection drops, every key is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self):
        try:
            self.stop()
        finally:
            with _live_lock:
                _live_processes.discard(self.proc)
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def command(self, *args, timeout=REDIS_COMMAND_TIMEOUT):
        return redis_command(self.port, *args, timeout=timeout)

    def transaction(self, *commands, timeout=REDIS_COMMAND_TIMEOUT):
        return redis_transaction(self.port, *commands, timeout=timeout)

    def keys(self, pattern="*"):
        return sorted(self.command("KEYS", pattern))

    def dbsize(self):
        return self.command("DBSIZE")


def unique_prefix(tag):
    return f"it-{tag}-{uuid.uuid4().hex[:8]}:"


def redis_env(redis, prefix, **extra):
    env = {"REDIS_URL": redis.url, "REDIS_PREFIX": prefix, **FAST_REDIS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sibling(server, name, env=None):
    """A second `usher serve` on `server`'s database (same tokens, its own
    instance name, log files and port). start() it; close() it before `server`."""
    other = object.__new__(UsherServer)
    other.name = name
    other.dir = tempfile.mkdtemp(prefix=f"usher-{name}-")
    other.db_path = server.db_path
    other.pg = getattr(server, "pg", None)
    other.env = dict(server.env)
    other.env["USHER_INSTANCE"] = f"itest-{name}"
    other.env.update({k: str(v) for k, v in (env or {}).items()})
    other.proc = None
    other.port = None
    other.tokens = dict(server.tokens)
    other.stdout_path = os.path.join(other.dir, "stdout.log")
    other.stderr_path = os.path.join(other.dir, "stderr.log")
    return other


class WorkerProcess:
    """`usher worker` with `server`'s environment (database, Redis) plus `extra_env`."""

    def __init__(self, server, extra_env=None, name="worker"):
        self.env = dict(server.env)
        self.env["USHER_INSTANCE"] = f"itest-{name}"
        self.env.update({k: str(v) for k, v in (extra_env or {}).items()})
        self.stderr_path = os.path.join(server.dir, f"{name}.stderr.log")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([USHER_BIN, "worker"], env=self.env, cwd=server.dir,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)
        finally:
            err.close()
        with _live_lock:
            _live_processes.add(self.proc)

    def stderr_tail(self, n=2000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            return None
        finally:
            with _live_lock:
                _live_processes.discard(self.proc)


def job_counts(server):
    return dict(server.query("SELECT status, COUNT(*) FROM jobs GROUP BY status"))


def wait_until_drained(server, expected_jobs, timeout=60.0):
    """Every job row succeeded (and there are `expected_jobs` of them)."""
    return wait_until(lambda: job_counts(server), timeout,
                      f"{expected_jobs} jobs, all succeeded (job counts by status)",
                      until=lambda counts: counts == {"succeeded": expected_jobs})


class ExactlyOnceAssertions:
    """Mixin: each email once in accounts, one profile and one activation token
    each, one succeeded job each (with its user_id), nothing else."""

    def assertExactlyOnce(self, server, emails, attempts_one=False):
        emails = list(emails)
        self.assertEqual(len(set(emails)), len(emails), "the test posted an email twice")
        accounts = dict(server.query(
            "SELECT email_normalized, COUNT(*) FROM accounts GROUP BY email_normalized"))
        missing = [e for e in emails if accounts.get(e) != 1]
        self.assertEqual(missing, [], f"{len(missing)} emails without exactly one account, e.g. "
                         f"{[(e, accounts.get(e)) for e in missing[:5]]}")
        self.assertEqual(len(accounts), len(emails), "accounts for emails nobody asked for")
        bad_profiles = server.query(
            "SELECT a.email_normalized, COUNT(t.id) FROM accounts a "
            "LEFT JOIN tripwire_users t ON t.user_id = a.id GROUP BY a.id HAVING COUNT(t.id) != 1")
        self.assertEqual(bad_profiles, [], "accounts without exactly one tripwire_users row")
        bad_tokens = server.query(
            "SELECT a.email_normalized, COUNT(x.id) FROM accounts a "
            "LEFT JOIN activation_tokens x ON x.account_id = a.id GROUP BY a.id "
            "HAVING COUNT(x.id) != 1")
        self.assertEqual(bad_tokens, [], "accounts without exactly one activation token")
        jobs = server.query("SELECT email_normalized, status, attempts, user_id FROM jobs")
        per_email = {}
        for email, status, attempts, user_id in jobs:
            per_email.setdefault(email, []).append((status, attempts, user_id))
        bad_jobs = {e: j for e, j in per_email.items()
                    if len(j) != 1 or j[0][0] != "succeeded" or j[0][2] is None}
        self.assertEqual(bad_jobs and dict(list(bad_jobs.items())[:5]), {},
                         f"{len(bad_jobs)} emails without exactly one succeeded job")
        self.assertEqual(sorted(per_email), sorted(emails), "jobs for emails nobody asked for")
        if attempts_one:
            twice = [(e, j[0][1]) for e, j in per_email.items() if j[0][1] != 1]
            self.assertEqual(twice, [], f"{len(twice)} jobs were processed more than once "
                             f"(attempts != 1), e.g. {twice[:5]}")
        # The job's user is the email's account.
        mismatched = server.query(
            "SELECT j.id FROM jobs j JOIN accounts a ON a.id = j.user_id "
            "WHERE a.email_normalized != j.email_normalized")
        self.assertEqual(mismatched, [], "a job points at another email's account")


def post_many(server_for, emails, threads, timeout=120.0):
    """POSTs every email (thread i posts emails[i::threads] through server_for(i)).
    Returns [(email, Response)] in no particular order; transport errors raise."""
    results = []
    lock = threading.Lock()
    errors = []

    def run(i):
        server = server_for(i)
        try:
            for email in emails[i::threads]:
                resp = server.create_user(email=email)
                with lock:
                    results.append((email, resp))
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(e)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in workers:
        t.start()
    deadline = time.monotonic() + timeout
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        raise AssertionError(f"posting {len(emails)} users did not finish within {timeout} s")
    if errors:
        raise AssertionError(f"{len(errors)} requests failed: {errors[:3]}")
    return results


__all__ = ["RedisServer", "RedisError", "redis_command", "unique_prefix", "redis_env",
           "sibling", "WorkerProcess", "wait_until", "wait_for_job", "wait_until_drained",
           "job_counts", "ExactlyOnceAssertions", "post_many", "FAST_REDIS", "base_env",
           "unique_email"]
