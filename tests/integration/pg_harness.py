"""A throw-away PostgreSQL for the integration tests (USHER_TEST_DATABASE=postgresql).

PostgresCluster copies a data directory that initdb made once (_template(),
kept under /tmp) and runs `postgres` itself (a child process, so
usher_harness's atexit leftover-killer covers it) on a free loopback port,
with its data and socket under a temporary directory, password
authentication (scram-sha-256) for the superuser `postgres` with a password
of the cluster's own, and durability
off (fsync, synchronous_commit, full_page_writes: the cluster dies with the
test process). As root, initdb and postgres run as the Debian user
`postgres`, who owns the directory. One cluster per test process
(shared_cluster()), one fresh database per usher server (create_database()).

A missing PostgreSQL or psycopg2 FAILS the test (never skips): CI must not
silently run without PostgreSQL.
"""

import atexit
import fcntl
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid

from usher_harness import WaitTimeout, _live_lock, _live_processes, wait_until

PG_START_TIMEOUT = 30.0
PG_CONNECT_TIMEOUT = 5


def _psycopg2():
    try:
        import psycopg2  # noqa: PLC0415 (only the PostgreSQL runs need it)
    except ImportError:
        raise AssertionError("psycopg2 is missing: install the Debian package python3-psycopg2 "
                             "(scripts/install-deps.sh does)") from None
    return psycopg2


