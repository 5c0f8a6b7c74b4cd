#!/usr/bin/env bash
# Drain with the Redis queue: accept N jobs (async_queue, `usher serve` with
# START_WORKER=false, wrk POSTs in slices until at least N wait), stop serve,
# then start `usher worker` processes (same DATABASE_URL, and REDIS_URL when
# Redis is used) and time until every job is succeeded -> jobs/s. Four
# configurations per round, each on a fresh SQLite database (and a fresh key
# prefix on one redis-server started here), in an order rotated each round:
#   embedded x1, embedded x2, redis x1, redis x2   (x = worker processes)
# Checks after each drain: every job succeeded, accounts == jobs, no job with
# attempts > 1, nothing left in Redis (stream entries, pending, known ids).
# Prints each drain, then the medians over the rounds and the ratios taken
# within each round (two processes vs one, Redis vs embedded).
# Usage: bench/wrk/redis_drain.sh [JOBS] [ROUNDS]
#   env: USHER_BIN, extra usher settings (WORKER_CONCURRENCY, JOB_CLAIM_BATCH,
#   SQLITE_SYNCHRONOUS, ...), passed to serve and to every worker
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-20000}"
rounds="${2:-3}"
# shellcheck source=bench/wrk/redis_lib.sh
source bench/wrk/redis_lib.sh

start_redis
results="$WORK/results"
: >"$results"
failures=0
configs=("embedded 1" "embedded 2" "redis 1" "redis 2")
echo "$("$BIN" version | tail -n 1), $n jobs, $rounds rounds," \
  "redis-server $(redis-server --version | grep -o 'v=[0-9.]*'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# drain ROUND QUEUE(embedded|redis) PROCESSES
