#!/usr/bin/env bash
# End-to-end drain: accept N jobs (async_queue, no worker running), then start
# `usher worker` and time until every job is provisioned. Repeats ROUNDS
# times on the same database, so later rounds run against a larger table.
# Usage: bench/wrk/drain.sh [--accounts A] [N] [ROUNDS]   (env: USHER_BIN, extra usher env)
#   --accounts A: the database starts with A existing customers
#   (bench/seed_accounts.py); bench/report.sh --accounts does the same with
#   rounds on fresh copies.
set -euo pipefail
cd "$(dirname "$0")/../.."
accounts=0
if [ "${1:-}" = --accounts ]; then
  accounts="$2"
  shift 2
fi
n="${1:-50000}"
rounds="${2:-1}"
bin="${USHER_BIN:-build/usher}"
dir=$(mktemp -d)
serve_pid=""
worker_pid=""
cleanup() {
  for p in $serve_pid $worker_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
export DATABASE_URL="sqlite:$dir/usher.db"
"$bin" migrate >/dev/null
/usr/bin/python3 bench/seed_accounts.py "$dir/usher.db" "$accounts"
"$bin" mode set async_queue --reason benchmark >/dev/null
TOKEN=$("$bin" token create --role sales_manager --name bench | tail -n 1)
export TOKEN
START_WORKER=false "$bin" serve --usher-listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.err" &
serve_pid=$!
for _ in $(seq 50); do grep -q listening "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/serve.out")
count() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$dir/usher.db" "$1"; }

for round in $(seq "$rounds"); do
  before=$(count "select count(*) from accounts")
  # Intake in 3 s slices until at least N jobs wait (wrk has no request count).
  : >"$dir/wrk.out"
  while [ "$(count "select count(*) from jobs where status='queued'")" -lt "$n" ]; do
    wrk -t1 -c32 -d3s -s bench/wrk/post_users.lua "$url" >>"$dir/wrk.out"
  done
  queued=$(count "select count(*) from jobs where status='queued'")
  start=$(date +%s.%N)
  "$bin" worker >/dev/null 2>"$dir/worker.err" &
  worker_pid=$!
  while [ "$(count "select count(*) from jobs where status in ('queued','running')")" != 0 ]; do sleep 0.05; done
  end=$(date +%s.%N)
  kill "$worker_pid"; wait "$worker_pid" || true; worker_pid=""
  after=$(count "select count(*) from accounts")
  /usr/bin/python3 -c "import sys; q,b,a,s,e=map(float,sys.argv[1:6]); print(f'round {int(sys.argv[6])}: {int(q)} jobs drained in {e-s:.2f} s = {q/(e-s):.0f} users/s (accounts {int(b)} -> {int(a)})')" "$queued" "$before" "$after" "$start" "$end" "$round"
  grep -E 'Requests/sec' "$dir/wrk.out" | sed 's/^/  intake /'
done
