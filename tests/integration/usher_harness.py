"""Shared helpers for usher's black-box integration tests.

Python 3 standard library only (the PostgreSQL runs, USHER_TEST_DATABASE=
postgresql, add Debian's python3-psycopg2 through pg_harness). Every network
call has a timeout, every
subprocess wait has a timeout, and every server started here is killed when
its owner stops it (tests call stop() in tearDown/tearDownClass; an atexit
hook kills anything left over).

Tests wait for what they can observe, never for a guessed time: wait_until()
polls a predicate with a deadline and names what it waited for when it
fails; a server's log lines (wait_for_log), its database rows, its alert
outbox (alerts_settled) and its open connections (connections) are the
observables. ServerTestCase (one server per class) and ServerPerTestCase
(servers per test) are the fixtures every test file builds on.

The binary is taken from $USHER_BIN (ctest sets it), else build/usher.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USHER_BIN = os.environ.get("USHER_BIN") or str(ROOT / "build" / "usher")

# Cheap argon2id so activation and login tests stay fast (valid config knobs).
FAST_HASH_ENV = {"PASSWORD_HASH_MEMORY_KIB": "1024", "PASSWORD_HASH_ITERATIONS": "1"}

# Every setting usher reads from the environment: cleared from the inherited
# environment so a developer's shell cannot change what the tests see.
SETTING_NAMES = [
    "USHER_LISTEN", "DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "START_WORKER",
    "WORKER_CONCURRENCY", "JOB_MAX_ATTEMPTS", "JOB_BACKOFF_MS", "CONFIG_CACHE_TTL_MS",
    "TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_CHAT_ID", "TELEGRAM_API_URL", "ALERT_THROTTLE_MS",
    "USHER_INSTANCE", "LOG_FORMAT", "ACTIVATION_TTL_HOURS", "PASSWORD_HASH_MEMORY_KIB",
    "PASSWORD_HASH_ITERATIONS", "IDEMPOTENCY_TTL_HOURS", "SESSION_TTL_HOURS",
    "HTTP_READ_TIMEOUT_MS", "DB_BUSY_TIMEOUT_MS", "HTTP_THREADS", "BLOCKING_THREADS",
    "WRITE_QUEUE_LIMIT",
    # the Redis queue (SPEC §1, docs/configuration.md)
    "REDIS_PREFIX", "REDIS_COMMAND_TIMEOUT_MS", "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_BREAKER_FAILURES", "REDIS_BREAKER_OPEN_MS", "REDIS_SWEEP_INTERVAL_MS",
    "REDIS_SWEEP_GRACE_MS",
    # the database outage watch (docs/alerts.md)
    "DB_OUTAGE_ALERT_MS",
]

# Tables whose row counts prove that a rejected request wrote nothing.
WRITE_TABLES = ("accounts", "tripwire_users", "jobs", "idempotency_keys", "activation_tokens")
ALL_TABLES = ("accounts", "tripwire_users", "jobs", "idempotency_keys", "activation_tokens",
              "sessions", "api_tokens", "system_config", "system_health_logs", "alert_outbox")

HTTP_TIMEOUT = 15.0
CLI_TIMEOUT = 30.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# How long wait_until() waits unless told: generous, since it returns as soon
# as the condition holds and only a failing test waits this long.
WAIT_TIMEOUT = 15.0
DEFAULT_TOKENS = (("admin", "admin"), ("sales", "sales_manager"))

# Secrets the tests created or saw (issue 14: secrets never appear in logs).
# Every server started here has its whole log checked for each of them when it
# stops (UsherServer.stop -> assert_no_secrets_in_logs). Process-wide, since a
# test may carry a token from one server to another (backup and restore).
SECRET_REQUEST_KEYS = ("password", "token", "new_password", "current_password")
SECRET_RESPONSE_KEYS = ("activation_token", "session_token", "token")
# Shorter values ("t", "x") are placeholders in bad-input tests, not secrets,
# and would match ordinary log text.
SECRET_MIN_LENGTH = 6
_seen_secrets = set()
_secrets_lock = threading.Lock()


def remember_secret(value):
    """Adds `value` to the secrets no server log may contain."""
    if isinstance(value, str) and len(value.strip()) >= SECRET_MIN_LENGTH:
        with _secrets_lock:
            _seen_secrets.add(value.strip())


def seen_secrets():
    with _secrets_lock:
        return set(_seen_secrets)


def _remember_json_secrets(obj, keys):
    # A loop, not recursion: bad-input tests send bodies nested thousands deep.
    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in keys:
                    remember_secret(value)
                else:
                    pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def _remember_exchange(body, headers, response):
    """The secrets in one HTTP exchange: bearer tokens, passwords and activation
    tokens sent, activation and session tokens answered."""
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and isinstance(value, str):
            remember_secret(value.split(" ", 1)[-1])
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
    _remember_json_secrets(body, SECRET_REQUEST_KEYS)
    if response is not None:
        _remember_json_secrets(response.json, SECRET_RESPONSE_KEYS)


def secrets_in_text(text, secrets):
    """The secrets that occur in `text`, each with the first line holding it
    (the secret itself masked, so a failure message does not spread it)."""
    # usher's own tokens (usher_a_…, usher_t_…) can only begin where "usher_"
    # does: those places are looked up in a set. One text.find() per secret
    # over the whole log cost the PostgreSQL soak 40 s at its end (25,000
    # activation tokens remembered, a log of megabytes); the rest (passwords,
    # settings: a few) are still searched one by one.
    shaped = {s for s in secrets if s.startswith("usher_")}
    lengths = {len(s) for s in shaped}
    present = set()
    at = text.find("usher_") if shaped else -1
    while at >= 0:
        present.update(w for w in (text[at:at + n] for n in lengths) if w in shaped)
        at = text.find("usher_", at + 1)
    found = []
    for secret in sorted(secrets):
        if secret in shaped and secret not in present:
            continue
        at = text.find(secret)
        if at < 0:
            continue
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        line = text[start:end if end >= 0 else len(text)]
        masked = f"{secret[:3]}…({len(secret)} chars)"
        found.append((masked, line.replace(secret, "<" + masked + ">")[:300]))
    return found


_live_processes = set()
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live_processes)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_leftovers)


class WaitTimeout(AssertionError):
    """wait_until() gave up: what was awaited did not happen in time."""


def wait_until(predicate, timeout=WAIT_TIMEOUT, what="the condition", interval=0.05, until=bool):
    """Calls predicate() until until(its value) holds (by default: the value is
    truthy), and returns that value. Fails (WaitTimeout) after `timeout` seconds,
    naming `what` was awaited and the last value predicate() returned. An
    exception from predicate() propagates."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            seen = repr(value)
            if len(seen) > 600:
                seen = seen[:600] + "..."
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what}; "
                              f"last value seen: {seen}")
        time.sleep(interval)


