#!/usr/bin/env bash
# Sets up, builds and runs every test: the GoogleTest suites through CTest,
# and the contract lint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

echo "== buf lint (protos/)"
(cd protos && ../tools/node_modules/.bin/buf lint)

echo "== ctest"
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
