#!/usr/bin/python3
"""PostgreSQL benchmarks (issue 12 item 5; docs/benchmarks.md), in one run:

1. intake (POST /api/v1/users, async_queue, no worker) on PostgreSQL and on
   SQLite, next to GET /healthz of the same PostgreSQL server;
2. drain: N jobs accepted, then 1, 2 and 4 `usher worker` processes timed
   until none is queued or running;
3. drain with the accounts table empty and with ROWS existing accounts.

A throw-away PostgreSQL cluster (tests/integration/pg_harness.py) on
loopback, durable like production (fsync, synchronous_commit and
full_page_writes on), and the real build/usher. Loopback only.

Usage: bench/pg.py [--jobs N] [--seconds S] [--rows ROWS]   (env: USHER_BIN)
"""

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("USHER_BIN", os.path.join(ROOT, "build", "usher"))

from pg_harness import PostgresCluster  # noqa: E402

USHER = os.environ["USHER_BIN"]
POST_LUA = os.path.join(HERE, "wrk", "post_users.lua")
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def usher_env(database_url, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    env.update({"DATABASE_URL": database_url, "USHER_LISTEN": "127.0.0.1:0",
                "LOG_LEVEL": "warning"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(env, *args):
    return subprocess.run([USHER, *args], env=env, check=True, capture_output=True,
                          text=True).stdout


class Serve:
    def __init__(self, workdir, env):
        self.out = os.path.join(workdir, f"serve-{time.monotonic_ns()}.out")
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen([USHER, "serve"], env=env, stdout=out,
                                         stderr=subprocess.DEVNULL, cwd=workdir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.out) as f:
                match = re.search(r"listening on (http://[0-9.:]+)", f.read())
            if match:
                self.url = match.group(1)
                return
            time.sleep(0.05)
        raise SystemExit("usher serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def wrk(url, seconds, token=None, script=None):
    env = dict(os.environ, TOKEN=token or "")
    args = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run([*args, url], env=env, capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rate, float(p99.group(1)) * scale


def prepare(database_url):
    env = usher_env(database_url)
    cli(env, "migrate")
    cli(env, "mode", "set", "async_queue", "--reason", "benchmark")
    token = cli(env, "token", "create", "--role", "sales_manager", "--name", "bench").split()[-1]
    return env, token


def intake(workdir, database_url, seconds, with_healthz=False):
    env, token = prepare(database_url)
    serve = Serve(workdir, {**env, "START_WORKER": "false"})
    try:
        healthz = wrk(serve.url + "/healthz", seconds) if with_healthz else None
        post = wrk(serve.url, seconds, token, POST_LUA)
    finally:
        serve.stop()
    return healthz, post


def queued(cluster, database, statuses=("queued", "running")):
    conn = cluster.connect(database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM jobs WHERE status = ANY(%s)", (list(statuses),))
        return cur.fetchone()[0]
    finally:
        conn.close()


def drain(workdir, cluster, database, jobs, processes, seconds_slice=3):
    """Accepts at least `jobs` jobs, then times `processes` workers until done."""
    env, token = prepare(cluster.url(database))
    serve = Serve(workdir, {**env, "START_WORKER": "false"})
    try:
        while queued(cluster, database, ("queued",)) < jobs:
            wrk(serve.url, seconds_slice, token, POST_LUA)
    finally:
        serve.stop()
    waiting = queued(cluster, database, ("queued",))
    started = time.monotonic()
    workers = [subprocess.Popen([USHER, "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=workdir)
               for _ in range(processes)]
    try:
        while queued(cluster, database) > 0:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
    return waiting, elapsed


def grow(cluster, database, rows):
    """`rows` existing accounts (with a profile each), as if provisioned earlier."""
    conn = cluster.connect(database)
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO accounts (email, email_normalized, created_at) "
                    "SELECT 'old' || g || '@bench.example.com', 'old' || g || '@bench.example.com', "
                    "'2026-01-01T00:00:00.000Z' FROM generate_series(1, %s) g", (rows,))
        cur.execute("INSERT INTO tripwire_users (user_id, full_name, created_by, created_at) "
                    "SELECT id, 'Old Buyer', 'bench', created_at FROM accounts")
        cur.execute("ANALYZE")
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1000000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="usher-bench-pg-")
    cluster = PostgresCluster("bench-pg", settings=DURABLE)
    try:
        print(f"# {USHER}; PostgreSQL {cluster.bindir.split('/')[-2]} on loopback "
              f"(fsync, synchronous_commit on); {os.cpu_count()} cores; wrk -t1 -c32")
        healthz, pg_post = intake(workdir, cluster.url(cluster.create_database("intake")),
                                  args.seconds, with_healthz=True)
        _, sqlite_post = intake(workdir, f"sqlite:{workdir}/intake.db", args.seconds)
        print("\n| intake (no worker) | req/s | p99 ms | of /healthz |\n|---|---|---|---|")
        print(f"| GET /healthz (PostgreSQL server) | {healthz[0]:,.0f} | {healthz[1]:.1f} | 100 % |")
        for name, (rate, p99) in (("POST, PostgreSQL", pg_post), ("POST, SQLite", sqlite_post)):
            print(f"| {name} | {rate:,.0f} | {p99:.1f} | {100 * rate / healthz[0]:.0f} % |")

        print(f"\n| drain on PostgreSQL | jobs | seconds | users/s | vs 1 process |\n"
              f"|---|---|---|---|---|")
        base = None
        for processes in (1, 2, 4):
            waiting, elapsed = drain(workdir, cluster, cluster.create_database(f"drain{processes}"),
                                     args.jobs, processes)
            rate = waiting / elapsed
            base = base or rate
            print(f"| {processes} `usher worker` | {waiting:,} | {elapsed:.2f} | {rate:,.0f} | "
                  f"{rate / base:.2f}x |", flush=True)

        print(f"\n| drain (1 process) as the table grows | existing accounts | jobs | users/s |\n"
              f"|---|---|---|---|")
        for rows in (0, args.rows):
            database = cluster.create_database(f"grow{rows}")
            if rows:
                env, _ = prepare(cluster.url(database))
                grow(cluster, database, rows)
            waiting, elapsed = drain(workdir, cluster, database, args.jobs, 1)
            print(f"| | {rows:,} | {waiting:,} | {waiting / elapsed:,.0f} |", flush=True)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
