#!/usr/bin/env bash
# Formats every C++ file of the project (src/, tests/, bench/, fuzz/) with
# .clang-format (clang-format 14, Debian 12). Usage:
#   scripts/format.sh            rewrite the files in place
#   scripts/format.sh --check    change nothing; list unformatted files, exit 1 if any
#   scripts/format.sh [--check] FILE...   only these files
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
  shift
fi
if (($# > 0)); then
  files=("$@")
else
  # Tracked and new (not ignored) files, so build directories never count.
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
    '*.cpp' '*.hpp' '*.h' '*.cc' | sort -u)
fi

unformatted=()
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue
  if ((check)); then
    if ! clang-format --style=file "$f" | cmp -s "$f" -; then unformatted+=("$f"); fi
  else
    clang-format --style=file -i "$f"
  fi
done

if ((check)) && ((${#unformatted[@]} > 0)); then
  echo "format: ${#unformatted[@]} file(s) not formatted (fix: scripts/format.sh):" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  exit 1
fi
if ((check)); then echo "format: ${#files[@]} files checked, all formatted" >&2; fi
