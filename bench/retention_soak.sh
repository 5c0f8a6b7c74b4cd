#!/usr/bin/env bash
# Accelerated retention run: DAYS simulated days of steady traffic written into
# a real SQLite file while store::Retention prunes on a simulated clock (ages
# 48 h, keys 24 h). Prints a Markdown table every 12 simulated hours: the
# prunable tables level off after 2 days, the per-customer tables grow with
# the customers. Output recorded in docs/benchmarks.md ("Retention").
# Usage: bench/retention_soak.sh [DAYS] [INTAKES_PER_MINUTE]  (env: BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "$("$build_dir/usher" version), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build_dir/bench/usher_bench_retention" "${1:-8}" "${2:-10}" "$work/usher.db"
