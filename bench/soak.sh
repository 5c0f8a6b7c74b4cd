#!/usr/bin/env bash
# A bounded soak with chaos on loopback: mixed load while redis-server, the
# worker process and the Bot API fail on a schedule; checks at the end (see
# bench/soak.py). Usage: bench/soak.sh [DURATION_SECONDS] (10-3600, default 60)
# Env: USHER_BIN (default build/usher). Exit status 0 when every check holds.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
export USHER_BIN="${USHER_BIN:-$PWD/build/usher}"
export PYTHONDONTWRITEBYTECODE=1
# Bounded: the run, the drain (90 s) and start-up, never more.
exec timeout --kill-after=10 $((${duration%.*} + 240)) python3 -u bench/soak.py "$duration"
