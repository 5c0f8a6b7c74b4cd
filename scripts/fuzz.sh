#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-asan/, the build
# the ASan test run uses too, and runs each for SECONDS (default 30, what CI
# does). Usage:
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 3600 fuzz_new_user
# Seeds are fuzz/corpus/<target>/ (read only); what a run learns is kept in
# build-asan/corpus/<target>/ and reused by the next run. A crash, leak,
# sanitizer report or timeout fails the script and leaves the input in
# build-asan/artifacts/; replay it with build-asan/fuzz/<target> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(fuzz_new_user fuzz_json_bodies fuzz_headers fuzz_config_toml fuzz_config_env
           fuzz_webhook_signature fuzz_import_csv)
fi

out=build-asan
# The same configuration as scripts/test.sh's asan step (asan_configure).
cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only -DNDEBUG" -DUSHER_SANITIZE=address -DUSHER_FUZZ=ON \
  -DUSHER_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" --parallel "$(nproc)" --target "${targets[@]}"

mkdir -p "$out"/artifacts
# One target per core at a time: the step takes SECONDS x targets / cores.
fuzz_one() { # TARGET
  local target="$1"
  local work="${out}/corpus/${target}"
  mkdir -p "$work"
  local log="${out}/${target}.log"
  echo "fuzz: ${target} for ${seconds}s" >&2
  # -timeout: one input taking over 10 s is a finding (a hang); -rss_limit_mb
  # bounds memory per input; the seeds directory is read, the work one grows.
  if ! ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0" \
       UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
       "${out}/fuzz/${target}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
         -max_len=4096 -print_final_stats=1 -artifact_prefix="${out}/artifacts/${target}-" \
         "$work" "fuzz/corpus/${target}" >"$log" 2>&1; then
    { echo "fuzz: ${target} FOUND A PROBLEM (full log: ${log}):"
      grep -E -A40 'ERROR: |runtime error|==[0-9]+==|deadly signal|Test unit written' "$log" \
        | head -80 || tail -50 "$log"; } >&2
    return 1
  fi
  # One line per target: executions, speed, coverage, corpus size.
  local execs speed cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[bKM]*' "$log" | tail -n 1)
  echo "fuzz: ${target}: ${execs} executions (${speed}/s), ${cov}, no findings" >&2
}

status=0
running=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  running+=($!)
  if ((${#running[@]} >= $(nproc))); then
    wait "${running[0]}" || status=1
    running=("${running[@]:1}")
  fi
done
for pid in "${running[@]}"; do wait "$pid" || status=1; done
exit "$status"
