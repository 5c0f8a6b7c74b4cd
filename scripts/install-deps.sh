#!/usr/bin/env bash
# Installs exactly the Debian 12 packages usher needs to build, run and test.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries (docs/architecture.md says what each is for)
  librestinio-dev libasio-dev libfmt-dev libspdlog-dev
  libsoci-dev libboost-dev libsqlite3-dev libpq-dev
  nlohmann-json3-dev libcurl4-openssl-dev libsodium-dev libssl-dev libhiredis-dev
  libcli11-dev libtomlplusplus-dev libexpected-dev
  # tests and benchmarks
  libgtest-dev libbenchmark-dev wrk python3 curl redis-server
  # the PostgreSQL variants of the integration tests: a throw-away cluster
  # (initdb, pg_ctl) and the harness's client
  postgresql python3-psycopg2
  # GET /metrics (docs/metrics.md): a real Prometheus text parser for
  # integration.test_metrics, and promtool (package prometheus; the server
  # it also ships is never started) for the alert rules' check
  python3-prometheus-client prometheus
  # browser tests (docs/ui.md): Debian's Chromium (no browser download);
  # node and npm below
  chromium
  # the Debian package (docs/operations.md): cpack's DEB generator needs
  # dpkg-deb and dpkg-shlibdeps (it owns the files by root itself). The unit
  # is checked by systemd-analyze (package systemd): installing it in a
  # container is harmless (no init is started; apt-get install -s systemd
  # only adds its libraries and systemd-sysv/timesyncd), and the test fails
  # rather than skips without it.
  dpkg-dev systemd
  # compiler cache (optional for the build, used when present)
  ccache
  # safety nets (docs/development.md): clang 14 for the sanitizer builds and
  # libFuzzer (its runtimes are libclang-rt-14-dev, only recommended by
  # clang), llvm for llvm-symbolizer (readable sanitizer stacks), tidy, format
  clang libclang-rt-14-dev llvm clang-tidy clang-format
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# node and npm for the browser tests: the machine's own when it has them
# (Node.js 20 with its npm on this project's machines; playwright-core needs
# Node.js >= 20, scripts/browser-deps.sh checks). Debian's packages only when
# there is none: installing Debian's npm next to another Node.js conflicts.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
