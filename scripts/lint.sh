#!/usr/bin/env bash
# clang-tidy (14, Debian 12) with the checks in .clang-tidy over the project's
# own sources, src/**/*.cpp (their headers under src/usher/ come along through
# HeaderFilterRegex). Needs a compilation database: by default
# build/compile_commands.json, which scripts/build.sh writes. Usage:
#   scripts/lint.sh [BUILD_DIR] [FILE...]
# Any finding (every check is an error here) fails the script.
#
# With no FILE (the whole tree, as CI runs it) clang-tidy reads each unity
# batch of the library (USHER_UNITY: Unity/unity_N_cxx.cxx, 8 files) once,
# and each file that is in no batch on its own: nearly all of a run's time is
# clang-tidy walking the headers a translation unit holds, which a batch
# holds once for its 8 files (measured: 16 s of CPU for a batch against
# 115 s for its files one by one; docs/development.md, "clang-tidy"). What a
# batch would hide, a file that compiles only thanks to an include of an
# earlier file of its batch, is checked apart: every file in a batch is
# compiled on its own with -fsyntax-only (about 2 s each with the batch's
# precompiled header). With FILEs, clang-tidy reads each of them on its own.
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
  by=file
else
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'src/*.cpp' | sort -u)
  by=batch
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# The database clang-tidy reads is a copy, rewritten for two things:
# - A unity build lists its batches, not the files: each file gets the
#   command of the batch that includes it, with the file in place of the
#   batch (the batches stay too).
# - A g++ build's precompiled header (.gch) is not one clang can read: then
#   the forced include is dropped and clang parses the headers itself (slower;
#   build-asan/, a clang build, keeps its header).
# It also writes what to check: units.txt (what clang-tidy reads: the files,
# or the batches that hold them and the files in no batch) and, by batch,
# syntax.txt (a -fsyntax-only command per file in a batch, NUL-separated).
mkdir -p "$out/db"
python3 - "${build_dir}/compile_commands.json" "$out" "$by" "${files[@]}" <<'PY'
import json, os, re, shlex, sys
source_db, out, by, selected = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
entries = json.load(open(source_db))
gxx_pch = not any("clang++" in e["command"] for e in entries)
result, batch_of = [], {}  # a source's real path -> (its batch, its own entry)
for e in entries:
    if gxx_pch:
        e["command"] = re.sub(r" -Winvalid-pch| -include \S+cmake_pch\.hxx", "", e["command"])
    result.append(e)
    if re.search(r"/Unity/unity_[0-9]+_cxx\.cxx$", e["file"]):
        with open(e["file"]) as batch:
            for source in re.findall(r'^#include "([^"]+)"', batch.read(), re.M):
                command = e["command"].replace(e["file"], source)
                command = re.sub(r"-o \S+", "-o /dev/null", command)
                result.append({"directory": e["directory"], "command": command, "file": source})
                batch_of[os.path.realpath(source)] = (e["file"], result[-1])
json.dump(result, open(os.path.join(out, "db", "compile_commands.json"), "w"))
units, syntax = [], []
for f in selected:
    batch, entry = batch_of.get(os.path.realpath(f), (None, None)) if by == "batch" else (None, None)
    if batch is None:
        units.append(f)
        continue
    if batch not in units:
        units.append(batch)
    command = re.sub(r"-o /dev/null", "-fsyntax-only", entry["command"])
    syntax.append(f"cd {shlex.quote(entry['directory'])} && {command}")
open(os.path.join(out, "units.txt"), "w").write("".join(u + "\n" for u in units))
open(os.path.join(out, "syntax.txt"), "w").write("".join(c + "\0" for c in syntax))
PY
build_dir="$out/db"
export build_dir out

if [[ "$by" == batch ]]; then
  # A batch #includes its .cpp files, which bugprone-suspicious-include
  # reports; in the batches that check is off, and this keeps what it guards.
  if git grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<][^">]*\.(c|cc|cpp|cxx)[">]' -- src \
      >"$out/suspicious"; then
    echo "lint: a source file #includes a .cpp file [bugprone-suspicious-include]:" >&2
    cat "$out/suspicious" >&2
    exit 1
  fi
  # Each file of a batch on its own: it must compile without its batch.
  xargs -0 -n 1 -P "$(nproc)" sh -c 'log="$out/syntax.$$.log"
    if eval "$1" >"$log" 2>&1; then rm -f "$log"; exit 0; fi
    echo "lint: $(echo "$1" | grep -oE "[^ ]+\.cpp" | tail -n 1) does not compile on its own (it relies on an include of another file of its unity batch?):" >&2
    cat "$log" >&2; rm -f "$log"; echo x >>"$out/failed_syntax"' _ <"$out/syntax.txt"
  if [[ -s "$out/failed_syntax" ]]; then exit 1; fi
fi

# One clang-tidy per unit, as many at once as there are cores; each writes
# its own report so the output is not interleaved.
xargs -P "$(nproc)" -I{} sh -c \
  'f="$1"; case "$f" in */Unity/unity_*) extra="--checks=-bugprone-suspicious-include";; *) extra=;; esac
   clang-tidy -p "$build_dir" --quiet --warnings-as-errors="*" $extra "$f" \
     >"$out/$(echo "$f" | tr / _).log" 2>&1 || echo "$f" >>"$out/failed"' _ {} <"$out/units.txt"

if [[ -s "$out/failed" ]]; then
  # Headers are reported once per file that includes them: show each finding once.
  cat "$out"/*.log | grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^Error while processing' \
    | awk '/^\/.*:[0-9]+:[0-9]+: (warning|error):/ { seen_it = seen[$0]++ } !seen_it' >&2
  echo "lint: clang-tidy findings in $(wc -l <"$out/failed") of $(wc -l <"$out/units.txt") translation unit(s):" >&2
  sed 's/^/  /' "$out/failed" >&2
  echo "lint: distinct findings (file:line: check):" >&2
  cat "$out"/*.log | grep -oE '^/[^ ]+:[0-9]+:[0-9]+: (warning|error): .*\[[a-z0-9.,-]+\]$' \
    | sed -E "s|^$(pwd)/||; s/: (warning|error): .*\[/: [/" | sort -u >&2
  exit 1
fi
echo "lint: clang-tidy clean on ${#files[@]} file(s) ($(wc -l <"$out/units.txt") translation unit(s))" >&2
