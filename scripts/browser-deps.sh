#!/usr/bin/env bash
# Installs the browser tests' npm packages from tests/browser/package-lock.json
# (playwright-core only; no browser download: the tests use Debian's
# /usr/bin/chromium). Idempotent: runs `npm ci` only when node_modules is
# missing or older than the lock file (npm ci rewrites
# node_modules/.package-lock.json, so a fresh install is newer).
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ((major < 20)); then
  echo "browser tests: Node.js >= 20 is needed (playwright-core), found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
installed=node_modules/.package-lock.json
if [[ -f "$installed" && ! package-lock.json -nt "$installed" ]]; then
  exit 0
fi
echo "installing the browser tests' npm packages (npm ci)" >&2
npm ci --no-audit --no-fund --loglevel=error
