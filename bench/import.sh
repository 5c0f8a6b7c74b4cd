#!/usr/bin/env bash
# `usher import` of ROWS generated buyers (default 100,000) into a fresh
# SQLite database, in each mode: async_queue (rows recorded as queued jobs,
# no worker running) and sync_direct (each account created at once). Prints
# the wall time and rows per second of each, and checks the counts.
# Usage: bench/import.sh [ROWS]   (env: USHER_BIN, any usher setting)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-100000}"
bin="${USHER_BIN:-$(pwd)/build/usher}"
work="$(mktemp -d /tmp/usher-import-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
python3 - "$rows" "$work/buyers.csv" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("email,full_name,phone,product\n")
    for i in range(rows):
        f.write(f"buyer{i}@example.com,Buyer Number {i},+1 555 {i % 10000:04d},course-{i % 7}\n")
PY
echo "$("$bin" version), $(nproc) cores, $rows rows, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in async_queue sync_direct; do
  export DATABASE_URL="sqlite:$work/$mode.db"
  "$bin" migrate >/dev/null 2>&1
  "$bin" mode set "$mode" --reason bench >/dev/null 2>&1
  start=$(date +%s.%N)
  "$bin" import "$work/buyers.csv" >"$work/$mode.out" 2>"$work/$mode.err"
  end=$(date +%s.%N)
  summary=$(head -n 1 "$work/$mode.out")
  jobs=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM jobs').fetchone()[0])" "$work/$mode.db")
  [[ "$jobs" == "$rows" ]] || { echo "$mode: $jobs jobs for $rows rows" >&2; exit 1; }
  awk -v m="$mode" -v s="$start" -v e="$end" -v r="$rows" \
    'BEGIN { printf "%-12s %6.1f s  %8.0f rows/s\n", m, e - s, r / (e - s) }'
  echo "  $summary"
done
