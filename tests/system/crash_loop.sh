#!/usr/bin/env bash
# The long crash loop: under steady load, kill -9 webhookd at random moments
# KILLS times (default 25), restarting it each time on the same data
# directory, then check the ledger (every acknowledged delivery received at
# least once, duplicates only after a kill, nothing unknown). CI runs the same
# test with 5 kills.
#
# Usage: tests/system/crash_loop.sh [KILLS]
#   BUILD_DIR        CMake build directory (default: build; built if needed)
#   CRASH_LOOP_SEED  replay the random kill moments of an earlier run (each
#                    run prints its seed)
set -euo pipefail
cd "$(dirname "$0")/../.."
kills="${1:-25}"
build="${BUILD_DIR:-build}"
if [[ $build == build && ! -d build ]]; then
  scripts/build.sh
fi
cmake --build "$build" --target crash_loop_test webhookd -j 2
CRASH_LOOP_KILLS="$kills" "$build/tests/system/crash_loop_test" \
  --gtest_brief=1
