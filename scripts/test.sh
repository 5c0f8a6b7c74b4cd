#!/usr/bin/env bash
# README command two: install what is missing, build Release and run the whole
# test suite (unit, integration against real servers, browser). .ci/run runs
# it, then the safety nets (docs/development.md says what each step does and
# what it costs):
#   release  Release build in build/, every test (unit + integration + browser) with ctest
#   asan     ASan + UBSan (+ libFuzzer coverage) build in build-asan/, every
#            test again but the re-runs of integration files on the other
#            backends (ctest label `matrix`: the same C++ paths; the files
#            about PostgreSQL and Redis themselves do run); any report fails.
#            The fuzz targets are built here too
#   tsan     TSan build in build-tsan/, the unit tests that exercise concurrency
#   lint     clang-tidy over src/**/*.cpp, parsing with build-asan/'s
#            precompiled header (scripts/lint.sh)
#   format   clang-format check (scripts/format.sh --check)
#   fuzz     each libFuzzer target for 30 s (scripts/fuzz.sh, build-asan/)
# and two parts of those steps that the nets' schedule runs apart:
#   builds   both sanitizer builds (build-asan/ with the fuzz targets, build-tsan/), no test
#   asan-tests  the ASan test run alone, on what `builds` compiled
# Usage: scripts/test.sh [STEP...]   (no step: release; `nets`: builds,
# asan-tests with lint alongside at nice 19, tsan, format, fuzz). An item
# "A&B" runs B at nice 19 in the background while A runs.
# Every step runs even when an earlier one failed, so one run shows every
# finding; the script fails if any step did.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
all_steps=(release asan tsan lint format fuzz)
default_steps=(release)
# The nets as CI runs them: both sanitizer builds first, then clang-tidy (pure
# CPU) in the background while the ASan tests run, then the rest.
net_steps=(builds "asan-tests&lint" tsan format fuzz)
steps=("$@")
if ((${#steps[@]} == 0)); then steps=("${default_steps[@]}"); fi
if [[ "${steps[*]}" == "nets" ]]; then steps=("${net_steps[@]}"); fi
jobs="$(nproc)"
# ctest's slots for the release and ASan test runs: twice the cores. Most
# integration tests wait on real time (a lease, a breaker, a restart) rather
# than compute; the ones that load the CPU take 2 slots each (PROCESSORS in
# tests/integration/CMakeLists.txt). USHER_TEST_SLOTS overrides it.
test_slots="${USHER_TEST_SLOTS:-$((2 * jobs))}"

# The unit tests that run under TSan: everything with threads, locks or
# atomics in it (ctest regex over GoogleTest names). Add new suites here.
tsan_tests='^(ModeCache|WriteBatcher|StoreAsync|ProvisionerTest|ProvisionQueuedTest|IntakeTest|JobStoreTest|ApiTest|ResponderTest|InFlight|BlockingPool|EmbeddedQueue|JobQueue|Worker|TokenRegistry|HashingPool|StallWatchdog|DatabaseWatch)[A-Za-z]*\.'

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

# The tests that start the real binary (integration, soak, browser) and the
# include check; everything else ctest knows is a GoogleTest unit test.
system_tests='^(integration|soak|browser|arch)\.'

# The server first: the system tests need only `usher`, and they wait on real
# time for much of their run (servers starting, leases, restarts). The unit
# tests and the benchmarks, about a third of the Release build's CPU, compile
# meanwhile at nice 19, in the CPU the system tests leave idle, and the unit
# tests run as soon as they are built, beside the system tests' tail.
step_release() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --parallel "$jobs" --target usher
  scripts/browser-deps.sh
  local unit_log unit status=0
  unit_log="$(mktemp)"
  ( (renice -n 19 -p "$BASHPID" >/dev/null; exec cmake --build build --parallel "$jobs") &&
      ctest --test-dir build --output-on-failure --timeout 600 -j "$jobs" --no-tests=error \
        -E "$system_tests" ) >"$unit_log" 2>&1 &
  unit=$!
  ctest --test-dir build --output-on-failure --timeout 600 -j "$test_slots" -R "$system_tests" ||
    status=1
  wait "$unit" || status=1
  echo "==== the rest of the Release build, then the unit tests:" >&2
  cat "$unit_log" >&2
  rm -f "$unit_log"
  return "$status"
}

asan_build() {
  asan_configure
  cmake --build build-asan --parallel "$jobs"
}

asan_tests() {
  scripts/browser-deps.sh
  local reports="${root}/build-asan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  # One runtime serves ASan, UBSan and LSan: one log_path for all of them.
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=${reports}/report" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=${reports}/report" \
  LSAN_OPTIONS="suppressions=${root}/scripts/sanitizers/lsan.supp:print_suppressions=0" \
    ctest --test-dir build-asan --output-on-failure --timeout 900 -j "$test_slots" -LE matrix || status=1
  check_reports "$reports" || status=1
  return "$status"
}

step_asan() {
  asan_build
  asan_tests
}

# The nets' schedule runs the ASan tests alone once `builds` has compiled them.
step_asan-tests() { asan_tests; }

tsan_build() {
  # Only the unit tests run under TSan: the server binary and the
  # benchmarks are not built here.
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DUSHER_SANITIZE=thread \
    -DUSHER_BUILD_BENCH=OFF >/dev/null
  cmake --build build-tsan --parallel "$jobs" --target usher_unit_tests
}

step_tsan() {
  tsan_build
  local reports="${root}/build-tsan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=${reports}/report" \
    ctest --test-dir build-tsan --output-on-failure --timeout 900 -j "$jobs" \
      --no-tests=error -R "$tsan_tests" || status=1
  check_reports "$reports" || status=1
  return "$status"
}

# Both sanitizer builds (build-asan/ with the fuzz targets, build-tsan/'s unit
# tests), no test: the nets' first step, and what .ci/run compiles at nice 19
# while the release step's tests run.
step_builds() {
  asan_build
  tsan_build
}

step_lint() {
  # clang-tidy parses with clang: it needs a clang compilation database and
  # can use that build's precompiled header (g++'s in build/ it cannot read).
  # Configured only when missing: in the nets' schedule lint runs while the
  # ASan tests read build-asan/, which a new configure would rewrite.
  [[ -f build-asan/build.ninja ]] || asan_configure
  cmake --build build-asan --target CMakeFiles/usher_core.dir/cmake_pch.hxx.pch
  scripts/lint.sh build-asan
}

step_format() { scripts/format.sh --check; }

step_fuzz() {
  asan_configure
  scripts/fuzz.sh 30
}

scripts/install-deps.sh

# run_step NAME: runs one step in a subshell with errexit of its own (a step
# stops at its first failing command, and the next step still runs) and
# appends its line to the summary file.
summary_file="$(mktemp)"
trap 'rm -f "$summary_file"' EXIT
run_step() { # NAME [NOTE]
  local step="$1" note="${2:-}" start=$SECONDS rc result
  echo "==== ${step}${note:+ (${note})}" >&2
  set +e
  (set -e; "step_${step}")
  rc=$?
  set -e
  if ((rc == 0)); then result=ok; else result=FAILED; fi
  printf '%-10s %-6s %5ds%s\n' "$step" "$result" $((SECONDS - start)) "${note:+  ${note}}" >>"$summary_file"
  return "$rc"
}

# An item "A&B" runs B at nice 19 in the background while A runs: B takes only
# the CPU that A leaves idle (the integration tests spend much of their time
# waiting on real time). B's output is printed when both are done.
failed=0
for item in "${steps[@]}"; do
  for step in ${item//&/ }; do
    if ! declare -F "step_${step}" >/dev/null; then
      echo "unknown step '${step}' (steps: ${all_steps[*]} builds asan-tests; nets: ${net_steps[*]})" >&2
      exit 2
    fi
  done
done
for item in "${steps[@]}"; do
  if [[ "$item" == *"&"* ]]; then
    fg="${item%%&*}" bg="${item#*&}"
    bg_log="$(mktemp)"
    (renice -n 19 -p "$BASHPID" >/dev/null; run_step "$bg" "at nice 19 alongside ${fg}") >"$bg_log" 2>&1 &
    bg_pid=$!
    run_step "$fg" || failed=1
    wait "$bg_pid" || failed=1
    cat "$bg_log" >&2
    rm -f "$bg_log"
  else
    run_step "$item" || failed=1
  fi
done

echo "==== summary (step, result, wall time)" >&2
cat "$summary_file" >&2
exit "$failed"
