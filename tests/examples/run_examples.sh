#!/usr/bin/env bash
# Runs the other-language examples and grpcurl-style calls against a real
# webhookd on loopback:
#   1. examples/python: receiver.py verifies a signed delivery that
#      client.py caused (create endpoint, submit, follow StreamDeliveries,
#      delete the endpoint);
#   2. examples/node: the same with receiver.js and client.js;
#   each twice against the same server: the second run, given a thread
#   holding an endpoint an earlier run left, must delete it and pass too,
#   and no run leaves an endpoint behind; the second run submits a batch of
#   three events in one SubmitEvents call (--batch 3);
#   3. buf curl through server reflection (CreateEndpoint, ListEndpoints,
#      DeleteEndpoint, StreamDeliveries), and the health check, its schema
#      found through reflection too.
# Fails loudly on the first error; always kills what it started.
# Usage: tests/examples/run_examples.sh [path/to/webhookd]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WEBHOOKD=${1:-$ROOT/build/server/webhookd}
BUF=$ROOT/tools/node_modules/.bin/buf
PYTHON=/usr/bin/python3
SECRET=example-secret
# shellcheck source=tests/examples/lib.sh
source "$ROOT/tests/examples/lib.sh"

[[ -x $WEBHOOKD ]] || fail "no webhookd at $WEBHOOKD (build first)"
[[ -x $BUF ]] || fail "no buf at $BUF (run scripts/setup.sh)"
$PYTHON -c 'import grpc, google.protobuf' ||
  fail "python3-grpcio / python3-protobuf missing (run scripts/setup.sh)"
if [[ ! -d $ROOT/examples/node/node_modules/@grpc/grpc-js ]]; then
  (cd "$ROOT/examples/node" && npm ci --no-audit --no-fund --loglevel=error) ||
    fail "npm ci in examples/node"
fi

echo "== webhookd"
start_webhookd "$WEBHOOKD"
SERVER=127.0.0.1:$PORT
echo "webhookd on $SERVER"

call() {
  "$BUF" curl --protocol grpc --http2-prior-knowledge "$@"
}
API=http://127.0.0.1:$PORT/webhook.v1.WebhookService

# run_example NAME COUNT RECEIVER... -- CLIENT...: starts the receiver
# (which must print "listening on PORT" and exit 0 after COUNT verified
# deliveries), runs the client against it, and checks both.
run_example() {
  local name=$1 count=$2 receiver=() client=() rport rpid
  shift 2
  while [[ $1 != -- ]]; do receiver+=("$1"); shift; done
  shift
  client=("$@")
  echo "== $name example"
  "${receiver[@]}" --port 0 --secret "$SECRET" --count "$count" \
    >"$WORK/$name-receiver.log" 2>&1 &
  rpid=$!
  PIDS+=("$rpid")
  rport=$(wait_for_line "$WORK/$name-receiver.log" '^listening on [0-9]+' |
    grep -oE '[0-9]+$') || fail "$name receiver did not start"
  "${client[@]}" --server "$SERVER" --secret "$SECRET" \
    --url "http://127.0.0.1:$rport/hook" >"$WORK/$name-client.log" 2>&1 ||
    fail "$name client"
  cat "$WORK/$name-client.log"
  grep -q 'DELIVERY_STATUS_SUCCESS' "$WORK/$name-client.log" ||
    fail "$name client did not see the delivery succeed"
  wait "$rpid" || fail "$name receiver exited with an error"
  (($(grep -c '"verified": *true' "$WORK/$name-receiver.log") == count)) ||
    fail "$name receiver did not verify $count signed deliveries"
  (($(grep -c '^submitted event' "$WORK/$name-client.log") == count)) ||
    fail "$name client did not submit $count events"
  if grep -q '"verified": *false' "$WORK/$name-receiver.log"; then
    fail "$name receiver got a delivery with a bad signature"
  fi
  # The client's messages_json arrived as written: key order kept (through
  # messages, keys would be sorted), and in Python, which parses big
  # integers exactly, the number too.
  grep -q '"messages": *\[{"role": *"assistant", *"content"' \
    "$WORK/$name-receiver.log" ||
    fail "$name receiver did not get messages_json in its order"
  if [[ $name == python-* ]]; then
    grep -q '"request_id": 12345678901234567890}' "$WORK/$name-receiver.log" ||
      fail "$name receiver did not get the exact number of messages_json"
  fi
  echo "$name receiver verified: $(grep -m1 verified "$WORK/$name-receiver.log")"
}

