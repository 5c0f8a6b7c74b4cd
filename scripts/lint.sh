#!/usr/bin/env bash
# clang-tidy (14, Debian 12) with the checks in .clang-tidy over the project's
# own sources, src/**/*.cpp (their headers under src/usher/ come along through
# HeaderFilterRegex). Needs a compilation database: by default
# build/compile_commands.json, which scripts/build.sh writes. Usage:
#   scripts/lint.sh [BUILD_DIR] [FILE...]
# Any finding (every check is an error here) fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
shift $(( $# > 0 ? 1 : 0 ))
if [[ ! -f "${build_dir}/compile_commands.json" ]]; then
  echo "lint: ${build_dir}/compile_commands.json is missing; run scripts/build.sh ${build_dir} first" >&2
  exit 2
fi
if (($# > 0)); then
  files=("$@")
else
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'src/*.cpp' | sort -u)
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# The database clang-tidy reads is a copy, rewritten for two things:
# - A unity build (USHER_UNITY) lists its batches (Unity/unity_N_cxx.cxx), not
#   the files: each file gets the command of the batch that includes it, with
#   the file in place of the batch. clang-tidy checks each file on its own.
# - A g++ build's precompiled header (.gch) is not one clang can read: then
#   the forced include is dropped and clang parses the headers itself (slower;
#   build-asan/, a clang build, keeps its header).
mkdir -p "$out/db"
python3 - "${build_dir}/compile_commands.json" "$out/db/compile_commands.json" <<'PY'
import json, re, sys
entries = json.load(open(sys.argv[1]))
gxx_pch = not any("clang++" in e["command"] for e in entries)
result = []
for e in entries:
    if gxx_pch:
        e["command"] = re.sub(r" -Winvalid-pch| -include \S+cmake_pch\.hxx", "", e["command"])
    if re.search(r"/Unity/unity_[0-9]+_cxx\.cxx$", e["file"]):
        with open(e["file"]) as batch:
            for source in re.findall(r'^#include "([^"]+)"', batch.read(), re.M):
                command = e["command"].replace(e["file"], source)
                command = re.sub(r"-o \S+", "-o /dev/null", command)
                result.append({"directory": e["directory"], "command": command, "file": source})
    else:
        result.append(e)
json.dump(result, open(sys.argv[2], "w"))
PY
build_dir="$out/db"
# One clang-tidy per file, as many at once as there are cores; each writes
# its own report so the output is not interleaved.
export build_dir out
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} sh -c \
  'f="$1"; clang-tidy -p "$build_dir" --quiet --warnings-as-errors="*" "$f" \
     >"$out/$(echo "$f" | tr / _).log" 2>&1 || echo "$f" >>"$out/failed"' _ {}

if [[ -s "$out/failed" ]]; then
  # Headers are reported once per file that includes them: show each finding once.
  cat "$out"/*.log | grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^Error while processing' \
    | awk '/^\/.*:[0-9]+:[0-9]+: (warning|error):/ { seen_it = seen[$0]++ } !seen_it' >&2
  echo "lint: clang-tidy findings in $(wc -l <"$out/failed") of ${#files[@]} file(s):" >&2
  sed 's/^/  /' "$out/failed" >&2
  echo "lint: distinct findings (file:line: check):" >&2
  cat "$out"/*.log | grep -oE '^/[^ ]+:[0-9]+:[0-9]+: (warning|error): .*\[[a-z0-9.,-]+\]$' \
    | sed -E "s|^$(pwd)/||; s/: (warning|error): .*\[/: [/" | sort -u >&2
  exit 1
fi
echo "lint: clang-tidy clean on ${#files[@]} file(s)" >&2
