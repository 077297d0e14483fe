#!/usr/bin/env bash
# Sets up the machine (idempotent) and builds webhookd into ./build. Extra
# arguments go to CMake, e.g. -DWEBHOOKD_WERROR=ON (the test command's).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j "$(nproc)"