def mapped_libraries(pid, fragment):
    """The paths mapped in process `pid` (/proc/PID/maps) that contain
    `fragment`: which shared libraries it has loaded."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if fragment in line}


def connections(port, states=("ESTABLISHED", "CLOSE_WAIT")):
    """The server side of TCP connections to local `port` in `states` (Linux,
    /proc/net/tcp*): [(peer port, state)]. A connection the client closed stays
    CLOSE_WAIT until the server has read the end and closed it too."""
    codes = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], codes.get(fields[3], fields[3])
            if int(local.rsplit(":", 1)[1], 16) == port and state in states:
                found.append((int(remote.rsplit(":", 1)[1], 16), state))
    return found


def unique_email(prefix="user"):
    """A fresh, valid, lower-case address."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def long_email(total, tag="x"):
    """A valid address of exactly `total` characters (70 <= total <= 254 + a few):
    a 64-character local part and a domain of labels of at most 63 characters."""
    local = (tag + "a" * 64)[:64]
    rest = total - len(local) - 1 - len(".com")
    labels = []
    while rest > 0:
        take = min(63, rest)
        if 0 < rest - take < 2:  # the next label needs a dot and one character
            take -= 2
        labels.append("d" * take)
        rest -= take + 1
    address = f"{local}@{'.'.join(labels)}.com"
    assert len(address) == total, (len(address), total)
    return address


_setting_names_cache = []


