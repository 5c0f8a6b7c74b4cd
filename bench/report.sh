#!/usr/bin/env bash
# One command for the whole performance table of issue 16, against the real
# build/usher on loopback, each scenario on a fresh SQLite database and a
# fresh process (wrk -t1 -cCONNECTIONS, --latency):
#   healthz        GET /healthz (the ceiling of the HTTP side; idle RSS first)
#   intake         POST /api/v1/users, async_queue, START_WORKER=false: 202
#   intake_worker  the same with serve's worker threads draining meanwhile
#   sync           POST /api/v1/users, sync_direct: 201, provisioned inline
#   fallback       async_queue with REDIS_URL at a redis-server started here
#                  and then SIGKILLed; warm-up requests open the circuit, then
#                  wrk measures the inline fallback (201, "fallback": true)
#   drain          JOBS jobs accepted (no worker), serve stopped, then one
#                  `usher worker` timed until nothing is queued or running
# With --accounts N (or ACCOUNTS=N in a variant), every scenario's database
# starts with N existing customers (bench/seed_accounts.py: account,
# profile, activation token, succeeded job, attempt), seeded once per N and
# copied for each run; the checks count only the rows the run added.
# Every scenario runs once per round; the order is rotated from round to
# round (and with several variants, their order reversed every other round).
# Prints every run, then per variant the medians over the rounds and each
# scenario's ratio to the /healthz of the same round and variant; the peak
# RSS of the measured usher process (/proc: VmHWM); usher's CPU per request;
# and the fsync latency of the disk the databases are on (4 KiB O_DSYNC
# writes), which says whether a commit or the CPU bounds the figures.
# Checks the rows after every run (every 2xx is a job; sync and fallback
# provisioned every job; a drain left every job succeeded, one account each)
# and exits 1 if a check failed.
#
# Usage: bench/report.sh [--seconds S] [--rounds R] [--jobs N] [--accounts N]
#          [--connections C] [--only SCENARIO,...] [--variant 'LABEL VAR=VALUE...']...
#   --seconds 15, --rounds 3, --jobs 20000, --accounts 0, --connections 32 by default.
#   --variant (repeatable) runs every scenario once per variant in each
#   round, with the given settings in the environment of every usher process
#   (values without spaces); USHER_BIN=PATH in a variant picks its binary,
#   ACCOUNTS=N its existing customers. E.g.
#     bench/report.sh --variant glibc \
#       --variant 'jemalloc LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'
#     bench/report.sh --only drain --variant empty --variant '1M ACCOUNTS=1000000'
#   Quick try: bench/report.sh --seconds 5 --rounds 1 --jobs 5000
#   env: USHER_BIN (default build/usher), KEEP_WORK=1, any usher setting.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=15
rounds=3
jobs=20000
accounts=0
connections=32
only="healthz,intake,intake_worker,sync,fallback,drain"
variants=()
usage() { sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --accounts) accounts="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --variant) variants+=("$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#variants[@]} -gt 0 ] || variants=("default")
for tool in wrk redis-server redis-cli curl /usr/bin/python3; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool is missing (scripts/install-deps.sh installs it)" >&2
    exit 1
  }
done

# shellcheck source=bench/wrk/redis_lib.sh
source bench/wrk/redis_lib.sh
DEFAULT_BIN="$BIN"
IFS=, read -r -a scenarios <<<"$only"
for s in "${scenarios[@]}"; do
  case "$s" in healthz | intake | intake_worker | sync | fallback | drain) ;; *) die "unknown scenario: $s" ;; esac
done
results="$WORK/results"
: >"$results"
failures=0

