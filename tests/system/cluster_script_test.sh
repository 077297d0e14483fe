#!/usr/bin/env bash
# scripts/cluster.sh end to end, with the binaries under test:
#   1. a cluster of NODES nodes (default 2) in a temporary directory: an
#      endpoint created on node 1 pointing at `webhookctl listen`, an event
#      submitted on the last node, and its signed delivery must arrive and be
#      recorded as SUCCESS (read on node 1); then SIGINT to the script stops
#      every node and PostgreSQL and removes the directory;
#   2. a one-node cluster with --dir: the directory and its data are kept,
#      and a second run on it finds the endpoint the first one created.
# Fails on the first error, with the script's output and the nodes' logs;
# always stops what it started.
# Usage: tests/system/cluster_script_test.sh WEBHOOKD WEBHOOKCTL [NODES]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WEBHOOKD=$(realpath "$1")
WEBHOOKCTL=$(realpath "$2")
NODES=${3:-2}
SECRET=cluster-test-secret
# Bounds on waits that end as soon as what they wait for happens.
START_SECONDS=120  # initdb, PostgreSQL and the nodes, on a loaded machine
DELIVERY_SECONDS=60
STOP_SECONDS=90

# The user "postgres" runs PostgreSQL when this runs as root: it must be able
# to enter the directories the script is given (not under /root, as Bazel's
# TEST_TMPDIR is).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cluster-test.XXXXXX")
chmod 755 "$WORK"
if ((EUID == 0)) && ! runuser -u postgres -- test -x "$WORK"; then
  rmdir "$WORK"
  WORK=$(mktemp -d /tmp/cluster-test.XXXXXX)
  chmod 755 "$WORK"
fi
cluster_pid=
cluster_out=
receiver_pid=

cleanup() {
  if [[ -n $receiver_pid ]]; then
    kill -TERM "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
  fi
  if [[ -n $cluster_pid ]]; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    timeout "$STOP_SECONDS" tail --pid="$cluster_pid" -f /dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  local log
  if [[ -n $cluster_out && -f $cluster_out ]]; then
    echo "--- scripts/cluster.sh output" >&2
    cat "$cluster_out" >&2
    for log in "$(cluster_dir)"/node*.log; do
      [[ -f $log ]] || continue
      echo "--- $log" >&2
      tail -n 30 "$log" >&2
    done
  fi
  exit 1
}

# Waits until file $1 has a line matching the ERE $2, and prints it; fails
# past $3 seconds, or (if $4 is given) once process $4 has exited without
# writing it.
wait_for_line() {
  local file=$1 pattern=$2 deadline=$((SECONDS + $3)) pid=${4:-}
  until grep -m1 -E "$pattern" "$file" 2>/dev/null; do
    if ((SECONDS >= deadline)); then return 1; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      grep -m1 -E "$pattern" "$file" 2>/dev/null
      return
    fi
    sleep 0.1
  done
}

# Runs "$@" until it succeeds, for at most $1 seconds; prints its last output.
retry_for() {
  local deadline=$((SECONDS + $1)) out
  shift
  until out=$("$@" 2>&1); do
    if ((SECONDS >= deadline)); then
      echo "$out"
      return 1
    fi
    sleep 0.2
  done
  echo "$out"
}

ctl() { "$WEBHOOKCTL" --timeout 10 "$@"; }

