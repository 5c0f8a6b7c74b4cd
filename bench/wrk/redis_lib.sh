# shellcheck shell=bash
# Shared by bench/report.sh and bench/wrk/redis_intake.sh, redis_fallback.sh,
# redis_drain.sh and login_flood.sh; sourced, not run. Starts redis-server and usher processes on free loopback
# ports with bounded waits, kills every one of them on exit (trap), runs wrk
# with a bounded duration and parses its output, counts database rows, fills
# and waits out a backlog, opens the Redis circuit, reads RSS and the disk's
# fsync latency.
# Expects: set -euo pipefail, the working directory at the repository root.
# Env: USHER_BIN (default build/usher); any other usher setting is passed on
# (SQLITE_SYNCHRONOUS, JOB_CLAIM_BATCH, ...) except REDIS_URL/HOST/PORT,
# which the scripts set themselves. KEEP_WORK=1 keeps the temporary folder
# (databases, logs, wrk output) and prints its path.

BIN="${USHER_BIN:-build/usher}"
PY=/usr/bin/python3
unset REDIS_URL REDIS_HOST REDIS_PORT
WORK=$(mktemp -d)
CHILDREN=() # every background process started here

# A stopped child leaves the list, so its id (which the system may reuse)
# is never signalled again.
forget_pid() {
  local kept=() p
  for p in "${CHILDREN[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  CHILDREN=("${kept[@]}")
}

# Stops one child: SIGTERM, up to 10 s, then SIGKILL. Never waits unbounded.
stop_pid() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

bench_cleanup() {
  local pid
  for pid in "${CHILDREN[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "error: $*" >&2; exit 1; }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_redis: sets REDIS_PID and REDIS_PORT_NUM; waits up to 5 s for PONG.
start_redis() {
  REDIS_PORT_NUM=$(free_port)
  redis-server --port "$REDIS_PORT_NUM" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$WORK/redis-$REDIS_PORT_NUM.log" 2>&1 &
  REDIS_PID=$!
  CHILDREN+=("$REDIS_PID")
  for _ in $(seq 50); do
    [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  die "redis-server did not answer on port $REDIS_PORT_NUM (log: $(cat "$WORK/redis-$REDIS_PORT_NUM.log"))"
}

# Kills redis-server with SIGKILL (the failure the fallback measures).
kill_redis() {
  kill -KILL "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  forget_pid "$REDIS_PID"
}

rcli() { timeout 5 redis-cli -p "$REDIS_PORT_NUM" "$@"; }

# seeded_template N: prints the path of a migrated database holding N
# existing customers (bench/seed_accounts.py), made once per N and schema
# (binaries with the same migrations share it).
seeded_template() {
  local n="$1" key template
  rm -f "$WORK/schema.db" "$WORK/schema.db-wal" "$WORK/schema.db-shm"
  DATABASE_URL="sqlite:$WORK/schema.db" "$BIN" migrate >/dev/null
  key=$("$PY" -c 'import sqlite3,sys; print("\n".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")))' "$WORK/schema.db" | md5sum | cut -c1-8)
  template="$WORK/seeded-$key-$n.db"
  if [ ! -f "$template" ]; then
    cp "$WORK/schema.db" "$template.tmp"
    "$PY" bench/seed_accounts.py "$template.tmp" "$n" || die "seeding $n accounts failed"
    mv "$template.tmp" "$template"
  fi
  echo "$template"
}

# fresh_db DIR MODE [ACCOUNTS]: a new SQLite database in DIR (exports
# DATABASE_URL and TOKEN), a copy of one with ACCOUNTS existing customers
# when ACCOUNTS > 0. Sets SEEDED to ACCOUNTS: the ids 1..SEEDED of accounts
# and jobs are the seeded rows.
fresh_db() {
  mkdir -p "$1"
  export DATABASE_URL="sqlite:$1/usher.db"
  DB="$1/usher.db"
  SEEDED="${3:-0}"
  if [ "$SEEDED" -gt 0 ]; then
    cp "$(seeded_template "$SEEDED")" "$DB"
  else
    "$BIN" migrate >/dev/null
  fi
  "$BIN" mode set "$2" --reason bench >/dev/null
  TOKEN=$("$BIN" token create --role sales_manager --name bench | tail -n 1)
  export TOKEN
}

# start_serve DIR [VAR=VALUE...]: `usher serve` on a free port with the given
# extra settings; sets SERVE_PID and URL. Waits up to 10 s for it to listen.
start_serve() {
  local dir="$1"
  shift
  env "$@" "$BIN" serve --usher-listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.err" &
  SERVE_PID=$!
  CHILDREN+=("$SERVE_PID")
  for _ in $(seq 100); do
    grep -q listening "$dir/serve.out" 2>/dev/null && break
    kill -0 "$SERVE_PID" 2>/dev/null || die "usher serve exited: $(tail -n 5 "$dir/serve.err")"
    sleep 0.1
  done
  # shellcheck disable=SC2034 # used by the scripts that source this file
  URL=$(grep -o 'http://[0-9.:]*' "$dir/serve.out") || die "usher serve did not listen within 10 s"
}

# sql QUERY: one number from the current database ($DB).
sql() { "$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1], timeout=30).execute(sys.argv[2]).fetchone()[0])' "$DB" "$1"; }

# run_wrk OUT CONNECTIONS SECONDS URL [LUA]: wrk -t1, bounded by `timeout`.
run_wrk() {
  local out="$1" c="$2" s="$3" url="$4" lua="${5:-}"
  local args=(-t1 -c"$c" -d"${s}s" --latency)
  [ -n "$lua" ] && args+=(-s "$lua")
  timeout $((s + 60)) wrk "${args[@]}" "$url" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
}

# wrk_fields FILE: "req/s p50_ms p99_ms requests non2xx socket_errors"
wrk_fields() {
  "$PY" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    m = re.fullmatch(r'([0-9.]+)(us|ms|s|m|h)', v)
    return float(m.group(1)) * {'us': 1e-3, 'ms': 1, 's': 1e3, 'm': 6e4, 'h': 3.6e6}[m.group(2)]
rps = float(re.search(r'Requests/sec:\s+([0-9.]+)', text).group(1))
p50 = ms(re.search(r'^\s+50%\s+(\S+)', text, re.M).group(1))
p99 = ms(re.search(r'^\s+99%\s+(\S+)', text, re.M).group(1))
total = int(re.search(r'(\d+) requests in', text).group(1))
m = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
non2xx = int(m.group(1)) if m else 0
m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', text)
errors = sum(map(int, m.groups())) if m else 0
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {total} {non2xx} {errors}")
EOF
}

# cpu_ms PID: CPU time (user + system) the process has used so far, in ms.
cpu_ms() {
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) } # fields after the command name
  read -r -a f <<<"$stat"
  echo $(((f[11] + f[12]) * 1000 / $(getconf CLK_TCK)))
}

# rss_kb PID: the process's resident set now and its peak, in KiB: "NOW PEAK".
rss_kb() {
  awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r + 0, h + 0}' "/proc/$1/status"
}