# plant_leftover THREAD NAME: an endpoint such as a run killed before its
# clean-up would leave, posting nowhere.
plant_leftover() {
  call "$API/CreateEndpoint" -d "{\"endpoint\": {\"threadId\": \"$1\",
    \"userId\": 42, \"name\": \"$2\", \"url\": \"http://127.0.0.1:9/hook\"}}" \
    >/dev/null || fail "buf curl CreateEndpoint (leftover in $1)"
}

# Twice each: the examples must be runnable again and again on one server.
# The second runs are given a thread holding a leftover endpoint of an
# earlier run, which they must delete rather than deliver to.
for run in 1 2; do
  py_args=() node_args=() count=1
  if ((run == 2)); then
    plant_leftover leftovers-python "Python example"
    plant_leftover leftovers-node "Node example"
    count=3
    py_args=(--thread leftovers-python --batch "$count")
    node_args=(--thread leftovers-node --batch "$count")
  fi
  run_example "python-$run" "$count" \
    "$PYTHON" "$ROOT/examples/python/receiver.py" -- \
    "$PYTHON" "$ROOT/examples/python/client.py" "${py_args[@]}"
  run_example "node-$run" "$count" node "$ROOT/examples/node/receiver.js" -- \
    node "$ROOT/examples/node/client.js" "${node_args[@]}"
done
for name in python-2 node-2; do
  grep -q '^deleted leftover endpoint' "$WORK/$name-client.log" ||
    fail "$name did not delete the leftover endpoint of its thread"
done

echo "== buf curl through reflection"
services=$(call --list-services "http://127.0.0.1:$PORT") ||
  fail "buf curl --list-services"
grep -qx 'webhook.v1.WebhookService' <<<"$services" ||
  fail "reflection does not list webhook.v1.WebhookService: $services"
endpoints=$(call "$API/ListEndpoints" -d '{}') || fail "buf curl ListEndpoints"
if grep -qE '"name": "(Python|Node) example"' <<<"$endpoints"; then
  fail "an example left its endpoint behind: $endpoints"
fi
created=$(call "$API/CreateEndpoint" -d '{"endpoint": {"threadId": "buf",
  "userId": 42, "name": "buf example", "url": "http://127.0.0.1:9/hook"}}') ||
  fail "buf curl CreateEndpoint"
id=$(grep -oE '"id": "ep_[0-9a-f]+"' <<<"$created" | grep -oE 'ep_[0-9a-f]+') ||
  fail "CreateEndpoint answered no id: $created"
endpoints=$(call "$API/ListEndpoints" -d '{}') || fail "buf curl ListEndpoints"
echo "$endpoints" | head -n 5
grep -q '"name": "buf example"' <<<"$endpoints" ||
  fail "ListEndpoints lacks the endpoint buf created: $endpoints"
call "$API/DeleteEndpoint" -d "{\"id\": \"$id\"}" >/dev/null ||
  fail "buf curl DeleteEndpoint"
# A server stream: the replay of the last two deliveries (of the second
# runs), then live updates until buf is interrupted.
stream=$(timeout -s INT 3 "$BUF" curl --protocol grpc \
  --http2-prior-knowledge "$API/StreamDeliveries" \
  -d '{"replayRecent": 2}' 2>&1 || true)
[[ $(grep -c '"status": "DELIVERY_STATUS_SUCCESS"' <<<"$stream") -eq 2 ]] ||
  fail "StreamDeliveries replay: $stream"
echo "StreamDeliveries replayed 2 deliveries"

echo "== buf curl health check"
health=$(call "http://127.0.0.1:$PORT/grpc.health.v1.Health/Check" -d '{}') ||
  fail "buf curl Health/Check"
grep -q '"status": "SERVING"' <<<"$health" || fail "health: $health"
echo "health: SERVING"

echo "examples: Python, Node, buf curl and health check all passed"