# use_variant INDEX: sets VLABEL, VENV (settings), BIN and ACCOUNTS for that variant.
use_variant() {
  local words w
  read -r -a words <<<"${variants[$1]}"
  VLABEL="${words[0]}"
  VENV=()
  BIN="$DEFAULT_BIN"
  ACCOUNTS="$accounts"
  for w in "${words[@]:1}"; do
    case "$w" in
      USHER_BIN=*) BIN="${w#USHER_BIN=}" ;;
      ACCOUNTS=*) ACCOUNTS="${w#ACCOUNTS=}" ;;
      *=*) VENV+=("$w") ;;
      *) die "variant '${variants[$1]}': '$w' is not VAR=VALUE" ;;
    esac
  done
  [ -x "$BIN" ] || die "no usher binary at $BIN (scripts/build.sh build Release)"
}
label_width=7
for i in "${!variants[@]}"; do
  use_variant "$i"
  label_width=$((${#VLABEL} > label_width ? ${#VLABEL} : label_width))
done

read -r fsync_med fsync_p90 < <(fsync_ms "$WORK")
use_variant 0
echo "# bench/report.sh: $("$BIN" version | tail -n 1), $(nproc) cores, wrk -t1 -c$connections -d${seconds}s," \
  "$rounds rounds, drain of $jobs jobs, $accounts existing accounts, redis-server $(redis-server --version | grep -o 'v=[0-9.]*')"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "fsync (4 KiB O_DSYNC write in $(df --output=source "$WORK" | tail -n 1)): median $fsync_med ms, p90 $fsync_p90 ms"

# check_rows OK_ANSWERS: every answered 2xx is a job row. wrk does not count
# the requests in flight when it stops (or timed out), which the server may
# still have committed. Sets CHECK.
check_rows() {
  local ok="$1" rows
  rows=$(($(sql "select count(*) from jobs") - SEEDED))
  CHECK=ok
  if [ "$rows" -lt "$ok" ] || [ "$rows" -gt $((ok + connections + errors)) ]; then
    CHECK="MISMATCH ($rows jobs for $ok answers)"
  fi
  [ "$non2xx" = 0 ] || CHECK="MISMATCH ($non2xx non-2xx answers)"
}

# post_wrk DIR: POST users to $URL for the run's duration; sets the fields of
# the run (rps p50 p99 total non2xx errors), CPU_US (usher's CPU per request)
# and RSS_PEAK (KiB).
post_wrk() {
  local cpu0
  cpu0=$(cpu_ms "$SERVE_PID")
  run_wrk "$1/post.wrk" "$connections" "$seconds" "$URL" bench/wrk/post_users.lua
  CPU_US=$((($(cpu_ms "$SERVE_PID") - cpu0) * 1000 / $(wrk_fields "$1/post.wrk" | cut -d' ' -f4)))
  RSS_PEAK=$(rss_kb "$SERVE_PID" | cut -d' ' -f2)
  read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$1/post.wrk")"
}

# scenario ROUND VARIANT_INDEX NAME
scenario() {
  local round="$1" name="$3" dir note="" idle=-
  use_variant "$2"
  dir="$WORK/r$round-$VLABEL-$name"
  CHECK=ok
  case "$name" in
    healthz)
      fresh_db "$dir" async_queue "$ACCOUNTS"
      start_serve "$dir" START_WORKER=false "${VENV[@]}"
      sleep 0.5
      idle=$(rss_kb "$SERVE_PID" | cut -d' ' -f1)
      local cpu0
      cpu0=$(cpu_ms "$SERVE_PID")
      run_wrk "$dir/healthz.wrk" "$connections" "$seconds" "$URL/healthz"
      read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$dir/healthz.wrk")"
      CPU_US=$((($(cpu_ms "$SERVE_PID") - cpu0) * 1000 / total))
      RSS_PEAK=$(rss_kb "$SERVE_PID" | cut -d' ' -f2)
      [ "$non2xx" = 0 ] || CHECK="MISMATCH ($non2xx non-2xx answers)"
      note="idle RSS $((idle / 1024)) MiB"
      ;;
    intake | intake_worker)
      fresh_db "$dir" async_queue "$ACCOUNTS"
      if [ "$name" = intake ]; then
        start_serve "$dir" START_WORKER=false "${VENV[@]}"
      else
        start_serve "$dir" START_WORKER=true "${VENV[@]}"
      fi
      post_wrk "$dir"
      local done_jobs queued accounts
      # What the worker did while the requests came (read before the
      # shutdown, which lets the worker finish its batch).
      local during
      during=$(($(sql "select count(*) from jobs where status='succeeded'") - SEEDED))
      queued=$(sql "select count(*) from jobs where status in ('queued','running')")
      stop_pid "$SERVE_PID"
      check_rows "$total"
      accounts=$(($(sql "select count(*) from accounts") - SEEDED))
      done_jobs=$(($(sql "select count(*) from jobs where status='succeeded'") - SEEDED))
      [ "$accounts" = "$done_jobs" ] || CHECK="MISMATCH ($accounts accounts for $done_jobs succeeded jobs)"
      if [ "$name" = intake ]; then
        [ "$done_jobs" = 0 ] || CHECK="MISMATCH ($done_jobs jobs provisioned with no worker)"
      else
        note="the worker provisioned $during during the run ($((during / seconds))/s), $queued waited at its end"
      fi
      ;;
    sync | fallback)
      if [ "$name" = sync ]; then
        fresh_db "$dir" sync_direct "$ACCOUNTS"
        start_serve "$dir" START_WORKER=false "${VENV[@]}"
        WARMED=0
      else
        start_redis
        fresh_db "$dir" async_queue "$ACCOUNTS"
        start_serve "$dir" START_WORKER=false "REDIS_URL=redis://127.0.0.1:$REDIS_PORT_NUM/0" \
          "REDIS_PREFIX=bench:r$round:" "${VENV[@]}"
        open_circuit "$dir"
        note="circuit opened by $WARMED warm-up requests"
      fi
      post_wrk "$dir"
      stop_pid "$SERVE_PID"
      check_rows "$((total + WARMED))"
      local rows accounts done_jobs
      rows=$(($(sql "select count(*) from jobs") - SEEDED))
      accounts=$(($(sql "select count(*) from accounts") - SEEDED))
      done_jobs=$(($(sql "select count(*) from jobs where status='succeeded'") - SEEDED))
      if [ "$accounts" != "$rows" ] || [ "$done_jobs" != "$rows" ]; then
        CHECK="MISMATCH (a job was not provisioned inline)"
      fi
      ;;
    drain)
      fresh_db "$dir" async_queue "$ACCOUNTS"
      start_serve "$dir" START_WORKER=false "${VENV[@]}"
      local queued start end pid cpu
      fill_queue "$jobs" "$dir/intake.wrk" >/dev/null
      stop_pid "$SERVE_PID"
      # Counted after serve stopped: the requests wrk left in flight (up to
      # one per connection) may commit after fill_queue's own count.
      queued=$(sql "select count(*) from jobs where status='queued'")
      start=$(date +%s.%N)
      env "${VENV[@]}" "$BIN" worker >"$dir/worker.out" 2>"$dir/worker.err" &
      pid=$!
      CHILDREN+=("$pid")
      if ! end=$(wait_drained $((60 + jobs / 100))); then
        stop_pid "$pid"
        failures=$((failures + 1))
        echo "  $(printf '%-14s' drain) NOT DRAINED: $(sql "select status || ' ' || count(*) from jobs group by status" | tr '\n' ' ')"
        return 0
      fi
      cpu=$(cpu_ms "$pid")
      RSS_PEAK=$(rss_kb "$pid" | cut -d' ' -f2)
      stop_pid "$pid"
      rps=$("$PY" -c "import sys; print(f'{int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])):.0f}')" \
        "$queued" "$start" "$end")
      p50=- p99=-
      CPU_US=$((cpu * 1000 / queued))
      local succeeded accounts retried
      succeeded=$(($(sql "select count(*) from jobs where status='succeeded'") - SEEDED))
      accounts=$(($(sql "select count(*) from accounts") - SEEDED))
      retried=$(sql "select count(*) from jobs where attempts > 1")
      if [ "$succeeded" != "$queued" ] || [ "$accounts" != "$queued" ] || [ "$retried" != 0 ]; then
        CHECK="MISMATCH (succeeded $succeeded, accounts $accounts, retried $retried of $queued)"
      fi
      note="$queued jobs in $("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$end") s, worker process, $SEEDED existing accounts"
      ;;
  esac
  [ "${CHECK%% *}" = ok ] || failures=$((failures + 1))
  # A seeded database is large (about 1.2 GB per million customers).
  [ "$SEEDED" = 0 ] || [ "${KEEP_WORK:-}" = 1 ] || rm -f "$DB" "$DB-wal" "$DB-shm"
  printf '  %-*s %-14s %7s %-7s p50 %6s ms  p99 %6s ms  RSS peak %5.1f MiB  CPU %4s us/%s  %s%s\n' \
    "$label_width" "$VLABEL" "$name" "$rps" "$([ "$name" = drain ] && echo users/s || echo req/s)" "$p50" "$p99" \
    "$(echo "$RSS_PEAK" | awk '{print $1 / 1024}')" "$CPU_US" "$([ "$name" = drain ] && echo user || echo req)" \
    "$CHECK" "${note:+; $note}"
  echo "$round $VLABEL $name $rps $p50 $p99 $RSS_PEAK $CPU_US $idle" >>"$results"
}

