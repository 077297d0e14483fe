#!/usr/bin/env bash
# Standard Webhooks deliveries verified by receivers nobody here wrote: the
# npm packages `standardwebhooks` and `svix`, in
# examples/node/standard_receiver.mjs, against a real webhookd on loopback,
# driven through webhookctl:
#   1. `secret generate --standard-webhooks` makes the secrets;
#   2. an event to a standard-webhooks endpoint is accepted by both
#      libraries (and a test delivery too);
#   3. the captured delivery sent again with one byte of its body changed
#      is rejected by both; sent again verbatim but verified 6 minutes
#      later (a replay) it is rejected by both as too old;
#   4. after `endpoints rotate-secret`, a delivery carries both signatures
#      and both libraries accept it with the old secret alone and with the
#      new secret alone.
# Fails loudly on the first error; always kills what it started.
# Usage: tests/examples/standard_webhooks_test.sh WEBHOOKD WEBHOOKCTL
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WEBHOOKD=${1:-$ROOT/build/server/webhookd}
WEBHOOKCTL=${2:-$ROOT/build/client/webhookctl}
# shellcheck source=tests/examples/lib.sh
source "$ROOT/tests/examples/lib.sh"

# json EXPRESSION: evaluates a JavaScript expression over `j`, the JSON
# object read from stdin, and prints the result.
json() {
  node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log($1)})"
}

[[ -x $WEBHOOKD ]] || fail "no webhookd at $WEBHOOKD (build first)"
[[ -x $WEBHOOKCTL ]] || fail "no webhookctl at $WEBHOOKCTL (build first)"
[[ -d $ROOT/examples/node/node_modules/svix && \
   -d $ROOT/examples/node/node_modules/standardwebhooks ]] ||
  fail "svix / standardwebhooks missing in examples/node (run scripts/setup.sh)"

echo "== webhookd"
start_webhookd "$WEBHOOKD"
CTL=("$WEBHOOKCTL" --server "127.0.0.1:$PORT")

echo "== secrets"
OLD=$("${CTL[@]}" secret generate --standard-webhooks)
NEW=$("${CTL[@]}" secret generate --standard-webhooks)
[[ $OLD =~ ^whsec_[A-Za-z0-9+/]{43}=$ ]] || fail "not a whsec_ secret: $OLD"
[[ $OLD != "$NEW" ]] || fail "secret generate printed the same secret twice"
HEX=$("${CTL[@]}" secret generate)
[[ $HEX =~ ^[0-9a-f]{64}$ ]] || fail "not a hex secret: $HEX"

echo "== receiver (standardwebhooks + svix), knowing the old and the new secret"
node "$ROOT/examples/node/standard_receiver.mjs" --port 0 \
  --secret "$OLD" --secret "$NEW" >"$WORK/receiver.log" 2>&1 &
PIDS+=($!)
RPORT=$(wait_for_line "$WORK/receiver.log" '^listening on [0-9]+' |
  grep -oE '[0-9]+$') || fail "receiver did not start"
HOOK=http://127.0.0.1:$RPORT/hook

EP=$("${CTL[@]}" -o json endpoints create --thread sw-thread --name "Standard" \
  --url "$HOOK" --secret "$OLD" --signature-scheme standard-webhooks |
  json j.id) || fail "endpoints create --signature-scheme standard-webhooks"
echo "endpoint $EP"

# deliver N: submits an event and prints the receiver's N-th line about a
# request to /hook.
deliver() {
  "${CTL[@]}" events submit --thread sw-thread >/dev/null || fail "events submit"
  wait_for_lines "$WORK/receiver.log" "$1" '"path":"/hook"' ||
    fail "no delivery $1 reached the receiver"
}

