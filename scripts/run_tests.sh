#!/usr/bin/env bash
# Sets up, builds and runs every test: the contract lint, every suite
# through CTest, the Bazel build with its unit and client suites, and the
# fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's start says how long the run has taken so far.
step() { echo "== $* (at ${SECONDS}s)"; }
scripts/build.sh -DWEBHOOKD_WERROR=ON

step "buf lint (protos/)"
(cd protos && ../tools/node_modules/.bin/buf lint)

step ctest
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600

# --- Bazel: every target built offline a second time with Debian's Bazel
# 4.2.3 (options in .bazelrc; README "Building with Bazel"), and the unit and
# client suites run on that build. The integration, system and benchmark
# suites, which start servers, databases and processes, run once, in CTest
# above (with assertions on, as in Bazel): `bazel test //...` runs them too.
step "bazel build //... && bazel test //tests/unit/... //tests/client/..."
bazel build --define=werror=1 //...
bazel test --define=werror=1 //tests/unit/... //tests/client/...

# --- Fuzzing: libFuzzer targets (tests/fuzz) built with clang, ASan and
# UBSan in build-fuzz/, each run for a bounded time over the checked-in seed
# corpus; any finding fails the run (README "Fuzzing").
step "fuzzers (tests/fuzz, ${WEBHOOKD_FUZZ_SECONDS:-20}s each)"
cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j "$(nproc)"
tests/fuzz/run_fuzzers.sh build-fuzz "${WEBHOOKD_FUZZ_SECONDS:-20}"
step "all passed"
