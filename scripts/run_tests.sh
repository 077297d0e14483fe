#!/usr/bin/env bash
# Sets up, builds and runs every test: the GoogleTest suites through CTest,
# the contract lint, then the same suites built and run by Bazel.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh -DWEBHOOKD_WERROR=ON

echo "== buf lint (protos/)"
(cd protos && ../tools/node_modules/.bin/buf lint)

echo "== ctest"
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600

# --- Bazel: the same targets and tests, built offline a second time with
# Debian's Bazel 4.2.3 (options in .bazelrc; README "Building with Bazel").
echo "== bazel build //... && bazel test //..."
bazel build --define=werror=1 //...
bazel test --define=werror=1 //...

# --- Fuzzing: libFuzzer targets (tests/fuzz) built with clang, ASan and
# UBSan in build-fuzz/, each run for a bounded time over the checked-in seed
# corpus; any finding fails the run (README "Fuzzing").
echo "== fuzzers (tests/fuzz, ${WEBHOOKD_FUZZ_SECONDS:-20}s each)"
cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j "$(nproc)"
tests/fuzz/run_fuzzers.sh build-fuzz "${WEBHOOKD_FUZZ_SECONDS:-20}"