# expect LINE SECRET_INDEX VERDICT: both libraries' verdicts on the request
# of LINE with that secret start with VERDICT.
expect() {
  local got
  for lib in standardwebhooks svix; do
    got=$(json "j.verdicts[$2]?.$lib" <<<"$1")
    [[ $got == "$3"* ]] || fail "$lib with secret $2: '$got', expected '$3'"
  done
}

echo "== a real delivery"
LINE=$(deliver 1)
expect "$LINE" 0 ok
expect "$LINE" 1 "rejected: No matching signature found"
[[ $(json j.status <<<"$LINE") == 200 ]] || fail "receiver did not answer 200"
[[ $(json "j.headers['webhook-id']" <<<"$LINE") == "$(json j.delivery_id <<<"$LINE")" ]] ||
  fail "webhook-id is not the delivery id"

# resend PATH BODY_FILE: sends the captured request's webhook-* headers with
# BODY_FILE to the receiver; prints the receiver's line about it.
resend() {
  local count
  count=$(grep -c '"path":"/replay' "$WORK/receiver.log" || true)
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -H "webhook-id: $(json "j.headers['webhook-id']" <<<"$LINE")" \
    -H "webhook-timestamp: $(json "j.headers['webhook-timestamp']" <<<"$LINE")" \
    -H "webhook-signature: $(json "j.headers['webhook-signature']" <<<"$LINE")" \
    --data-binary "@$2" "http://127.0.0.1:$RPORT$1" || fail "curl $1"
  wait_for_lines "$WORK/receiver.log" $((count + 1)) '"path":"/replay' ||
    fail "no line for $1"
}
json "j.body_base64" <<<"$LINE" | base64 -d >"$WORK/body.json"
# One byte changed: "threadId" -> "threadID".
sed 's/"threadId"/"threadID"/' "$WORK/body.json" >"$WORK/tampered.json"
cmp -s "$WORK/body.json" "$WORK/tampered.json" && fail "body not tampered"

echo "== the captured delivery sent again verbatim: accepted"
expect "$(resend /replay "$WORK/body.json")" 0 ok
echo "== with a tampered body: rejected"
expect "$(resend /replay-tampered "$WORK/tampered.json")" 0 \
  "rejected: No matching signature found"
echo "== verbatim, 6 minutes later: rejected as stale"
expect "$(resend '/replay-stale?clock_offset_s=360' "$WORK/body.json")" 0 \
  "rejected: Message timestamp too old"

echo "== a test delivery is signed the same way"
"${CTL[@]}" endpoints test "$EP" >"$WORK/test.log" ||
  fail "endpoints test: the receiver did not accept the test delivery"

echo "== rotation: both secrets sign during the grace"
ROTATED=$("${CTL[@]}" -o json endpoints rotate-secret "$EP" --secret "$NEW" \
  --grace 1h) || fail "endpoints rotate-secret"
[[ $(json j.endpoint.hasPreviousSecret <<<"$ROTATED") == true ]] ||
  fail "no previous secret after the rotation: $ROTATED"
[[ $(json j.newSecret <<<"$ROTATED") == "" ]] || fail "a given secret was echoed"
LINE=$(deliver 3)  # the test delivery was the second
[[ $(json "j.headers['webhook-signature'].split(' ').length" <<<"$LINE") == 2 ]] ||
  fail "not two signatures during the grace: $LINE"
expect "$LINE" 0 ok  # a receiver that knows only the old secret
expect "$LINE" 1 ok  # a receiver that knows only the new one

echo "== rotation to a generated secret, shown once"
GENERATED=$("${CTL[@]}" endpoints rotate-secret "$EP" | grep '^new secret' |
  grep -oE 'whsec_[A-Za-z0-9+/=]+$') || fail "no generated secret printed"
[[ $GENERATED != "$NEW" ]] || fail "generated secret is the old one"
LINE=$(deliver 4)
expect "$LINE" 1 ok   # the previous secret, now NEW
expect "$LINE" 0 "rejected"  # OLD is two rotations ago: dropped

echo "PASS"
