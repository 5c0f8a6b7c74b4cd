#!/usr/bin/env bash
# Measures POST /api/v1/users next to GET /healthz in one run, against the
# real build/usher on a fresh temporary SQLite database.
# MODE sync_direct: provisioned inline (201). MODE async_queue: durable intake
# only (202; START_WORKER=false so the worker does not compete for the CPU).
# Usage: bench/wrk/run.sh [CONNECTIONS] [SECONDS] [MODE]   (env: USHER_BIN, extra usher env)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections="${1:-32}"
seconds="${2:-10}"
mode="${3:-sync_direct}"
bin="${USHER_BIN:-build/usher}"
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
export DATABASE_URL="sqlite:$dir/usher.db"
"$bin" migrate >/dev/null
"$bin" mode set "$mode" --reason benchmark >/dev/null
if [ "$mode" = async_queue ]; then export START_WORKER=false; fi
TOKEN=$("$bin" token create --role sales_manager --name bench | tail -n 1)
export TOKEN
"$bin" serve --usher-listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.err" &
pid=$!
for _ in $(seq 50); do grep -q listening "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/serve.out")

echo "== GET /healthz, wrk -t1 -c$connections -d${seconds}s"
wrk -t1 -c"$connections" -d"${seconds}s" --latency "$url/healthz" | grep -E 'Requests/sec|99%|50%'
echo "== POST /api/v1/users ($mode), wrk -t1 -c$connections -d${seconds}s"
wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/wrk/post_users.lua "$url" |
  grep -E 'Requests/sec|99%|50%|Non-2xx'
rows=$(/usr/bin/python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from jobs').fetchone()[0], c.execute('select count(*) from accounts').fetchone()[0])" "$dir/usher.db")
echo "rows written (jobs accounts): $rows"
