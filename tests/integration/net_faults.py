"""Real network faults for usher's integration tests (Python 3 standard library
plus iproute2).

NetnsRedis puts a real redis-server on the far side of a veth pair in a network
namespace of its own, on a private /30 used only by that pair; cut() sets the
namespace's end of the link down (a true partition: packets vanish, connects
and calls hang until their timeout, nothing is refused) and restore() sets it
up again. It needs root and `ip`: without them the test FAILS, never skips
(CI runs as root; the network-fault tests must run there).

A link's within(make) runs `make` on a thread that joined the namespace
(setns), so the sockets it creates listen on the far side: the fake Telegram
Bot API goes there too (FakeTelegram(..., within=link.within)), and a cut
takes it away with the server behind it.

FaultProxy is a small TCP proxy between usher and a server on loopback
(redis-server, PostgreSQL) that adds latency, drops a share of the forwarded
chunks (bytes vanish from the stream, as on a lossy link that the transport
cannot repair) and stalls
every connection (nothing forwarded, nothing closed), for the faults this
machine's kernel cannot add (no `tc netem`).

Load is the traffic the fault tests run while a fault lasts: client threads
POSTing new users, and a watcher sampling /readyz, each answer recorded with
the phase of the test it began in.

Every process started here is registered with usher_harness's atexit
leftover-killer; every wait has a bound.
"""

import ctypes
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import namedtuple

from redis_harness import REDIS_SERVER, RedisError, redis_command
from usher_harness import WaitTimeout, _live_lock, _live_processes, unique_email, wait_until

IP = "/usr/sbin/ip"
CMD_TIMEOUT = 10.0
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args, netns=None):
    cmd = [IP, "netns", "exec", netns, IP, *args] if netns else [IP, *args]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}): "
                             f"{result.stderr.strip()}")
    return result.stdout


def require_netns():
    """Fails (never skips) when network namespaces cannot be made here."""
    if not (os.path.isfile(IP) and os.access(IP, os.X_OK)):
        raise AssertionError(f"{IP} is missing: install the Debian package iproute2 "
                             "(scripts/install-deps.sh does)")
    if os.geteuid() != 0:
        raise AssertionError("the network-fault tests need root (ip netns, veth): CI runs "
                             "them as root; run `sudo ctest -R integration.test_partition`")


class _NetnsLink:
    """Namespace `usher-<tag>` joined to this one by veth `uh<tag>` (host
    side, .1) and `un<tag>` (namespace side, .2) on 10.250.X.Y/30; a
    subclass's start() runs its server on the far side."""

    def _setup(self, tag):
        pid = os.getpid()
        tag = tag or f"{pid % 100000}"
        self.netns = f"usher-{tag}"
        self.host_if = f"uh{tag}"[:15]
        self.ns_if = f"un{tag}"[:15]
        # A /30 of 10.250.0.0/16 from the process id: parallel test processes
        # (different ids) get different pairs.
        third, fourth = (pid >> 6) & 255, (pid & 63) * 4
        self.host_ip = f"10.250.{third}.{fourth + 1}"
        self.ns_ip = f"10.250.{third}.{fourth + 2}"
        self._made = False

    def _make(self):
        self._remove_leftovers()
        _ip("netns", "add", self.netns)
        self._made = True
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.netns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, netns=self.netns)
        _ip("link", "set", self.ns_if, "up", netns=self.netns)
        _ip("link", "set", "lo", "up", netns=self.netns)

    def _remove_leftovers(self):
        """A namespace or link of the same name left by a killed earlier run."""
        for cmd in ([IP, "netns", "del", self.netns], [IP, "link", "del", self.host_if]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)

    def within(self, make):
        """make() on a thread of its own that joined the namespace; returns its
        result. A socket it creates belongs to the namespace (a listener there
        binds the far end's address, self.ns_ip) and works from any thread."""
        result, failure = [], []

        def run():
            try:
                with open(f"/run/netns/{self.netns}") as ns:
                    if _libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.netns} failed")
                result.append(make())
            except BaseException as e:  # noqa: BLE001 - raised again by the caller
                failure.append(e)
        # The thread ends inside the namespace: only it ever joined it.
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(CMD_TIMEOUT)
        if failure:
            raise failure[0]
        if not result:
            raise AssertionError(f"make() inside {self.netns} did not return in {CMD_TIMEOUT} s")
        return result[0]

    def cut(self):
        """The namespace's end goes down: packets to and from it vanish."""
        _ip("link", "set", self.ns_if, "down", netns=self.netns)

    def restore(self):
        _ip("link", "set", self.ns_if, "up", netns=self.netns)