# fsync_ms DIR [N]: median and 90th percentile, in ms, of N (default 200)
# 4 KiB writes with O_DSYNC to a file in DIR: the least one durable commit
# costs on that disk. Prints "MEDIAN P90".
fsync_ms() {
  "$PY" - "$1" "${2:-200}" <<'PY'
import os, sys, time
path, n = os.path.join(sys.argv[1], "fsync-probe"), int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o600)
block, t = os.urandom(4096), []
try:
    for i in range(n):
        s = time.perf_counter()
        os.pwrite(fd, block, (i % 16) * 4096)
        t.append((time.perf_counter() - s) * 1000)
finally:
    os.close(fd)
    os.unlink(path)
t.sort()
print(f"{t[n // 2]:.3f} {t[int(0.9 * (n - 1))]:.3f}")
PY
}

# wait_drained LIMIT: polls $DB until no job is queued or running (at most
# LIMIT seconds); prints the time it saw that, as seconds since the epoch.
wait_drained() {
  "$PY" - "$DB" "$1" <<'PY'
import sqlite3, sys, time
db, limit = sys.argv[1], float(sys.argv[2])
deadline = time.time() + limit
c = sqlite3.connect(db, timeout=30)
while True:
    left = c.execute("select count(*) from jobs where status in ('queued','running')").fetchone()[0]
    if left == 0:
        print(f"{time.time():.3f}")
        break
    if time.time() > deadline:
        print(f"not drained within {limit:.0f} s: {left} jobs left", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.02)
PY
}

# fill_queue N OUT: POSTs users to the serve at $URL (async_queue, no worker)
# in wrk slices (wrk has no request count) sized from the last rate, so the
# overshoot stays under about a second of intake, until at least N jobs are
# queued in $DB. Prints the number queued.
fill_queue() {
  local n="$1" out="$2" queued=0 rate=2000 secs rps
  while [ "$queued" -lt "$n" ]; do
    secs=$(((n - queued) / rate))
    secs=$((secs < 1 ? 1 : secs > 5 ? 5 : secs))
    run_wrk "$out" 32 "$secs" "$URL" bench/wrk/post_users.lua
    rps=$(wrk_fields "$out" | cut -d' ' -f1)
    rate=$((rps > 100 ? rps : 100))
    queued=$(sql "select count(*) from jobs where status='queued'")
  done
  echo "$queued"
}

readyz() { curl -s --max-time 5 "$URL/readyz" || true; }

# open_circuit DIR: with serve at $URL in async_queue and connected to the
# redis-server of start_redis, SIGKILLs that server, then POSTs warm-up users
# one at a time (each must be provisioned inline: 201, "fallback": true)
# until /readyz shows the circuit open (REDIS_BREAKER_FAILURES of them).
# Sets WARMED (how many) and WARM_CODES (their status codes).
open_circuit() {
  local dir="$1" i code
  for _ in $(seq 50); do readyz | grep -q '"circuit":"closed","healthy":true' && break; sleep 0.1; done
  readyz | grep -q '"circuit":"closed","healthy":true' || die "the Redis queue is not healthy: $(readyz)"
  kill_redis
  # shellcheck disable=SC2034 # used by the scripts that source this file
  WARMED=0 WARM_CODES=""
  for i in $(seq 20); do
    code=$(curl -s --max-time 10 -o "$dir/warm.json" -w '%{http_code}' -X POST "$URL/api/v1/users" \
      -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d "{\"email\":\"warmup-$i@bench.example.com\",\"full_name\":\"Warm Up\"}" || true)
    # shellcheck disable=SC2034 # used by the scripts that source this file
    WARM_CODES="$WARM_CODES $code" WARMED=$i
    if [ "$code" != 201 ] || ! grep -q '"fallback":true' "$dir/warm.json"; then
      die "warm-up $i answered $code: $(cat "$dir/warm.json")"
    fi
    readyz | grep -q '"circuit":"open"' && return 0
  done
  die "the circuit did not open after 20 requests: $(readyz)"
}

# median of the numbers on stdin (one per line)
median() { "$PY" -c 'import statistics,sys; v=[float(x) for x in sys.stdin.read().split()]; print(f"{statistics.median(v):.4g}" if v else "-")'; }
