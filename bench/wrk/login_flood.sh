#!/usr/bin/env bash
# Admin reads (GET /api/v1/users/ID with an admin token) alone, then during a
# flood of wrong logins, against the real build/usher with the default
# argon2id cost. The flood comes from one address, so the attempt limits are
# raised for the run (as for a distributed flood from many addresses): what
# is measured is the hashing pool keeping argon2id away from the reads.
# Usage: bench/wrk/login_flood.sh [SECONDS] [FLOOD_CONNECTIONS]
#   (env: USHER_BIN, KEEP_WORK=1, any usher setting)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/wrk/redis_lib.sh
. bench/wrk/redis_lib.sh
seconds="${1:-10}"
flood_connections="${2:-64}"

fresh_db "$WORK/db" sync_direct
ADMIN=$("$BIN" token create --role admin --name bench-admin | tail -n 1)
start_serve "$WORK/db" AUTH_ACCOUNT_ATTEMPTS=1000000 AUTH_ADDRESS_ATTEMPTS=1000000
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"email":"read-me@bench.example.com","full_name":"Read Me"}' \
  "$URL/api/v1/users")
[ "$status" = 201 ] || die "could not create the user to read ($status)"
read_url="$URL/api/v1/users/1"

admin_reads() { # OUT
  timeout $((seconds + 60)) wrk -t1 -c4 -d"${seconds}s" --latency \
    -H "Authorization: Bearer $ADMIN" "$read_url" >"$1" 2>&1 || die "wrk failed: $(cat "$1")"
}

echo "$("$BIN" version | tail -n 1), $(nproc) cores, ${seconds} s per phase, load average $(cut -d" " -f1-3 /proc/loadavg)"
admin_reads "$WORK/alone.txt"
read -r rps p50 p99 total non2xx errors < <(wrk_fields "$WORK/alone.txt")
echo "admin reads alone:          $rps req/s  p50 $p50 ms  p99 $p99 ms  ($total, non-2xx $non2xx, socket errors $errors)"

timeout $((seconds + 70)) wrk -t1 -c"$flood_connections" -d"$((seconds + 4))s" --latency \
  -s bench/wrk/login_flood.lua "$URL" >"$WORK/flood.txt" 2>&1 &
flood_pid=$!
CHILDREN+=("$flood_pid")
sleep 2 # let the flood fill the hashing queue before measuring
admin_reads "$WORK/during.txt"
wait "$flood_pid" || die "flood wrk failed: $(cat "$WORK/flood.txt")"
forget_pid "$flood_pid"
read -r rps p50 p99 total non2xx errors < <(wrk_fields "$WORK/during.txt")
echo "admin reads during flood:   $rps req/s  p50 $p50 ms  p99 $p99 ms  ($total, non-2xx $non2xx, socket errors $errors)"
read -r rps p50 p99 total non2xx errors < <(wrk_fields "$WORK/flood.txt")
echo "login flood (c=$flood_connections):     $rps req/s  p50 $p50 ms  p99 $p99 ms  ($total, non-2xx $non2xx: 401 and 503)"