class NetnsRedis(_NetnsLink):
    """redis-server in namespace `usher-<tag>`, reached through veth `uh<tag>`
    (host side, .1) and `un<tag>` (namespace side, .2) on 10.250.X.Y/30."""

    PORT = 6379

    def __init__(self, tag=None):
        require_netns()
        if not (os.path.isfile(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
            raise AssertionError(f"{REDIS_SERVER} is missing: install redis-server")
        self._setup(tag)
        self.dir = tempfile.mkdtemp(prefix="usher-netns-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        try:
            self._make()
            self.start()
        except BaseException:
            self.close()
            raise

    @property
    def url(self):
        return f"redis://{self.ns_ip}:{self.PORT}/0"

    def start(self, timeout=10.0):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [IP, "netns", "exec", self.netns, REDIS_SERVER, "--bind", self.ns_ip,
                 "--port", str(self.PORT), "--save", "", "--appendonly", "no",
                 "--protected-mode", "no", "--daemonize", "no", "--dir", self.dir],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        finally:
            log.close()
        with _live_lock:
            _live_processes.add(self.proc)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log_tail()}")
            try:
                return self.command("PING", timeout=1.0) == "PONG"
            except (OSError, ConnectionError, RedisError):
                return False
        wait_until(answers, timeout, f"redis-server at {self.ns_ip} to answer PING", interval=0.05)
        return self

    def command(self, *args, timeout=5.0):
        return redis_command(self.PORT, *args, timeout=timeout, host=self.ns_ip)

    def reachable(self):
        try:
            return self.command("PING", timeout=0.5) == "PONG"
        except (OSError, ConnectionError, RedisError):
            return False

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def close(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            with _live_lock:
                _live_processes.discard(self.proc)
        finally:
            if self._made:
                self._remove_leftovers()  # deleting the namespace deletes the pair
            shutil.rmtree(self.dir, ignore_errors=True)


class NetnsPostgres(_NetnsLink):
    """A throw-away PostgreSQL cluster (pg_harness.PostgresCluster) listening
    only on the namespace's address: usher reaches it across the veth pair,
    and cut() is a true partition between them. `cluster` is the
    PostgresCluster (url(), connect(), create_database() on the far-side
    address)."""

    def __init__(self, tag=None, settings=None):
        require_netns()
        from pg_harness import PostgresCluster  # noqa: PLC0415 (needs psycopg2)
        self._setup(tag)
        self.cluster = None
        try:
            self._make()
            self.cluster = PostgresCluster("pg-netns", settings, host=self.ns_ip,
                                           netns=self.netns)
        except BaseException:
            self.close()
            raise

    def reachable(self, timeout=1):
        """A TCP connection to postgres's port within `timeout` seconds."""
        try:
            with socket.create_connection((self.ns_ip, self.cluster.port), timeout=timeout):
                return True
        except OSError:
            return False

    def close(self):
        try:
            if self.cluster is not None:
                self.cluster.close()
        finally:
            if self._made:
                self._remove_leftovers()


class FaultProxy:
    """127.0.0.1:<port> -> target, one reader and one writer thread per direction
    of each connection. Faults, changeable at any time:

    - latency_s: each chunk is written this long after it was read (each
      direction; a request and its reply pay it twice), order kept;
    - drop_share: each chunk read is dropped with this probability;
    - stall(): nothing is forwarded (held, connections stay open) until unstall().
    """

    CHUNK = 65536

    def __init__(self, target_port, target_host="127.0.0.1", seed=1):
        self.target = (target_host, target_port)
        self.latency_s = 0.0
        self.drop_share = 0.0
        self.dropped_chunks = 0
        self._random = random.Random(seed)
        self._cond = threading.Condition()
        self._stalled = False
        self._closing = False
        self._sockets = set()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def stall(self):
        with self._cond:
            self._stalled = True

    def unstall(self):
        with self._cond:
            self._stalled = False
            self._cond.notify_all()

    def close(self):
        with self._cond:
            self._closing = True
            self._stalled = False
            self._cond.notify_all()
            sockets = list(self._sockets)
        for s in [self.listener, *sockets]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._cond:
                if self._closing:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                pending = []  # (due, bytes or None for the end)
                held = threading.Condition()
                threading.Thread(target=self._read, args=(src, dst, pending, held),
                                 daemon=True).start()
                threading.Thread(target=self._write, args=(dst, src, pending, held),
                                 daemon=True).start()

    def _read(self, src, dst, pending, held):
        while True:
            try:
                data = src.recv(self.CHUNK)
            except OSError:
                data = b""
            with self._cond:
                drop = bool(data) and self.drop_share > 0 and \
                    self._random.random() < self.drop_share
                if drop:
                    self.dropped_chunks += 1
                latency = self.latency_s
            if drop:
                continue
            with held:
                pending.append((time.monotonic() + latency, data or None))
                held.notify()
            if not data:
                return

    def _write(self, dst, src, pending, held):
        while True:
            with held:
                while not pending:
                    held.wait(1.0)
                due, data = pending[0]
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)  # the latency the proxy adds, by design
            with self._cond:
                while self._stalled and not self._closing:
                    self._cond.wait(1.0)
                if self._closing:
                    return
            with held:
                pending.pop(0)
            try:
                if data is None:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return


# One POST /api/v1/users: the test's phase when it began, the email, the
# status (None for a transport error), whether it carried Retry-After, its
# JSON body, when it began and ended (time.monotonic()) and the error.
class Answer(namedtuple("Answer", "phase email status retry_after json started finished error")):
    __slots__ = ()

    @property
    def seconds(self):
        return self.finished - self.started


# One /readyz sample: the phase, the status (or the error), Retry-After, the JSON.
Ready = namedtuple("Ready", "phase status retry_after json")


class Load:
    """`clients` threads POSTing fresh emails until stop() (`tag` in the
    emails, `full_name` in the bodies), and a watcher sampling /readyz every
    `watch_every` s; each answer recorded as an Answer, each sample as a
    Ready, with the phase the test set (load.phase = ...) when it began.
    `timeout`: the clients' (and, unless `ready_timeout`, the watcher's): a
    call that hangs past it shows as a transport error. After a 503 a client
    waits 50 ms, as one honouring Retry-After would, briefly."""

    def __init__(self, server, clients, timeout, tag, full_name, ready_timeout=None,
                 watch_every=0.2):
        self.server = server
        self.timeout = timeout
        self.ready_timeout = timeout if ready_timeout is None else ready_timeout
        self.watch_every = watch_every
        self.tag = tag
        self.full_name = full_name
        self.phase = "before"
        self.records = []
        self.ready = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(clients)]
        self.threads.append(threading.Thread(target=self._watch, daemon=True))
        for t in self.threads:
            t.start()

    def _client(self, i):
        while not self.stopping.is_set():
            email = unique_email(f"{self.tag}{i}")
            phase = self.phase
            started = time.monotonic()
            try:
                resp = self.server.request("POST", "/api/v1/users", token="sales",
                                           timeout=self.timeout,
                                           body={"email": email, "full_name": self.full_name})
                got = (resp.status, "retry-after" in resp.headers, resp.json, None)
            except Exception as e:  # noqa: BLE001 - a transport error is a failure, reported
                got = (None, False, None, repr(e))
            with self.lock:
                self.records.append(Answer(phase, email, got[0], got[1], got[2], started,
                                           time.monotonic(), got[3]))
            if got[0] == 503:
                self.stopping.wait(0.05)

    def _watch(self):
        while not self.stopping.is_set():
            phase = self.phase
            try:
                r = self.server.get("/readyz", timeout=self.ready_timeout)
                seen = Ready(phase, r.status, "retry-after" in r.headers, r.json)
            except Exception as e:  # noqa: BLE001
                seen = Ready(phase, repr(e), False, None)
            with self.lock:
                self.ready.append(seen)
            self.stopping.wait(self.watch_every)

    def answers(self):
        with self.lock:
            return list(self.records)

    def count(self, phase, statuses=(201, 202)):
        """Answers begun in `phase` with one of `statuses` (a status or several)."""
        wanted = (statuses,) if isinstance(statuses, int) else tuple(statuses)
        with self.lock:
            return sum(1 for r in self.records if r.phase == phase and r.status in wanted)

    def ready_seen(self, phase, status):
        with self.lock:
            return any(r.phase == phase and r.status == status for r in self.ready)

    def circuit_seen(self, phase, circuit):
        """A /readyz sample in `phase` whose queue circuit was `circuit`."""
        with self.lock:
            return any(r.phase == phase and ((r.json or {}).get("queue") or {}).get("circuit")
                       == circuit for r in self.ready)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(max(self.timeout, self.ready_timeout) + 10)
        return not any(t.is_alive() for t in self.threads)


__all__ = ["NetnsRedis", "NetnsPostgres", "FaultProxy", "Load", "Answer", "Ready", "require_netns",
           "WaitTimeout"]
