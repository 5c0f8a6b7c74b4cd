#!/usr/bin/env bash
# Where the CPU of one usher process goes under one load of bench/report.sh:
# `perf record` (DWARF call graphs) on the measured process while the load
# runs, then the self time by library and by function, and the same folded
# into buckets (kernel, malloc/free, locks, SQLite, usher and the libraries
# compiled into it, ...) with each bucket's CPU µs per request (or per user).
#   intake  serve, async_queue, START_WORKER=false, wrk POSTs for SECONDS
#   sync    serve, sync_direct, wrk POSTs for SECONDS
#   drain   `usher worker` draining JOBS jobs accepted beforehand
# Usage: bench/profile.sh intake|sync|drain [SECONDS] [JOBS]
#   (defaults 10 s, 30000 jobs; env: USHER_BIN, KEEP_WORK=1 keeps perf.data,
#   PERF_FREQ (default 1999 Hz), ACCOUNTS=N existing customers before the
#   drain (bench/seed_accounts.py), any usher setting; needs perf and the right
#   to profile (root, or kernel.perf_event_paranoid <= 1))
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:?intake|sync|drain}"
seconds="${2:-10}"
jobs="${3:-30000}"
freq="${PERF_FREQ:-1999}"
command -v perf >/dev/null || { echo "error: perf is missing (package linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "error: wrk is missing (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=bench/wrk/redis_lib.sh
source bench/wrk/redis_lib.sh

dir="$WORK/$what"
data="$WORK/perf.data"
# record PID: perf on PID until it is stopped (SIGINT). Sets PERF_PID.
record() {
  perf record -q -F "$freq" --call-graph dwarf,16384 -p "$1" -o "$data" 2>"$WORK/perf.err" &
  PERF_PID=$!
  CHILDREN+=("$PERF_PID")
  sleep 0.5
}
stop_record() {
  kill -INT "$PERF_PID"
  wait "$PERF_PID" || true
  forget_pid "$PERF_PID"
}

case "$what" in
  intake | sync)
    if [ "$what" = intake ]; then fresh_db "$dir" async_queue; else fresh_db "$dir" sync_direct; fi
    start_serve "$dir" START_WORKER=false
    record "$SERVE_PID"
    cpu0=$(cpu_ms "$SERVE_PID")
    run_wrk "$dir/post.wrk" 32 "$seconds" "$URL" bench/wrk/post_users.lua
    cpu=$(($(cpu_ms "$SERVE_PID") - cpu0))
    stop_record
    read -r rps p50 p99 total non2xx errors <<<"$(wrk_fields "$dir/post.wrk")"
    units=$total unit=request
    echo "$what: $rps req/s, p50 $p50 ms, p99 $p99 ms, $total requests (non-2xx $non2xx, socket errors $errors)"
    ;;
  drain)
    fresh_db "$dir" async_queue "${ACCOUNTS:-0}"
    start_serve "$dir" START_WORKER=false
    queued=$(fill_queue "$jobs" "$dir/intake.wrk")
    stop_pid "$SERVE_PID"
    start=$(date +%s.%N)
    # The worker starts under perf (attached later, perf missed the threads
    # the worker had already started).
    perf record -q -F "$freq" --call-graph dwarf,16384 -o "$data" -- \
      "$BIN" worker >"$dir/worker.out" 2>"$dir/worker.err" &
    PERF_PID=$!
    CHILDREN+=("$PERF_PID")
    for _ in $(seq 50); do pid=$(pgrep -P "$PERF_PID" || true); [ -n "$pid" ] && break; sleep 0.1; done
    [ -n "$pid" ] || die "perf did not start usher worker"
    end=$(wait_drained $((60 + jobs / 100)))
    cpu=$(cpu_ms "$pid")
    kill -TERM "$pid"
    wait "$PERF_PID" || true
    forget_pid "$PERF_PID"
    units=$queued unit=user
    echo "drain: $queued users in $("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$end") s"
    ;;
  *) die "unknown load: $what (intake|sync|drain)" ;;