n_scen=${#scenarios[@]}
n_var=${#variants[@]}
for round in $(seq "$rounds"); do
  echo "== round $round"
  for k in $(seq 0 $((n_scen - 1))); do
    s="${scenarios[$(((k + round - 1) % n_scen))]}"
    for j in $(seq 0 $((n_var - 1))); do
      v=$j
      [ $((round % 2)) = 1 ] || v=$((n_var - 1 - j))
      scenario "$round" "$v" "$s"
    done
  done
done

echo "== medians over $rounds rounds; ratios taken within each round (/healthz: same round and variant)"
labels=()
for i in "${!variants[@]}"; do
  read -r -a words <<<"${variants[$i]}"
  labels+=("${words[0]}")
done
"$PY" - "$results" "${labels[@]}" <<'PY'
import statistics, sys
rows = {}  # (variant, scenario) -> {round: (rate, p50, p99, rss_kib, cpu_us, idle_kib)}
for line in open(sys.argv[1]):
    r, v, s, rate, p50, p99, rss, cpu, idle = line.split()
    num = lambda x: None if x == "-" else float(x)
    rows.setdefault((v, s), {})[int(r)] = (float(rate), num(p50), num(p99), float(rss), float(cpu), num(idle))
labels = sys.argv[2:]
order = ["healthz", "intake", "intake_worker", "sync", "fallback", "drain"]
med = statistics.median
def fmt(x, f):
    return "-" if x is None else format(x, f)
for v in labels:
    print(f"\nvariant {v}:\n")
    print("| scenario | rate (median) | p50 ms | p99 ms | of /healthz (per round) | RSS peak MiB | CPU µs per request |")
    print("|---|---|---|---|---|---|---|")
    hz = rows.get((v, "healthz"), {})
    for s in order:
        if (v, s) not in rows:
            continue
        runs = rows[(v, s)]
        rate = med(x[0] for x in runs.values())
        p50 = [x[1] for x in runs.values() if x[1] is not None]
        p99 = [x[2] for x in runs.values() if x[2] is not None]
        per = [runs[r][0] / hz[r][0] for r in runs if r in hz]
        ratio = "-" if s == "healthz" or not per else \
            f"{med(per) * 100:.1f} % ({', '.join(f'{p * 100:.1f}' for p in per)})"
        unit = "users/s" if s == "drain" else "req/s"
        name = {"healthz": "`GET /healthz`", "intake": "intake, no worker",
                "intake_worker": "intake, worker draining", "sync": "sync_direct",
                "fallback": "fallback (Redis killed)", "drain": "drain (`usher worker`)"}[s]
        print(f"| {name} | {rate:,.0f} {unit} | {fmt(med(p50) if p50 else None, '.2f')} | "
              f"{fmt(med(p99) if p99 else None, '.2f')} | {ratio} | "
              f"{max(x[3] for x in runs.values()) / 1024:.1f} | {med(x[4] for x in runs.values()):.0f} |")
    idle = [x[5] for x in hz.values() if x[5] is not None]
    if idle:
        print(f"\nidle RSS of serve (before the /healthz run): {med(idle) / 1024:.1f} MiB")
if len(labels) > 1:
    base = labels[0]
    print(f"\nvariants against {base} (rate, and usher's CPU per request, as ratios: medians of the"
          " per-round ratios, per round in parentheses; p99 as a difference):\n")
    w = max(len(v) for v in labels[1:]) + len(base) + 3
    for v in labels[1:]:
        for s in order:
            a, b = rows.get((v, s), {}), rows.get((base, s), {})
            per = [a[r][0] / b[r][0] for r in a if r in b]
            if per:
                cpu = [a[r][4] / b[r][4] for r in a if r in b and b[r][4] > 0]
                p99 = [a[r][2] - b[r][2] for r in a if r in b and a[r][2] is not None and b[r][2] is not None]
                d99 = f", p99 {med(p99):+.2f} ms" if p99 else ""
                dcpu = f"; CPU {med(cpu) * 100:.1f} % ({', '.join(f'{p * 100:.1f}' for p in cpu)})" if cpu else ""
                print(f"  {v + ' / ' + base:{w}} {s:14} rate {med(per) * 100:6.1f} %"
                      f"  ({', '.join(f'{p * 100:.1f}' for p in per)}){d99}{dcpu}")
PY
echo
echo "# ended $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "fsync median $(fsync_ms "$WORK" | cut -d' ' -f1) ms at the end"
if [ "$failures" != 0 ]; then
  echo "checks failed in $failures runs"
  exit 1
fi
echo "checks: every run ok"
