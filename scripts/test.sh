#!/usr/bin/env bash
# README command two: install, build, run the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build Release
ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)"
