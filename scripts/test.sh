#!/usr/bin/env bash
# README command two: install what is missing, build Release and run the whole
# test suite (unit, integration against real servers, browser). .ci/run runs
# it, then the safety nets (docs/development.md says what each step does and
# what it costs):
#   release  Release build in build/, every test (unit + integration + browser) with ctest
#   asan     ASan + UBSan (+ libFuzzer coverage) build in build-asan/, every
#            test again; any report fails. The fuzz targets are built here too
#   tsan     TSan build in build-tsan/, the unit tests that exercise concurrency
#   lint     clang-tidy over src/**/*.cpp, parsing with build-asan/'s
#            precompiled header (scripts/lint.sh)
#   format   clang-format check (scripts/format.sh --check)
#   fuzz     each libFuzzer target for 30 s (scripts/fuzz.sh, build-asan/)
# Usage: scripts/test.sh [STEP...]   (no step: release; `nets`: every step
# after release)
# Every step runs even when an earlier one failed, so one run shows every
# finding; the script fails if any step did.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
all_steps=(release asan tsan lint format fuzz)
default_steps=(release)
net_steps=(asan tsan lint format fuzz)
steps=("$@")
if ((${#steps[@]} == 0)); then steps=("${default_steps[@]}"); fi
if [[ "${steps[*]}" == "nets" ]]; then steps=("${net_steps[@]}"); fi
jobs="$(nproc)"

# The unit tests that run under TSan: everything with threads, locks or
# atomics in it (ctest regex over GoogleTest names). Add new suites here.
tsan_tests='^(ModeCache|WriteBatcher|ProvisionerTest|ProvisionQueuedTest|IntakeTest|JobStoreTest|ApiTest|ResponderTest|InFlight|BlockingPool|EmbeddedQueue|JobQueue|Worker|TokenRegistry|HashingPool|StallWatchdog)[A-Za-z]*\.'

# Sanitizer builds use clang (Debian's clang 14): a second compiler's
# warnings on every file, and the same runtime as the fuzzers. build-asan/ is
# one build for three steps: the ASan test run, clang-tidy (its compilation
# database and precompiled header) and the fuzz targets.
asan_configure() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only -DNDEBUG" -DUSHER_SANITIZE=address -DUSHER_FUZZ=ON \
    -DUSHER_BUILD_BENCH=OFF >/dev/null
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
  scripts/browser-deps.sh
  ctest --test-dir build --output-on-failure --timeout 600 -j "$jobs"
}

step_asan() {
  asan_configure
  cmake --build build-asan --parallel "$jobs"
  scripts/browser-deps.sh
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
  # Only the unit tests run under TSan: the server binary and the
  # benchmarks are not built here.
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DUSHER_SANITIZE=thread \
    -DUSHER_BUILD_BENCH=OFF >/dev/null
  cmake --build build-tsan --parallel "$jobs" --target usher_unit_tests
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
  # clang-tidy parses with clang: it needs a clang compilation database and
  # can use that build's precompiled header (g++'s in build/ it cannot read).
  asan_configure
  cmake --build build-asan --target CMakeFiles/usher_core.dir/cmake_pch.hxx.pch
  scripts/lint.sh build-asan
}

step_format() { scripts/format.sh --check; }

step_fuzz() {
  asan_configure
  scripts/fuzz.sh 30
}

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
