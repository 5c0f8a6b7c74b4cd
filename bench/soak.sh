#!/usr/bin/env bash
# A bounded soak with chaos on loopback: mixed load while redis-server, the
# worker process and the Bot API (and, with --database postgresql, a
# throw-away PostgreSQL) fail on a schedule; checks at the end (see
# bench/soak.py). Usage: bench/soak.sh [DURATION_SECONDS] [--database sqlite|postgresql]
# (10-3600 s, default 60; default database sqlite, or USHER_SOAK_DATABASE).
# Env: USHER_BIN (default build/usher). Exit status 0 when every check holds.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
export USHER_BIN="${USHER_BIN:-$PWD/build/usher}"
export PYTHONDONTWRITEBYTECODE=1
# Debian's interpreter: it has python3-psycopg2 (the PostgreSQL runs need it)
# where a python3 earlier on PATH may not.
python=python3
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
# Bounded: the run, the drain (90 s) and start-up, never more.
exec timeout --kill-after=10 $((${duration%.*} + 240)) "$python" -u bench/soak.py "$@"
