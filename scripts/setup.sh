#!/usr/bin/env bash
# Installs what webhookd needs to build and test on Debian 12. Idempotent:
# installs only what is missing. Downloads only from Debian and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libleveldb-dev libsnappy-dev libcurl4-openssl-dev libssl-dev
  libgtest-dev libgmock-dev libcpp-httplib-dev nlohmann-json3-dev libbenchmark-dev
  libmicrohttpd-dev wrk libjemalloc-dev libidn2-dev
  libcli11-dev python3-grpcio python3-protobuf
  postgresql libpq-dev
  prometheus-cpp-dev prometheus
  bazel-bootstrap
  openssl clang libclang-rt-14-dev llvm
  chromium
)

# Node.js and npm: the machine image may ship its own build (whose nodejs
# package conflicts with Debian's npm), so install Debian's only when the
# commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_packages+=(nodejs npm)
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

# buf (protobuf linter and grpcurl-style client) from npm, pinned.
if [[ ! -x tools/node_modules/.bin/buf ]]; then
  echo "setup: installing buf from npm"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi

# The Node examples' packages (examples/node: gRPC, and the Standard Webhooks
# verifiers standardwebhooks and svix), pinned by its lock file.
if [[ ! -d examples/node/node_modules/@grpc/grpc-js ||
      ! -d examples/node/node_modules/svix ||
      ! -d examples/node/node_modules/standardwebhooks ]]; then
  echo "setup: installing the Node example's packages from npm"
  (cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# The web console's browser test (tests/console): puppeteer-core, pinned by
# its lock file; it drives Debian's chromium and never downloads a browser.
if [[ ! -d tests/console/node_modules/puppeteer-core ]]; then
  echo "setup: installing the console test's packages from npm"
  (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
fi