esac
echo "usher CPU: $((cpu * 1000 / units)) us per $unit ($cpu ms in all); perf at $freq Hz, DWARF call graphs"

perf report -i "$data" --no-children --sort dso,sym --stdio -q -g none --percent-limit 0.01 \
  >"$WORK/flat.txt" 2>/dev/null
perf report -i "$data" --children --sort sym --stdio -q -g none --percent-limit 1 \
  >"$WORK/children.txt" 2>/dev/null
"$PY" - "$WORK/flat.txt" "$((cpu * 1000 / units))" "$unit" "$WORK/children.txt" <<'PY'
import re, sys
us, unit = float(sys.argv[2]), sys.argv[3]
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[([.kH])\]\s+(.*\S)", line)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))
def bucket(dso, kind, sym):
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel (sockets, file writes, scheduling, futex)"
    if dso.startswith("libc.so"):
        if re.search(r"malloc|free|_int_|realloc|calloc|tcache|arena|consolidate|unlink_chunk", sym):
            return "glibc malloc/free"
        if re.search(r"mutex|lll_|pthread_cond|futex|pthread_once|rwlock", sym):
            return "glibc locks (mutex, condition variables)"
        if re.search(r"mem(cpy|move|set|cmp|chr)|str", sym):
            return "glibc memcpy/memset/str*"
        return "glibc, other"
    if dso.startswith("libsqlite3"):
        return "SQLite"
    if dso.startswith("libstdc++"):
        return "libstdc++"
    if dso.startswith("libcrypto") or dso.startswith("libssl") or dso.startswith("libsodium"):
        return "crypto (libcrypto, libsodium)"
    if dso.startswith("libsoci"):
        return "SOCI"
    if dso.startswith("libfmt") or dso.startswith("libspdlog"):
        return "fmt, spdlog"
    if dso == "usher":
        return "usher and the libraries compiled into it (RESTinio, asio, llhttp, json)"
    return "other: " + dso
total = sum(r[0] for r in rows) or 1
b = {}
for pct, dso, kind, sym in rows:
    k = bucket(dso, kind, sym)
    b[k] = b.get(k, 0) + pct
print(f"\nby bucket (share of usher's samples; CPU us per {unit} = share x the total):")
for k, v in sorted(b.items(), key=lambda x: -x[1]):
    print(f"  {v / total * 100:5.1f} %  {v / total * us:7.1f} us  {k}")
def short(sym):  # template arguments and parameter lists folded away
    sym = re.sub(r"\(anonymous namespace\)", "(anon)", sym)
    for _ in range(12):
        sym = re.sub(r"<[^<>]*>", "", sym)
    sym = re.sub(r"\([^()]*\)", "", sym)
    sym = sym.replace("json_abi_v3_11_2::", "").replace("nlohmann::", "json::")
    return sym[:100]
print("\ntop 25 functions (self):")
for pct, dso, kind, sym in sorted(rows, key=lambda r: -r[0])[:25]:
    print(f"  {pct / total * 100:5.1f} %  {pct / total * us:6.1f} us  {dso[:18]:18} {short(sym)}")
# Inclusive time (self and callees) of usher's own functions: which step of
# a request the costs above are spent under.
print("\nusher's functions by inclusive time (with what they call), top 20:")
seen = 0
for line in open(sys.argv[4]):
    m = re.match(r"\s*([0-9.]+)%\s+([0-9.]+)%\s+\[([.k])\]\s+(.*\S)", line)
    if not m or "usher::" not in m.group(4):
        continue
    pct = float(m.group(1))
    print(f"  {pct:5.1f} %  {pct / 100 * us:6.1f} us  {short(m.group(4))}")
    seen += 1
    if seen == 20:
        break
PY
# perf_symbols.py: names the frames perf left unresolved (see there).
perf script -i "$data" -F comm,tid,ip,sym,dso 2>/dev/null | "$PY" bench/perf_symbols.py |
  "$PY" bench/perf_attribution.py "$((cpu * 1000 / units))" "$unit"
if [ "${KEEP_WORK:-}" = 1 ]; then
  echo "perf.data: $data (perf report -i $data --no-children -G)"
fi
