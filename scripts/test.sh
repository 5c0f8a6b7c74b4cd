#!/usr/bin/env bash
# README command two: install, build and run the whole suite, then the safety
# nets (docs/development.md says what each step does and how long it takes):
#   release  Release build in build/, every test (unit + integration) with ctest
#   asan     ASan + UBSan build in build-asan/, every test again; any report fails
#   tsan     TSan build in build-tsan/, the unit tests that exercise concurrency
#   lint     clang-tidy over src/**/*.cpp (scripts/lint.sh, build/compile_commands.json)
#   format   clang-format check (scripts/format.sh --check)
#   fuzz     each libFuzzer target for 30 s (scripts/fuzz.sh, build-fuzz/)
# Usage: scripts/test.sh [STEP...]   (no step: the default steps below)
# Every step runs even when an earlier one failed, so one run shows every
# finding; the script fails if any step did.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
all_steps=(release asan tsan lint format fuzz)
# Run by default: every step (what each costs on 2 cores: docs/development.md,
# "CI timings").
default_steps=(release asan tsan lint format fuzz)
steps=("$@")
if ((${#steps[@]} == 0)); then steps=("${default_steps[@]}"); fi
jobs="$(nproc)"

# The unit tests that run under TSan: everything with threads, locks or
# atomics in it (ctest regex over GoogleTest names). Add new suites here.
tsan_tests='^(ModeCache|WriteBatcher|ProvisionerTest|InFlight|BlockingPool|EmbeddedQueue|JobQueue|Worker|TokenRegistry|HashingPool)[A-Za-z]*\.'

# Sanitizer builds use clang (Debian's clang 14): a second compiler's
# warnings on every file, and the same runtime as the fuzzers.
sanitizer_build() { # DIR VALUE
  scripts/build.sh "$1" Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DUSHER_SANITIZE="$2" -DUSHER_BUILD_BENCH=OFF
}

# Sanitizer reports go to files (log_path), not only to stderr: the
# integration tests run usher as a server and CLI whose stderr a passing test
# may never read. Any file there fails the step, whatever ctest said.
check_reports() { # DIR
  if compgen -G "$1/*" >/dev/null; then
    echo "sanitizer reports in $1:" >&2
    for f in "$1"/*; do echo "---- $f" >&2; head -n 60 "$f" >&2; done
    return 1
  fi
}

step_release() {
  scripts/build.sh build Release
  ctest --test-dir build --output-on-failure --timeout 600 -j "$jobs"
}

step_asan() {
  sanitizer_build build-asan address
  local reports="${root}/build-asan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  # One runtime serves ASan, UBSan and LSan: one log_path for all of them.
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=${reports}/report" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=${reports}/report" \
  LSAN_OPTIONS="suppressions=${root}/scripts/sanitizers/lsan.supp:print_suppressions=0" \
    ctest --test-dir build-asan --output-on-failure --timeout 900 -j "$jobs" || status=1
  check_reports "$reports" || status=1
  return "$status"
}

step_tsan() {
  sanitizer_build build-tsan thread
  local reports="${root}/build-tsan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=${reports}/report" \
    ctest --test-dir build-tsan --output-on-failure --timeout 900 -j "$jobs" \
      --no-tests=error -R "$tsan_tests" || status=1
  check_reports "$reports" || status=1
  return "$status"
}

step_lint() {
  if [[ ! -f build/compile_commands.json ]]; then
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  scripts/lint.sh build
}

step_format() { scripts/format.sh --check; }

step_fuzz() { scripts/fuzz.sh 30; }

scripts/install-deps.sh

summary=()
failed=0
for step in "${steps[@]}"; do
  if ! declare -F "step_${step}" >/dev/null; then
    echo "unknown step '${step}' (steps: ${all_steps[*]})" >&2
    exit 2
  fi
  echo "==== ${step}" >&2
  start=$SECONDS
  # A subshell with errexit of its own: a step stops at its first failing
  # command, and the next step still runs.
  set +e
  (set -e; "step_${step}")
  rc=$?
  set -e
  if ((rc == 0)); then result=ok; else result=FAILED; failed=1; fi
  summary+=("$(printf '%-8s %-6s %5ds' "$step" "$result" $((SECONDS - start)))")
done

echo "==== summary (step, result, wall time)" >&2
printf '%s\n' "${summary[@]}" >&2
exit "$failed"