def _bindir():
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.access(os.path.join(d, "initdb"), os.X_OK)
             and os.access(os.path.join(d, "postgres"), os.X_OK)]
    if not found:
        raise AssertionError("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): install "
                             "the Debian package postgresql (scripts/install-deps.sh does)")
    return max(found, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Part of the template's name: change it when the initdb arguments below change.
# WAL segments of 1 MiB instead of 16: a copy of 8 MiB instead of 24.
TEMPLATE_FORMAT = 2


def _template(bindir, run_as):
    """The directory of a cluster initdb made for copying: `data/` and the
    superuser's `password`. One per PostgreSQL version and user, under /tmp,
    made by the first test process that needs it (the others wait on a lock)
    and kept for later runs, as a compiler cache is."""
    version = os.path.basename(os.path.dirname(bindir))
    base = f"/tmp/usher-pg-template-{version}-f{TEMPLATE_FORMAT}-u{os.geteuid()}"
    with open(base + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(base):
            return base
        work = tempfile.mkdtemp(prefix=os.path.basename(base) + ".", dir="/tmp")
        try:
            if run_as:
                os.chmod(work, 0o700)
                os.chown(work, run_as["user"], run_as["group"])
            password = "pw" + secrets.token_hex(12)
            pwfile = os.path.join(work, "pwfile")
            with open(pwfile, "w") as f:
                f.write(password + "\n")
            if run_as:
                os.chown(pwfile, run_as["user"], run_as["group"])
            result = subprocess.run(
                [os.path.join(bindir, "initdb"), "-D", os.path.join(work, "data"), "-U", "postgres",
                 "-A", "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
                 "--no-sync", "--wal-segsize=1"],
                capture_output=True, text=True, timeout=120, cwd=work, **run_as)
            os.unlink(pwfile)
            if result.returncode != 0:
                raise AssertionError(f"initdb failed ({result.returncode}): {result.stderr[-2000:]}")
            with open(os.path.join(work, "password"), "w") as f:
                f.write(password + "\n")
            os.rename(work, base)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return base


class PostgresCluster:
    """initdb + postgres on 127.0.0.1:<free port>; stop() or process exit ends it."""

    def __init__(self, name="pg", settings=None, host="127.0.0.1", netns=None):
        """`settings`: more `-c name=value` for postgres (they win over the
        defaults), e.g. {"synchronous_commit": "on"} for a cluster stopped
        with stop("immediate") that must not lose acknowledged commits.
        `host`, `netns`: postgres listens on `host` only, run inside the
        network namespace `netns` (`ip netns exec`, as root; net_faults.py's
        NetnsPostgres puts it on the far side of a veth pair)."""
        self.settings = dict(settings or {})
        self.host = host
        self.netns = netns
        self.psycopg2 = _psycopg2()
        self.bindir = _bindir()
        # As root the cluster runs as `postgres`, who must reach the directory:
        # /tmp, whatever TMPDIR says.
        self.dir = tempfile.mkdtemp(prefix=f"usher-{name}-",
                                    dir="/tmp" if os.geteuid() == 0 else None)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.password = "pw" + secrets.token_hex(12)
        self.port = _free_port()
        self.proc = None
        self._run_as = {}
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError("running as root needs the user postgres (created by the "
                                     "Debian package postgresql)") from None
            os.chmod(self.dir, 0o700)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        # A copy of a data directory initdb made once (about 1.5 s of CPU
        # saved per cluster: the suite starts about fifty), then a password
        # of the cluster's own.
        template = _template(self.bindir, self._run_as)
        result = subprocess.run(["cp", "-a", os.path.join(template, "data"), self.data],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"copying the initdb template failed: {result.stderr[-2000:]}")
        with open(os.path.join(template, "password")) as f:
            template_password = f.read().strip()
        if host != "127.0.0.1":
            # initdb admits loopback only; on another address, the clients of
            # the subnet it is on (NetnsPostgres: the veth pair's /30).
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
                f.write("host all all samenet scram-sha-256\n")
        self.password, password = template_password, self.password
        self.start()
        conn = self.connect("postgres")
        try:
            conn.cursor().execute("ALTER USER postgres PASSWORD %s", (password,))
        finally:
            conn.close()
        self.password = password

    def url(self, database, password=None, port=None, user="postgres"):
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@{self.host}:{port or self.port}/{database}?sslmode=disable"

    def start(self, timeout=PG_START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "postgres already running"
        log = open(self.log_path, "ab")
        prefix, run_as = [], self._run_as
        if self.netns is not None:
            # `ip netns exec` needs root; postgres refuses it: setpriv drops to
            # `postgres` inside the namespace (each execs, so the pid is the
            # postmaster's).
            prefix = ["/usr/sbin/ip", "netns", "exec", self.netns]
            if run_as:
                prefix += ["setpriv", f"--reuid={run_as['user']}",
                           f"--regid={run_as['group']}", "--clear-groups"]
                run_as = {}
        try:
            self.proc = subprocess.Popen(
                [*prefix, os.path.join(self.bindir, "postgres"), "-D", self.data,
                 "-p", str(self.port), "-k", self.dir, "-c", f"listen_addresses={self.host}",
                 "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=300", "-c", "shared_buffers=32MB",
                 *[arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")]],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
                **run_as)
        finally:
            log.close()
        with _live_lock:
            _live_processes.add(self.proc)
        last = [None]

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited with {self.proc.returncode}: "
                                     f"{self.log_tail()}")
            try:
                self.connect("postgres").close()
                return True
            except self.psycopg2.OperationalError as e:
                last[0] = e
                return False
        try:
            wait_until(answers, timeout, f"postgres on port {self.port} to accept connections",
                       interval=0.05)
        except WaitTimeout as e:
            self.stop()
            raise AssertionError(f"{e} ({last[0]}): {self.log_tail()}") from None
        return self

    def connect(self, database):
        conn = self.psycopg2.connect(host=self.host, port=self.port, user="postgres",
                                     password=self.password, dbname=database,
                                     connect_timeout=PG_CONNECT_TIMEOUT, sslmode="disable")
        conn.autocommit = True
        return conn

    def create_database(self, prefix="usher"):
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = self.connect("postgres")
        try:
            cursor = conn.cursor()
            # PostgreSQL 15's default strategy writes the whole template to
            # the WAL (about 0.2 s here); copying the files is 0.05 s, and a
            # throw-away cluster runs with fsync off anyway. Every server of
            # the integration.pg.* runs gets a database of its own.
            cursor.execute("SHOW server_version_num")
            copy = " STRATEGY file_copy" if int(cursor.fetchone()[0]) >= 150000 else ""
            cursor.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            conn.close()
        return name

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def stop(self, how="fast"):
        """Shuts the cluster down as `pg_ctl stop -m fast` (SIGINT: sessions
        are ended, then a checkpoint) or `-m immediate` (SIGQUIT: every
        process quits at once, the next start recovers from the WAL); SIGKILL
        if it does not end in 20 s. start() brings it back on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal({"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[how])
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            with _live_lock:
                _live_processes.discard(self.proc)

    def pids(self):
        """The postmaster and every process it started (backends included)."""
        found = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # ppid
                found.append(int(entry))
        return found

    def freeze(self):
        """SIGSTOP to every process of the cluster: a server that takes
        connections and statements and never answers (a hung host)."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_shared = None
_shared_lock = threading.Lock()


def shared_cluster():
    """The test process's one cluster, started on first use, closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PostgresCluster("pg-shared")
            atexit.register(_shared.close)
        return _shared


class PgQueryConnection:
    """A psycopg2 connection that takes the tests' SQLite-style statements:
    `?` placeholders, execute() returning a cursor with fetchall()/fetchone(),
    autocommit (what sqlite3's `with conn:` and commit() achieve)."""

    def __init__(self, conn):
        self._conn = conn

    @staticmethod
    def translate(sql, params):
        if params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return sql, tuple(params) if params else None

    def execute(self, sql, params=()):
        cur = self._conn.cursor()
        cur.execute(*self.translate(sql, params))
        return cur

    def commit(self):
        pass

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