drain() {
  local round="$1" queue="$2" procs="$3" dir="$WORK/r$1-$2-$3" extra=() prefix="bench:r$1p$3:"
  fresh_db "$dir" async_queue
  if [ "$queue" = redis ]; then extra+=("REDIS_URL=redis://127.0.0.1:$REDIS_PORT_NUM/0" "REDIS_PREFIX=$prefix"); fi
  start_serve "$dir" START_WORKER=false "${extra[@]}"
  local queued
  queued=$(fill_queue "$n" "$dir/intake.wrk")
  stop_pid "$SERVE_PID" # every 202 was sent to Redis before it was answered
  local jobs
  jobs=$(sql "select count(*) from jobs")
  [ "$jobs" = "$queued" ] || die "$jobs jobs but $queued queued after intake"
  if [ "$queue" = redis ]; then
    [ "$(rcli xlen "${prefix}jobs")" = "$jobs" ] || die "the stream holds $(rcli xlen "${prefix}jobs") entries for $jobs jobs"
  fi

  local start end pids=() i cpu=0 rcpu0
  rcpu0=$(cpu_ms "$REDIS_PID")
  rcli config resetstat >/dev/null
  start=$(date +%s.%N)
  for i in $(seq "$procs"); do
    env "${extra[@]}" "$BIN" worker >"$dir/worker$i.out" 2>"$dir/worker$i.err" &
    pids+=($!)
    CHILDREN+=("$!")
  done
  end=$(wait_drained $((60 + n / 100))) || {
    echo "  $queue x$procs: NOT DRAINED: $(sql "select status || ' ' || count(*) from jobs group by status" | tr '\n' ' ')"
    failures=$((failures + 1))
    for i in "${pids[@]}"; do stop_pid "$i"; done
    return 0
  }
  for i in "${pids[@]}"; do cpu=$((cpu + $(cpu_ms "$i"))); done
  local rcpu=$(($(cpu_ms "$REDIS_PID") - rcpu0))
  for i in "${pids[@]}"; do stop_pid "$i"; done

  local secs_taken jps
  secs_taken=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$end")
  jps=$("$PY" -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.0f}')" "$jobs" "$secs_taken")
  echo "$round $queue$procs $jps" >>"$results"

  local succeeded accounts retried check="ok" redis_note=""
  succeeded=$(sql "select count(*) from jobs where status='succeeded'")
  accounts=$(sql "select count(*) from accounts")
  retried=$(sql "select count(*) from jobs where attempts > 1")
  if [ "$succeeded" != "$jobs" ] || [ "$accounts" != "$jobs" ] || [ "$retried" != 0 ]; then check="MISMATCH"; fi
  if [ "$queue" = redis ]; then
    local xlen pending known evals
    xlen=$(rcli xlen "${prefix}jobs")
    pending=$(rcli xpending "${prefix}jobs" workers | head -n 1)
    known=$(rcli scard "${prefix}known")
    # The scripts run during the drain (acknowledge, reschedule, promote and the
    # sweeper's dispatch) by SHA-1 (EVALSHA), or by text (EVAL) when Redis did
    # not know them yet.
    local stats evals evalshas
    stats=$(rcli info commandstats)
    evals=$(grep -o 'cmdstat_eval:calls=[0-9]*' <<<"$stats" | cut -d= -f2 || true)
    evalshas=$(grep -o 'cmdstat_evalsha:calls=[0-9]*' <<<"$stats" | cut -d= -f2 || true)
    redis_note=", Redis left: stream $xlen, pending $pending, known $known; EVALSHA calls ${evalshas:-0}, EVAL ${evals:-0}"
    if [ "$xlen" != 0 ] || [ "$pending" != 0 ] || [ "$known" != 0 ]; then check="MISMATCH (Redis)"; fi
  fi
  local warnings split
  # Every start warns that Telegram alerts are off; anything else is counted.
  warnings=$(cat "$dir"/worker*.err | grep -E ' (warning|error|critical) ' | grep -cv TELEGRAM_BOT_TOKEN || true)
  split=$(cat "$dir"/worker*.err | grep -o 'stopped after [0-9]* jobs' | grep -o '[0-9]*' | paste -sd+ || true)
  printf '  %-8s x%s  %6s jobs in %6s s = %6s jobs/s   worker CPU %s us/job, redis-server %s us/job\n' \
    "$queue" "$procs" "$jobs" "$secs_taken" "$jps" "$((cpu * 1000 / jobs))" "$((rcpu * 1000 / jobs))"
  echo "    succeeded $succeeded (per process $split), accounts $accounts, attempts > 1: $retried$redis_note;" \
    "other worker warnings/errors logged: $warnings: $check"
  [ "${check%% *}" = ok ] || failures=$((failures + 1))
}

for round in $(seq "$rounds"); do
  echo "== round $round"
  for k in 0 1 2 3; do
    # shellcheck disable=SC2086 # "QUEUE PROCESSES"
    drain "$round" ${configs[$(((k + round - 1) % 4))]}
  done
done

echo "== medians over $rounds rounds (ratios taken within each round)"
"$PY" - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r, what, jps = line.split()
    rows.setdefault(int(r), {})[what] = float(jps)
med = statistics.median
full = [x for x in rows.values() if len(x) == 4]
for what in ("embedded1", "embedded2", "redis1", "redis2"):
    v = [x[what] for x in rows.values() if what in x]
    print(f"  {what[:-1]:8} x{what[-1]}  {med(v):6.0f} jobs/s   (per round: " + ", ".join(f"{a:.0f}" for a in v) + ")")
def ratio(a, b):
    per = [x[a] / x[b] for x in full]
    if not per: return "-"
    return f"{med(per) * 100:5.1f} %  (per round: " + ", ".join(f"{p * 100:.1f}" for p in per) + ")"
print(f"  redis x2 / redis x1        {ratio('redis2', 'redis1')}")
print(f"  embedded x2 / embedded x1  {ratio('embedded2', 'embedded1')}")
print(f"  redis x1 / embedded x1     {ratio('redis1', 'embedded1')}")
print(f"  redis x2 / embedded x1     {ratio('redis2', 'embedded1')}")
EOF
if [ "$failures" != 0 ]; then
  echo "checks failed in $failures drains"
  exit 1
fi
echo "checks: every drain ok"
