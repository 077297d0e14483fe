# Shared by the scripts of tests/examples: a work directory and the
# processes started in it (all killed, and the directory removed, on exit),
# failing with the logs, waiting for lines, and a webhookd on a free
# loopback port. Source it after `set -euo pipefail`.

WORK=$(mktemp -d)
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# fail MESSAGE: prints it and the end of every log in $WORK, and exits 1.
fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/*.log; do
    [[ -f $log ]] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

# wait_for_lines FILE N REGEX: waits (20 s at most) until FILE has at least
# N lines matching REGEX; prints the last of them.
wait_for_lines() {
  local i n
  for ((i = 0; i < 400; i++)); do
    n=$(grep -cE "$3" "$1" 2>/dev/null) || n=${n:-0}
    if ((n >= $2)); then
      grep -E "$3" "$1" | tail -n 1
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# wait_for_line FILE REGEX: wait_for_lines FILE 1 REGEX.
wait_for_line() { wait_for_lines "$1" 1 "$2"; }

# start_webhookd WEBHOOKD: starts it on a free loopback port with its data
# in $WORK, allowing plain-http targets on loopback and retrying quickly;
# sets PORT.
start_webhookd() {
  "$1" --listen=127.0.0.1:0 --port_file="$WORK/port" \
    --data_dir="$WORK/data" --allow_insecure_targets \
    --retry_schedule=100ms,200ms >"$WORK/webhookd.log" 2>&1 &
  PIDS+=($!)
  wait_for_line "$WORK/port" '^[0-9]+$' >/dev/null ||
    fail "webhookd did not start"
  PORT=$(cat "$WORK/port")
}
