#!/usr/bin/env bash
# Inline fallback when Redis is down, next to sync_direct, in one run on one
# build. Per round, each on a fresh SQLite database and serve process
# (START_WORKER=false in both, so only the requests use the CPU):
#   sync      POST /api/v1/users in sync_direct, no Redis: 201, provisioned inline
#   fallback  POST /api/v1/users in async_queue with REDIS_URL set, after the
#             redis-server was SIGKILLed and a few warm-up requests opened the
#             circuit: 201 "fallback": true, provisioned inline
# Prints req/s, p50, p99 and non-2xx of each run, checks that every answer was
# a 2xx and every job row is provisioned (accounts == jobs, none queued), and
# the medians over the rounds of the ratios taken within a round. Target
# (issue 4, item 7): fallback p99 within 5 ms of sync p99. The two runs
# alternate their order from round to round.
# Usage: bench/wrk/redis_fallback.sh [CONNECTIONS] [SECONDS]
#   env: ROUNDS (default 3), USHER_BIN, extra usher settings (SQLITE_SYNCHRONOUS, ...)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections="${1:-32}"
seconds="${2:-10}"
rounds="${ROUNDS:-3}"
# shellcheck source=bench/wrk/redis_lib.sh
source bench/wrk/redis_lib.sh

results="$WORK/results"
: >"$results"
failures=0
echo "$("$BIN" version | tail -n 1), wrk -t1 -c$connections -d${seconds}s, $rounds rounds," \
  "redis-server $(redis-server --version | grep -o 'v=[0-9.]*'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run ROUND sync|fallback
run() {
  local round="$1" what="$2" dir="$WORK/r$1-$2" warm="" warmed=0
  if [ "$what" = sync ]; then
    fresh_db "$dir" sync_direct
    start_serve "$dir" START_WORKER=false
  else
    start_redis
    fresh_db "$dir" async_queue
    start_serve "$dir" START_WORKER=false "REDIS_URL=redis://127.0.0.1:$REDIS_PORT_NUM/0" \
      "REDIS_PREFIX=bench:r$round:"
    open_circuit "$dir"
    warmed=$WARMED
    warm=" (warm-up answers:$WARM_CODES, then the circuit was open)"
  fi
  local cpu0 cpu
  cpu0=$(cpu_ms "$SERVE_PID")
  run_wrk "$dir/post.wrk" "$connections" "$seconds" "$URL" bench/wrk/post_users.lua
  cpu=$(($(cpu_ms "$SERVE_PID") - cpu0))
  local circuit
  circuit=$(readyz | grep -o '"circuit":"[a-z_]*"' || true)
  stop_pid "$SERVE_PID"
  read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$dir/post.wrk")"
  printf '  %-10s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  socket errors %s%s\n' \
    "$what" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$warm"
  echo "$round $what $rps $p50 $p99" >>"$results"
  echo "    CPU per request: usher $((cpu * 1000 / total)) us"

  local ok=$((total - non2xx + warmed)) jobs accounts done_jobs critical check="ok"
  jobs=$(sql "select count(*) from jobs")
  accounts=$(sql "select count(*) from accounts")
  done_jobs=$(sql "select count(*) from jobs where status='succeeded'")
  critical=$(sql "select coalesce(sum(repeat_count),0) || ' in ' || count(*) || ' rows' from system_health_logs where event_type='CRITICAL'")
  [ "$non2xx" = 0 ] || check="MISMATCH (non-2xx)"
  # wrk does not count the requests in flight when it stops, which the server
  # may still have committed.
  if [ "$jobs" -lt "$ok" ] || [ "$jobs" -gt $((ok + connections + errors)) ]; then check="MISMATCH (rows)"; fi
  # Every answer was a 201: each job is provisioned, none waits.
  if [ "$accounts" != "$jobs" ] || [ "$done_jobs" != "$jobs" ]; then
    check="MISMATCH (a job was not provisioned inline)"
  fi
  echo "    rows: 2xx $ok (warm-up included), jobs $jobs (succeeded $done_jobs), accounts $accounts; CRITICAL events $critical; ${circuit:-circuit ?} at the end: $check"
  [ "${check%% *}" = ok ] || failures=$((failures + 1))
}

for round in $(seq "$rounds"); do
  echo "== round $round"
  if [ $((round % 2)) = 1 ]; then
    run "$round" sync
    run "$round" fallback
  else
    run "$round" fallback
    run "$round" sync
  fi
done

echo "== medians over $rounds rounds (differences and ratios taken within each round)"
"$PY" - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r, what, rps, p50, p99 = line.split()
    rows.setdefault(int(r), {})[what] = (float(rps), float(p50), float(p99))
med = statistics.median
for what in ("sync", "fallback"):
    v = [x[what] for x in rows.values()]
    print(f"  {what:10} {med(a for a, _, _ in v):8.0f} req/s  p50 {med(b for _, b, _ in v):6.2f} ms"
          f"  p99 {med(c for _, _, c in v):6.2f} ms   (p99 per round: "
          + ", ".join(f"{c:.2f}" for _, _, c in v) + ")")
per = [x['fallback'][0] / x['sync'][0] for x in rows.values()]
print(f"  fallback / sync req/s    {med(per) * 100:5.1f} %  (per round: " + ", ".join(f"{p * 100:.1f}" for p in per) + ")")
diff = [x['fallback'][2] - x['sync'][2] for x in rows.values()]
d = med(diff)
print(f"  p99 fallback - sync      {d:+.2f} ms (per round: " + ", ".join(f"{p:+.2f}" for p in diff) + ")")
print(f"  target: fallback p99 within 5 ms of sync p99: {'met' if d <= 5 else 'NOT met'}"
      f" (median; met in {sum(p <= 5 for p in diff)} of {len(diff)} rounds)")
EOF
if [ "$failures" != 0 ]; then
  echo "checks failed in $failures runs"
  exit 1
fi
echo "checks: every run ok"
