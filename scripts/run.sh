#!/usr/bin/env bash
# README command one: install, build Release into build/, then start
# `usher serve` with its embedded defaults (127.0.0.1:8080, SQLite at
# var/usher.db), printing the URL and a freshly created admin token.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build Release
./build/usher migrate >/dev/null
token=$(./build/usher token create --role admin --name "readme-admin-$(date -u +%Y%m%dT%H%M%SZ)" | tail -n 1)
listen="${USHER_LISTEN:-127.0.0.1:8080}"
echo "usher URL:   http://${listen}"
echo "web UI:      http://${listen}/  (sign in with the admin token below)"
echo "admin token: ${token}"
echo "try: curl -H \"Authorization: Bearer ${token}\" http://${listen}/api/v1/admin/system/mode"
exec ./build/usher serve