# Whether process $1 has exited (a zombie has).
exited() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  [[ ${stat##*) } == [ZX]* ]]
}

# Starts scripts/cluster.sh with the arguments given, its output in
# $cluster_out, and waits until it says the cluster is ready. A non-
# interactive shell starts background jobs with SIGINT ignored, which a
# script cannot trap: env gives the script SIGINT back.
start_cluster() {
  cluster_out=$WORK/cluster-$((++runs)).out
  TMPDIR=$WORK WEBHOOKD_BINARY=$WEBHOOKD WEBHOOKCTL_BINARY=$WEBHOOKCTL \
    env --default-signal=INT "$ROOT/scripts/cluster.sh" "$@" \
    >"$cluster_out" 2>&1 </dev/null &
  cluster_pid=$!
  wait_for_line "$cluster_out" '^cluster ready: ' "$START_SECONDS" \
    "$cluster_pid" >/dev/null || fail "the cluster did not become ready"
  mapfile -t addresses < <(sed -nE 's/^node [0-9]+  ([0-9.:]+)  .*/\1/p' \
    "$cluster_out")
  mapfile -t node_pids < <(sed -nE 's/^node [0-9]+  .*  pid ([0-9]+)  .*/\1/p' \
    "$cluster_out")
  postmaster_pid=$(head -n1 "$(cluster_dir)/postgres/data/postmaster.pid")
}
runs=0

cluster_dir() {
  sed -nE 's/^cluster ready: .* in (.*) \(logs .*/\1/p' "$cluster_out"
}

# SIGINT to the script, as Ctrl-C; it must exit 0 having stopped the nodes
# and PostgreSQL.
stop_cluster() {
  local status=0 pid address
  kill -INT "$cluster_pid"
  timeout "$STOP_SECONDS" tail --pid="$cluster_pid" -f /dev/null ||
    fail "scripts/cluster.sh still runs ${STOP_SECONDS}s after SIGINT"
  wait "$cluster_pid" || status=$?
  cluster_pid=
  ((status == 0)) || fail "scripts/cluster.sh exited with $status after SIGINT"
  for pid in "${node_pids[@]}" "$postmaster_pid"; do
    if ! exited "$pid"; then
      fail "process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) still runs"
    fi
  done
  for address in "${addresses[@]}"; do
    if (exec 3<>"/dev/tcp/${address/://}") 2>/dev/null; then
      fail "something still listens on $address"
    fi
  done
}

echo "== a cluster of $NODES node(s) in a temporary directory"
start_cluster --nodes "$NODES" --base-port 0 -- --allow_insecure_targets \
  --retry_schedule=1s,2s,5s
dir=$(cluster_dir)
[[ -d $dir && $dir == "$WORK"/* ]] ||
  fail "the cluster's directory \"$dir\" is not a new one under \$TMPDIR"
((${#addresses[@]} == NODES && ${#node_pids[@]} == NODES)) ||
  fail "expected $NODES node lines"
first=${addresses[0]}
last=${addresses[NODES - 1]}
for address in "${addresses[@]}"; do
  ctl -s "$address" endpoints list >/dev/null ||
    fail "node $address does not answer"
done
echo "nodes answer: ${addresses[*]}"

ctl listen --port 0 --secret "$SECRET" -o json >"$WORK/receiver.out" 2>&1 &
receiver_pid=$!
url=$(wait_for_line "$WORK/receiver.out" '"listening"' 10 "$receiver_pid" |
  grep -oE 'http://[^"]+') || fail "webhookctl listen did not start"

endpoint=$(ctl -s "$first" -o json endpoints create --thread cluster-test \
  --user 42 --name "Cluster test" --url "${url}hook" --secret "$SECRET") ||
  fail "CreateEndpoint on node 1: $endpoint"
endpoint_id=$(grep -oE 'ep_[0-9a-f]+' <<<"$endpoint" | head -n1)
# The last node learns of the new endpoint from the database, within a
# second: until then an event submitted there reaches no endpoint.
deadline=$((SECONDS + 30))
for ((n = 1; ; n++)); do
  submitted=$(ctl -s "$last" -o json events submit --thread cluster-test \
    --user 42 --idempotency-key "cluster-test-$n") ||
    fail "SubmitEvent on node $NODES: $submitted"
  mapfile -t deliveries < <(grep -oE 'dlv_[0-9a-f]+' <<<"$submitted")
  ((${#deliveries[@]} == 0)) || break
  ((SECONDS < deadline)) ||
    fail "events on node $NODES still reach no endpoint after 30s"
  sleep 0.2
done
((${#deliveries[@]} == 1)) ||
  fail "SubmitEvent made ${#deliveries[@]} deliveries, not 1: $submitted"
delivery=${deliveries[0]}
echo "endpoint $endpoint_id created on $first; delivery $delivery made on $last" \
  "by submit $n"

wait_for_line "$WORK/receiver.out" \
  "\"delivery_id\":\"$delivery\".*\"signature\":\"valid\"" \
  "$DELIVERY_SECONDS" "$receiver_pid" >/dev/null ||
  fail "delivery $delivery did not arrive within ${DELIVERY_SECONDS}s:
$(cat "$WORK/receiver.out")"
retry_for 30 sh -c '"$@" | grep -q DELIVERY_STATUS_SUCCESS' sh \
  "$WEBHOOKCTL" --timeout 10 -s "$first" -o json deliveries get "$delivery" \
  >/dev/null || fail "node 1 does not show $delivery as SUCCESS"
echo "delivered, signature valid; SUCCESS on node 1"

stop_cluster
[[ ! -e $dir ]] || fail "the temporary directory $dir is still there"
echo "SIGINT: nodes and PostgreSQL stopped, $dir removed"

echo "== one node with --dir, twice"
kept=$WORK/kept
start_cluster --nodes 1 --base-port 0 --dir "$kept"
[[ $(cluster_dir) == "$kept" ]] || fail "not run in --dir $kept"
endpoint=$(ctl -s "${addresses[0]}" -o json endpoints create \
  --thread kept --name "Kept" --url https://example.com/hook) ||
  fail "CreateEndpoint: $endpoint"
endpoint_id=$(grep -oE 'ep_[0-9a-f]+' <<<"$endpoint" | head -n1)
stop_cluster
[[ -f $kept/postgres/data/PG_VERSION && -f $kept/node1.log ]] ||
  fail "--dir $kept was not kept"
start_cluster --nodes 1 --base-port 0 --dir "$kept"
ctl -s "${addresses[0]}" endpoints get "$endpoint_id" >/dev/null ||
  fail "the second run on --dir does not have endpoint $endpoint_id"
stop_cluster
echo "--dir kept, and its data found again"

echo "cluster_script_test: passed with $NODES node(s)"
