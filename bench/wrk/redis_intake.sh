#!/usr/bin/env bash
# Intake with the Redis queue next to the embedded queue, in one run on one
# build: GET /healthz; POST /api/v1/users in async_queue (202, durable intake
# only, START_WORKER=false) with the embedded queue; the same with REDIS_URL
# set (a redis-server started here on a free loopback port, no persistence).
# Each POST run gets a fresh SQLite database and serve process. Prints req/s,
# p50, p99 and non-2xx of each run, checks after each run that every 2xx has
# a job row (and, with Redis, an entry in the stream and no inline fallback),
# then the medians over the rounds and the ratios (POST / healthz, Redis /
# embedded), each ratio taken within a round. The two POST runs alternate
# their order from round to round.
# Usage: bench/wrk/redis_intake.sh [CONNECTIONS] [SECONDS]
#   env: ROUNDS (default 3), USHER_BIN, extra usher settings (SQLITE_SYNCHRONOUS, ...)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections="${1:-32}"
seconds="${2:-10}"
rounds="${ROUNDS:-3}"
# shellcheck source=bench/wrk/redis_lib.sh
source bench/wrk/redis_lib.sh

start_redis
results="$WORK/results"
: >"$results"
failures=0
echo "$("$BIN" version | tail -n 1), wrk -t1 -c$connections -d${seconds}s, $rounds rounds," \
  "redis-server $(redis-server --version | grep -o 'v=[0-9.]*'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# post_run ROUND QUEUE(embedded|redis) HEALTHZ(yes|no)
post_run() {
  local round="$1" queue="$2" healthz="$3" dir="$WORK/r$1-$2" extra=()
  fresh_db "$dir" async_queue
  extra=(START_WORKER=false)
  if [ "$queue" = redis ]; then
    extra+=("REDIS_URL=redis://127.0.0.1:$REDIS_PORT_NUM/0" "REDIS_PREFIX=bench:r$round:")
  fi
  start_serve "$dir" "${extra[@]}"
  if [ "$healthz" = yes ]; then
    run_wrk "$dir/healthz.wrk" "$connections" "$seconds" "$URL/healthz"
    read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$dir/healthz.wrk")"
    printf '  %-16s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  socket errors %s\n' \
      healthz "$rps" "$p50" "$p99" "$non2xx" "$errors"
    echo "$round healthz $rps $p50 $p99" >>"$results"
  fi
  local cpu0 rcpu0 cpu rcpu
  cpu0=$(cpu_ms "$SERVE_PID")
  rcpu0=$(cpu_ms "$REDIS_PID")
  run_wrk "$dir/post.wrk" "$connections" "$seconds" "$URL" bench/wrk/post_users.lua
  cpu=$(($(cpu_ms "$SERVE_PID") - cpu0))
  rcpu=$(($(cpu_ms "$REDIS_PID") - rcpu0))
  stop_pid "$SERVE_PID"
  read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$dir/post.wrk")"
  printf '  %-16s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  socket errors %s\n' \
    "POST $queue" "$rps" "$p50" "$p99" "$non2xx" "$errors"
  echo "$round $queue $rps $p50 $p99" >>"$results"
  echo "    CPU per request: usher $((cpu * 1000 / total)) us, redis-server $((rcpu * 1000 / total)) us"

  # Every 2xx is a job row. wrk does not count the requests in flight when it
  # stops (or timed out), which the server may still have committed.
  local ok=$((total - non2xx)) jobs accounts queued check="ok"
  jobs=$(sql "select count(*) from jobs")
  accounts=$(sql "select count(*) from accounts")
  queued=$(sql "select count(*) from jobs where status='queued'")
  if [ "$jobs" -lt "$ok" ] || [ "$jobs" -gt $((ok + connections + errors)) ]; then check="MISMATCH"; fi
  # START_WORKER=false: an account means a request was provisioned inline.
  if [ "$accounts" != 0 ] || [ "$queued" != "$jobs" ]; then check="MISMATCH (inline fallback?)"; fi
  local redis_note=""
  if [ "$queue" = redis ]; then
    local xlen known
    xlen=$(rcli xlen "bench:r$round:jobs")
    known=$(rcli scard "bench:r$round:known")
    redis_note=", stream entries $xlen, known $known"
    if [ "$xlen" != "$jobs" ] || [ "$known" != "$jobs" ]; then
      check="MISMATCH (not every job is in Redis)"
    fi
  fi
  echo "    rows: 2xx $ok, jobs $jobs (queued $queued), accounts $accounts$redis_note: $check"
  [ "${check%% *}" = ok ] || failures=$((failures + 1))
  if grep -qiE 'circuit open|Redis call failed' "$dir/serve.err"; then
    echo "    serve.err: $(grep -ciE 'circuit open|Redis call failed' "$dir/serve.err") Redis failures logged"
  fi
}

for round in $(seq "$rounds"); do
  echo "== round $round"
  if [ $((round % 2)) = 1 ]; then
    post_run "$round" embedded yes
    post_run "$round" redis no
  else
    post_run "$round" redis yes
    post_run "$round" embedded no
  fi
done

echo "== medians over $rounds rounds (ratios taken within each round)"
"$PY" - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r, what, rps, p50, p99 = line.split()
    rows.setdefault(int(r), {})[what] = (float(rps), float(p50), float(p99))
med = statistics.median
for what in ("healthz", "embedded", "redis"):
    v = [x[what] for x in rows.values()]
    name = "healthz" if what == "healthz" else f"POST {what}"
    print(f"  {name:16} {med(a for a, _, _ in v):8.0f} req/s  p50 {med(b for _, b, _ in v):6.2f} ms"
          f"  p99 {med(c for _, _, c in v):6.2f} ms   (req/s per round: "
          + ", ".join(f"{a:.0f}" for a, _, _ in v) + ")")
def ratio(a, b):
    per = [x[a][0] / x[b][0] for x in rows.values()]
    return f"{med(per) * 100:5.1f} %  (per round: " + ", ".join(f"{p * 100:.1f}" for p in per) + ")"
print(f"  POST embedded / healthz  {ratio('embedded', 'healthz')}")
print(f"  POST redis / healthz     {ratio('redis', 'healthz')}")
print(f"  POST redis / embedded    {ratio('redis', 'embedded')}")
per = [x['redis'][2] - x['embedded'][2] for x in rows.values()]
print(f"  p99 redis - embedded     {med(per):+.2f} ms (per round: " + ", ".join(f"{p:+.2f}" for p in per) + ")")
EOF
if [ "$failures" != 0 ]; then
  echo "row checks failed in $failures runs"
  exit 1
fi
echo "row checks: every run ok"