def setting_names():
    """SETTING_NAMES plus every `[NAME]` that `usher --help` lists (settings added
    later are then cleared from the inherited environment too)."""
    if not _setting_names_cache:
        names = set(SETTING_NAMES)
        try:
            out = subprocess.run([USHER_BIN, "--help"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, timeout=CLI_TIMEOUT,
                                 stdin=subprocess.DEVNULL).stdout
            names.update(n for n in re.findall(r"\[([A-Z][A-Z0-9_]+)\]", out) if n != "OPTIONS")
        except (OSError, subprocess.SubprocessError):
            pass
        _setting_names_cache.append(frozenset(names))
    return _setting_names_cache[0]


def base_env(extra=None):
    """The inherited environment without any usher setting, plus `extra`."""
    names = setting_names()
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(FAST_HASH_ENV)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, env=None, timeout=CLI_TIMEOUT, cwd=None):
    """Runs `usher ARGS...`; returns CompletedProcess with text stdout/stderr."""
    result = subprocess.run([USHER_BIN, *args], env=env if env is not None else base_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    # The commands that print a secret: an API token, an activation token.
    if list(args[:2]) in (["token", "create"], ["users", "resend"]) and result.returncode == 0:
        for line in result.stdout.splitlines():
            remember_secret(line)
    return result


class Response:
    """An HTTP answer: status, headers (lower-case names), raw body and parsed JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.json = None
        if body:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                self.json = None

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    @property
    def code(self):
        return self.json.get("code") if isinstance(self.json, dict) else None

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT,
                 host="127.0.0.1"):
    """One request on a fresh connection. `body` may be bytes, str or a JSON-able
    object (then Content-Type application/json is added unless given)."""
    headers = dict(headers or {})
    sent = body
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (e.g. 413) and close before reading it all.
            pass
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        response = Response(resp.status, hdrs, data)
        _remember_exchange(sent, headers, response)
        return response
    finally:
        conn.close()


def raw_exchange(port, payload, timeout=5.0, shutdown_write=False, host="127.0.0.1"):
    """Sends raw bytes and reads until the server closes or `timeout` passes.
    Returns (data, closed): closed is True when the server closed the connection
    (EOF or reset) before the timeout."""
    sock = socket.create_connection((host, port), timeout=timeout)
    data = b""
    closed = False
    try:
        try:
            sock.sendall(payload)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        deadline = time.monotonic() + timeout
        while not closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ConnectionAbortedError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        sock.close()
    return data, closed


def status_of_raw(data):
    """The status code of the first HTTP response in `data`, or None."""
    if not data.startswith(b"HTTP/"):
        return None
    try:
        return int(data.split(b"\r\n", 1)[0].split(b" ")[1])
    except (IndexError, ValueError):
        return None


# The job queue the tests run against: "embedded" (default) or "redis".
QUEUE_UNDER_TEST = os.environ.get("USHER_TEST_QUEUE", "embedded")
_shared_redis = None
_shared_redis_lock = threading.Lock()


def _queue_under_test_env():
    """USHER_TEST_QUEUE=redis (set by ctest for the integration.redis.* runs)
    runs a test file unchanged against the Redis queue: one real redis-server
    per test process, a key prefix per server. Unset: the embedded queue."""
    global _shared_redis
    if QUEUE_UNDER_TEST != "redis":
        return {}
    from redis_harness import FAST_REDIS, RedisServer  # imports this module: lazily
    with _shared_redis_lock:
        if _shared_redis is None:
            _shared_redis = RedisServer("shared")
    return {"REDIS_URL": _shared_redis.url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}:",
            **{k: v for k, v in FAST_REDIS.items() if k.startswith("REDIS_")}}


# The database the tests run against: "sqlite" (default) or "postgresql".
DATABASE_UNDER_TEST = os.environ.get("USHER_TEST_DATABASE", "sqlite")


def _database_under_test_url(db_path):
    """USHER_TEST_DATABASE=postgresql (set by ctest for the integration.pg.*
    runs) runs a test file unchanged against PostgreSQL: one throw-away
    cluster per test process (pg_harness), one fresh database per server.
    Otherwise an SQLite file at `db_path`."""
    if DATABASE_UNDER_TEST != "postgresql":
        return f"sqlite:{db_path}", None
    from pg_harness import shared_cluster  # imports this module: lazily
    cluster = shared_cluster()
    name = cluster.create_database()
    return cluster.url(name), (cluster, name)


class UsherServer:
    """A temporary database and (once start() is called) `usher serve` on a free port.

    Before start, the database is migrated, tokens are created through the CLI
    (so the server loads them at start) and, unless mode is None, the kill
    switch is set through the CLI (`sync_direct` makes POST /api/v1/users
    provision inline, answering 201)."""

    def __init__(self, name="it", mode="sync_direct", env=None, tokens=DEFAULT_TOKENS,
                 pg=None):
        """`pg`: a (pg_harness.PostgresCluster, database name) to run on,
        whatever USHER_TEST_DATABASE says (a test that stops its own cluster)."""
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"usher-{name}-")
        self.db_path = os.path.join(self.dir, "usher.db")
        if pg is not None:
            database_url, self.pg = pg[0].url(pg[1]), pg
        else:
            database_url, self.pg = _database_under_test_url(self.db_path)
        if self.pg is not None:
            self.db_path = None  # no file: query() goes through psycopg2
        self.env = base_env({
            "DATABASE_URL": database_url,
            "USHER_LISTEN": "127.0.0.1:0",
            "USHER_INSTANCE": f"itest-{name}",
            **_queue_under_test_env(),
            **(env or {}),
        })
        self.proc = None
        self.port = None
        self.tokens = {}
        # False only for a test that means to see a secret in the log.
        self.check_secrets = True
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.cli_checked(["migrate"])
        for label, role in tokens:
            self.tokens[label] = self.create_token(role, f"{label}-token")
        if mode is not None:
            self.cli_checked(["mode", "set", mode, "--reason", "integration test setup"])

    # --- command line -------------------------------------------------------
    def cli(self, args, extra_env=None, timeout=CLI_TIMEOUT):
        env = dict(self.env)
        if extra_env:
            env.update({k: str(v) for k, v in extra_env.items()})
        return run_cli(args, env=env, timeout=timeout, cwd=self.dir)

    def cli_checked(self, args, **kw):
        result = self.cli(args, **kw)
        if result.returncode != 0:
            raise AssertionError(f"usher {' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr.strip()}")
        return result

    def create_token(self, role, name):
        result = self.cli_checked(["token", "create", "--role", role, "--name", name])
        lines = [l for l in result.stdout.splitlines() if l.strip()]
        return lines[-1].strip()

    # --- process ------------------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([USHER_BIN, "serve"], env=self.env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, cwd=self.dir)
        finally:
            out.close()
            err.close()
        with _live_lock:
            _live_processes.add(self.proc)
        prefix = "usher listening on http://"

        def first_line():
            with open(self.stdout_path, "rb") as f:
                first = f.readline().decode("utf-8", "replace")
            if first.endswith("\n"):
                return first
            if self.proc.poll() is not None:
                raise AssertionError(f"usher serve exited with {self.proc.returncode}: "
                                     f"{self.stderr_tail()}")
            return None
        try:
            first = wait_until(first_line, timeout, "usher serve to print its URL", interval=0.02)
        except WaitTimeout as e:
            self.kill()
            raise AssertionError(f"{e}: {self.stderr_tail()}") from None
        if not first.startswith(prefix):
            self.kill()
            raise AssertionError(f"unexpected first stdout line: {first!r}")
        self.port = int(first.strip().rsplit(":", 1)[1])
        return self

    def stderr_tail(self, n=2000):
        return self.stderr_text()[-n:]

    def stderr_text(self, since=0):
        """The server's log (stderr) from byte offset `since` (a log_mark())."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """Where the log ends now: wait_for_log(..., since=mark) sees only later lines."""
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def wait_for_log(self, pattern, timeout=WAIT_TIMEOUT, since=0, count=1):
        """Waits until the log after `since` has `count` lines matching the regular
        expression `pattern`; returns those matches."""
        regex = re.compile(pattern)

        def found():
            matches = [m for m in (regex.search(line) for line in
                                   self.stderr_text(since).splitlines()) if m]
            return matches if len(matches) >= count else None
        try:
            return wait_until(found, timeout, f"{count} log line(s) matching {pattern!r}")
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}; log ends: {self.stderr_text(since)[-1500:]}") from None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`. Returns the SIGTERM exit code
        (None if it had to be killed)."""
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.wait(timeout)
            if code is None:
                self.kill()
        elif self.proc is not None:
            code = self.proc.returncode
        self.assert_no_secrets_in_logs()
        return code

    def secrets(self):
        """Every secret this server's log must not hold: those the tests saw
        (seen_secrets()) and the settings that are secrets."""
        found = seen_secrets()
        for name in ("TELEGRAM_BOT_TOKEN", "WEBHOOK_SIGNING_SECRET", "REDIS_URL", "DATABASE_URL"):
            value = getattr(self, "env", {}).get(name, "")
            if name == "DATABASE_URL":
                # only its password: postgresql://user:password@host...
                match = re.match(r"postgres(?:ql)?://[^:@/]*:([^@/]+)@", value)
                value = match.group(1) if match else ""
            elif name == "REDIS_URL":
                # only its password: redis://[:password@]host:port
                match = re.match(r"rediss?://(?:[^:@/]*:)?([^@/]+)@", value)
                value = match.group(1) if match else ""
            if len(value) >= SECRET_MIN_LENGTH:
                found.add(value)
        return found

    def assert_no_secrets_in_logs(self):
        """Fails when the server's stdout or stderr (or a worker's log beside
        them) holds a secret (issue 14)."""
        # getattr: redis_harness.sibling() builds a server without __init__.
        if not getattr(self, "check_secrets", True):
            return
        text = ""
        paths = [getattr(self, "stdout_path", None), getattr(self, "stderr_path", None)]
        # and the logs of processes started beside it (redis_harness.WorkerProcess
        # writes NAME.stderr.log into the server's directory)
        if getattr(self, "dir", None):
            paths += sorted(str(p) for p in Path(self.dir).glob("*.stderr.log"))
        for path in paths:
            if path is None:
                continue
            try:
                with open(path, "rb") as f:
                    text += f.read().decode("utf-8", "replace") + "\n"
            except OSError:
                pass
        leaks = secrets_in_text(text, self.secrets()) if text.strip() else []
        if leaks:
            raise AssertionError(f"secrets in the log of usher server {self.name!r}: " +
                                 "; ".join(f"{masked} in {line!r}" for masked, line in leaks))

    def close(self):
        """Stops the server (if any) and removes the temporary directory."""
        try:
            self.stop()
        finally:
            self._close_reads()
            with _live_lock:
                _live_processes.discard(self.proc)
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- HTTP ---------------------------------------------------------------
    def auth(self, label):
        return {"Authorization": f"Bearer {self.tokens[label]}"}

    def request(self, method, path, body=None, headers=None, token=None, timeout=HTTP_TIMEOUT):
        """`token` is a label of self.tokens ("admin", "sales") or None."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs.update(self.auth(token))
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token=token, **kw)

    def create_user(self, email=None, full_name="Test Buyer", token="sales", headers=None, **fields):
        body = {"email": email or unique_email(), "full_name": full_name, **fields}
        return self.request("POST", "/api/v1/users", body=body, token=token, headers=headers)

    def healthz(self, timeout=5.0):
        return http_request(self.port, "GET", "/healthz", timeout=timeout)

    def raw(self, payload, timeout=5.0, shutdown_write=False):
        return raw_exchange(self.port, payload, timeout=timeout, shutdown_write=shutdown_write)

    # --- database -----------------------------------------------------------
    def db(self):
        """A connection to the server's database: sqlite3's, or on PostgreSQL
        one that takes the same statements (`?` placeholders) and returns the
        same shapes (lists of tuples)."""
        if getattr(self, "pg", None) is not None:
            from pg_harness import PgQueryConnection
            cluster, name = self.pg
            return PgQueryConnection(cluster.connect(name))
        conn = sqlite3.connect(self.db_path, timeout=10)
        return conn

    def query(self, sql, params=()):
        if re.match(r"\s*(SELECT|WITH)\b", sql, re.IGNORECASE):
            return self._read(lambda conn: conn.execute(sql, params).fetchall())
        conn = self.db()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def counts(self, tables=WRITE_TABLES):
        return self._read(lambda conn: {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables})

    def _read(self, read):
        """read(conn) on a connection to the database. On PostgreSQL one
        connection per server is kept for the reads: a new one costs a
        backend and a SCRAM exchange (about 50 ms on the 2-core machine, where
        a query costs 0.2 ms), and the tests poll with reads. A read that
        finds it broken (the cluster restarted, the test cut the link, a
        backend was terminated) runs once more on a new connection; writes
        keep a connection of their own (a write is not repeated)."""
        if getattr(self, "pg", None) is None:
            conn = self.db()
            try:
                return read(conn)
            finally:
                conn.close()
        psycopg2 = self.pg[0].psycopg2
        for attempt in (1, 2):
            conn = getattr(self, "_pg_reads", None)
            if conn is None:
                conn = self._pg_reads = self.db()
            try:
                return read(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._close_reads()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _close_reads(self):
        conn, self._pg_reads = getattr(self, "_pg_reads", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass

    def alerts_settled(self):
        """True when no alert waits in the outbox (every message sent or failed for
        good) and no throttling window holds repeats for a summary: until a new
        event is recorded, nothing more can reach the Bot API."""
        pending = self.query("SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'")[0][0]
        folded = self.query("SELECT COUNT(*) FROM alert_conditions WHERE suppressed > 0")[0][0]
        return pending == 0 and folded == 0


def parallel(n, fn, timeout=60.0):
    """Runs fn(i) on n threads released together; returns the results in order.
    An exception in a thread is returned in place of its result."""
    barrier = threading.Barrier(n, timeout=timeout)
    results = [None] * n

    def worker(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"parallel requests did not finish within {timeout} s")
    return results


class ProblemAssertions:
    """Mixin for unittest.TestCase: checks of RFC 9457 problem answers."""

    def assertProblem(self, resp, status, code, field=None):
        self.assertEqual(resp.status, status, f"expected {status} {code}, got {resp!r}")
        self.assertTrue(resp.content_type.lower().startswith("application/problem+json"),
                        f"content type {resp.content_type!r} for {resp!r}")
        self.assertIsInstance(resp.json, dict, resp)
        for key in ("type", "title", "status", "detail", "code"):
            self.assertIn(key, resp.json, f"problem lacks {key}: {resp!r}")
        self.assertEqual(resp.json["status"], status, resp)
        self.assertEqual(resp.json["code"], code, resp)
        if field is not None:
            self.assertEqual(resp.json.get("field"), field, resp)


def wait_for_job(server, job_id, status, timeout=20.0):
    """The job's JSON once GET /api/v1/jobs/ID shows `status`."""
    return wait_until(lambda: server.get(f"/api/v1/jobs/{job_id}", token="admin"), timeout,
                      f"job {job_id} to be {status}",
                      until=lambda r: r.status == 200 and r.json["status"] == status).json


class ServerTestCase(ProblemAssertions, unittest.TestCase):
    """Tests sharing one `usher serve`: make_server() builds it from the class
    attributes below, prepare_server() runs before it starts (CLI set-up,
    more tokens), and it is closed after the last test, also when set-up fails
    half-way (a class cleanup). A class that needs more around it (a Redis, a
    fake Bot API) overrides make_server() and registers their close with
    addClassCleanup() before building the server, so they outlive it."""

    server_name = "it"
    server_mode = "sync_direct"
    server_env = None
    server_tokens = DEFAULT_TOKENS
    server = None

    @classmethod
    def make_server(cls):
        return UsherServer(cls.server_name, mode=cls.server_mode, env=cls.server_env,
                           tokens=cls.server_tokens)

    @classmethod
    def prepare_server(cls, server):
        """Runs before server.start(); nothing by default."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.server = cls.make_server()
        finally:
            # After what make_server() registered: the server stops first.
            cls.addClassCleanup(cls._close_server)
        cls.prepare_server(cls.server)
        cls.server.start()

    @classmethod
    def _close_server(cls):
        # cls.server, not the first one: a test may have replaced a crashed server.
        if cls.server is not None:
            cls.server.close()
            cls.server = None


class ServerPerTestCase(ProblemAssertions, unittest.TestCase):
    """Tests that start servers of their own: each one made through own() or
    new_server() is closed when its test ends, passed or failed."""

    def own(self, server):
        """Closes `server` (anything with close()) at the end of this test; returns it."""
        self.addCleanup(server.close)
        return server

    def new_server(self, name, start=True, **kw):
        """An UsherServer(name, **kw), started unless `start` is false."""
        server = self.own(UsherServer(name, **kw))
        return server.start() if start else server
