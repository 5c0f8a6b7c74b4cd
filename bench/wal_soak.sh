#!/usr/bin/env bash
# Sustained intake with the worker draining, for DURATION seconds, sampling
# the SQLite -wal file and usher's RSS every second: the WAL must stay near
# SQLITE_WAL_LIMIT_MIB (default 64) and RSS flat. Prints the peak and final
# WAL size, the RSS at 10 s and at the end, and the writer's checkpoint
# pauses from its log lines.
# Usage: bench/wal_soak.sh [DURATION_SECONDS] [CONNECTIONS]
#   (env: USHER_BIN, KEEP_WORK=1, any usher setting, e.g. SQLITE_WAL_LIMIT_MIB)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/wrk/redis_lib.sh
. bench/wrk/redis_lib.sh
duration="${1:-120}"
connections="${2:-32}"

fresh_db "$WORK/db" async_queue
start_serve "$WORK/db"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVE_PID/status"; }
wal_bytes() { stat -c %s "$DB-wal" 2>/dev/null || echo 0; }

echo "$("$BIN" version | tail -n 1), $(nproc) cores, ${duration} s, wrk -c$connections," \
  "SQLITE_WAL_LIMIT_MIB=${SQLITE_WAL_LIMIT_MIB:-64}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
timeout $((duration + 60)) wrk -t1 -c"$connections" -d"${duration}s" --latency \
  -s bench/wrk/post_users.lua "$URL" >"$WORK/wrk.txt" 2>&1 &
wrk_pid=$!
CHILDREN+=("$wrk_pid")
peak=0
rss_10s=0
for second in $(seq "$duration"); do
  sleep 1
  wal=$(wal_bytes)
  [ "$wal" -gt "$peak" ] && peak=$wal
  [ "$second" = 10 ] && rss_10s=$(rss_kib)
  if [ $((second % 10)) = 0 ]; then
    echo "  ${second}s: wal $((wal / 1024)) KiB, rss $(rss_kib) KiB, jobs $(sql 'SELECT COUNT(*) FROM jobs')"
  fi
done
wait "$wrk_pid" || die "wrk failed: $(cat "$WORK/wrk.txt")"
forget_pid "$wrk_pid"
read -r rps p50 p99 total non2xx errors < <(wrk_fields "$WORK/wrk.txt")
# Let the worker finish, bounded.
for _ in $(seq 600); do
  [ "$(sql "SELECT COUNT(*) FROM jobs WHERE status IN ('queued','running')")" = 0 ] && break
  w=$(wal_bytes); [ "$w" -gt "$peak" ] && peak=$w
  sleep 0.5
done
echo "intake: $rps req/s, p50 $p50 ms, p99 $p99 ms, $total requests, non-2xx $non2xx, socket errors $errors"
echo "jobs succeeded: $(sql "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'") of $(sql 'SELECT COUNT(*) FROM jobs')"
echo "wal: peak $((peak / 1024)) KiB, final $(($(wal_bytes) / 1024)) KiB; database $(($(stat -c %s "$DB") / 1024)) KiB"
echo "rss: at 10 s $rss_10s KiB, at the end $(rss_kib) KiB"
grep -o 'WAL checkpoint paused the writer [0-9]* ms' "$WORK/db/serve.err" | awk '
  { n++; ms = $6; total += ms; if (ms > max) max = ms; if (ms > 100) slow++ }
  END { printf "checkpoints: %d, writer paused %d ms in all, longest %d ms, over 100 ms: %d\n",
               n, total, max, slow }' || true
