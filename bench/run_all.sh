#!/usr/bin/env bash
# Runs the webhook-bench scenarios as BENCHMARKS.md lists them (medians of
# 3 runs each) and keeps each one's report (.txt) and figures (.json).
# Usage: bench/run_all.sh [build dir] [output dir] [scenario...]
#   build dir   default: build (as made by scripts/build.sh)
#   output dir  default: ${TMPDIR:-/tmp}/webhook-bench-results/<date-time>
#   scenarios   default: all of them
# Exits non-zero if a ledger did not balance or a run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-${TMPDIR:-/tmp}/webhook-bench-results/$(date +%Y%m%d-%H%M%S)}
shift $(($# < 2 ? $# : 2))
bench="$build/bench/webhook-bench"
if [[ ! -x $bench ]]; then
  echo "run_all: $bench not found; build the webhook_bench target first" >&2
  exit 2
fi

declare -A args=(
  [fanout1]="--scenario=fanout1"
  [fanout1_batch]="--scenario=fanout1 --batch=100 --rate=30000 --max_outstanding=100"
  [fanout10]="--scenario=fanout10"
  [latency]="--scenario=latency"
  [endpoints10k]="--scenario=endpoints10k"
  [hanging]="--scenario=hanging"
  [backlog]="--scenario=backlog"
  [fanout_big]="--scenario=fanout_big"
)
order=(fanout1 fanout1_batch fanout10 latency endpoints10k hanging fanout_big backlog)
if (($# > 0)); then order=("$@"); fi

mkdir -p "$out"
status=0
for scenario in "${order[@]}"; do
  if [[ -z ${args[$scenario]:-} ]]; then
    echo "run_all: unknown scenario $scenario" >&2
    status=2
    continue
  fi
  echo "== $scenario: load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$(date +%T)"
  # shellcheck disable=SC2086  # the arguments are words
  "$bench" ${args[$scenario]} --runs=3 --json \
    >"$out/$scenario.json" 2>"$out/$scenario.txt" || status=1
  grep -E '^  (met|not met|not measured) ' "$out/$scenario.txt" || true
  grep -E '^ledger: ' "$out/$scenario.txt" || echo "  (failed: see $out/$scenario.txt)"
done
echo "results in $out"
exit "$status"
