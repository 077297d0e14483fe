#!/usr/bin/env bash
# buf curl, the grpcurl-style client, against a real webhookd on loopback,
# through server reflection alone (no .proto files): --list-methods lists
# every method of every service, grpc.health.v1.Health/Check and a
# WebhookService method can be called, with both reflection versions.
# Usage: tests/examples/buf_reflection_test.sh path/to/webhookd
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WEBHOOKD=${1:?usage: $0 path/to/webhookd}
BUF=$ROOT/tools/node_modules/.bin/buf
WORK=$(mktemp -d)
PID=

cleanup() {
  if [[ -n $PID ]]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  tail -n 30 "$WORK/webhookd.log" >&2 || true
  exit 1
}

[[ -x $BUF ]] || fail "no buf at $BUF (run scripts/setup.sh)"
"$WEBHOOKD" --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --data_dir="$WORK/data" >"$WORK/webhookd.log" 2>&1 &
PID=$!
for ((i = 0; i < 200; i++)); do
  [[ -s $WORK/port ]] && break
  kill -0 "$PID" 2>/dev/null || fail "webhookd exited"
  sleep 0.05
done
[[ -s $WORK/port ]] || fail "webhookd did not start"
URL=http://127.0.0.1:$(cat "$WORK/port")

call() { "$BUF" curl --protocol grpc --http2-prior-knowledge "$@"; }

methods=$(call --list-methods "$URL") || fail "buf curl --list-methods"
echo "$methods"
for method in grpc.health.v1.Health/Check grpc.health.v1.Health/Watch \
  webhook.v1.WebhookService/CreateEndpoint \
  webhook.v1.WebhookService/StreamDeliveries \
  grpc.reflection.v1.ServerReflection/ServerReflectionInfo; do
  grep -qx "$method" <<<"$methods" || fail "--list-methods lacks $method"
done

health=$(call "$URL/grpc.health.v1.Health/Check" -d '{}') ||
  fail "buf curl Health/Check"
grep -q '"status": "SERVING"' <<<"$health" || fail "health: $health"
echo "health: SERVING"

created=$(call "$URL/webhook.v1.WebhookService/CreateEndpoint" \
  -d '{"endpoint": {"threadId": "t1", "name": "buf",
       "url": "https://hooks.example.com/buf"}}') ||
  fail "buf curl CreateEndpoint"
grep -q '"id": "ep_' <<<"$created" || fail "CreateEndpoint: $created"
listed=$(call "$URL/webhook.v1.WebhookService/ListEndpoints" -d '{}') ||
  fail "buf curl ListEndpoints"
grep -q '"name": "buf"' <<<"$listed" || fail "ListEndpoints: $listed"
echo "WebhookService: CreateEndpoint and ListEndpoints"

# Older clients ask for grpc.reflection.v1alpha.
old=$(call --reflect-protocol grpc-v1alpha --list-methods "$URL") ||
  fail "buf curl --reflect-protocol grpc-v1alpha"
[[ $old == "$methods" ]] || fail "v1alpha lists other methods: $old"
echo "buf curl through reflection: passed"
