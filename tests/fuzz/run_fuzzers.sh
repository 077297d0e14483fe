#!/usr/bin/env bash
# Runs every fuzzer of BUILD_DIR (built from tests/fuzz) for SECONDS each,
# starting from the checked-in seed corpus. New inputs go to a temporary
# directory, not into the repository. Exits non-zero on any finding (crash,
# sanitizer report, leak, timeout), leaving the input under that directory.
# Usage: tests/fuzz/run_fuzzers.sh BUILD_DIR [SECONDS]
set -euo pipefail
build_dir=$1
seconds=${2:-20}
corpus_root="$(cd "$(dirname "$0")" && pwd)/corpus"
work=$(mktemp -d -t webhookd-fuzz-XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for name in address header request; do
  fuzzer="$build_dir/${name}_fuzzer"
  mkdir -p "$work/$name"
  echo "-- ${name}_fuzzer for ${seconds}s"
  if ! "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -artifact_prefix="$work/$name/" \
      "$work/$name" "$corpus_root/$name" >"$work/$name.log" 2>&1; then
    echo "${name}_fuzzer found a problem; input and log in $work:"
    tail -n 40 "$work/$name.log"
    status=1
  else
    grep -E "^(#[0-9]+: |Done )" "$work/$name.log" | tail -n 1 || true
  fi
done
if ((status == 0)); then rm -rf "$work"; fi
exit "$status"
