#!/usr/bin/env bash
# Runs a local webhookd cluster: a private PostgreSQL server and N webhookd
# nodes sharing one database on it, all on loopback. Ctrl-C (SIGINT, SIGTERM
# or SIGHUP) stops the nodes, then the database, and removes the directory
# unless --dir named it; the exit status is 0 if everything stopped cleanly.
#
# Usage: scripts/cluster.sh [--nodes N] [--dir DIR] [--base-port P] [FLAG...]
#   --nodes N      how many nodes (default 3)
#   --dir DIR      keep the database and the logs in DIR, and keep DIR at the
#                  end: a later run on the same DIR finds the data again
#                  (default: a new temporary directory, removed at the end)
#   --base-port P  node i listens on 127.0.0.1:P+i-1 (default 50061; 0: ports
#                  the system picks, printed at start-up)
#   FLAG...        other arguments (and all after --) go to every node, e.g.
#                  --allow_insecure_targets --retry_schedule=1s,2s,5s
# It builds webhookd first as scripts/run_server.sh does (scripts/build.sh),
# unless WEBHOOKD_BINARY names a webhookd to run; WEBHOOKCTL_BINARY names the
# webhookctl shown in the examples (default build/client/webhookctl).
# PostgreSQL comes from Debian's postgresql package; as root it runs as the
# user "postgres", since PostgreSQL refuses to run as root.

# shellcheck disable=SC2317  # cleanup and what it calls run from a trap
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Bounds, not delays: how long a node may take to serve, and to stop.
NODE_START_SECONDS=60
NODE_STOP_SECONDS=60

die() {
  echo "cluster: $*" >&2
  exit 1
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

nodes=3
dir=
base_port=50061
node_flags=()
while (($#)); do
  case $1 in
    --nodes | --dir | --base-port)
      (($# >= 2)) || die "$1 needs a value (--help for usage)"
      case $1 in
        --nodes) nodes=$2 ;;
        --dir) dir=$2 ;;
        --base-port) base_port=$2 ;;
      esac
      shift 2
      ;;
    --nodes=*) nodes=${1#*=}; shift ;;
    --dir=*) dir=${1#*=}; shift ;;
    --base-port=*) base_port=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; node_flags+=("$@"); break ;;
    *) node_flags+=("$1"); shift ;;
  esac
done
if [[ ! $nodes =~ ^[1-9][0-9]{0,3}$ ]]; then
  die "--nodes must be a positive number, not \"$nodes\""
fi
if [[ ! $base_port =~ ^(0|[1-9][0-9]{0,4})$ ]] ||
  ((base_port + nodes - 1 > 65535)); then
  die "--base-port must be 0, or a port from which all $nodes nodes fit"
fi

# Before anything is built or started.
if ((base_port)); then
  for ((i = 0; i < nodes; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((base_port + i))") 2>/dev/null; then
      die "127.0.0.1:$((base_port + i)) is in use: give another --base-port"
    fi
  done
fi

# --- webhookd and webhookctl.
if [[ -n ${WEBHOOKD_BINARY:-} ]]; then
  webhookd=$WEBHOOKD_BINARY
else
  "$ROOT/scripts/build.sh"
  webhookd=$ROOT/build/server/webhookd
fi
webhookctl=${WEBHOOKCTL_BINARY:-$ROOT/build/client/webhookctl}
[[ -x $webhookd ]] || die "no webhookd at $webhookd"

# --- PostgreSQL's programs: the newest installed the Debian way.
pg_bin=
for candidate in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
  if [[ -x $candidate/initdb && -x $candidate/pg_ctl &&
    -x $candidate/pg_isready && -x $candidate/psql ]]; then
    pg_bin=$candidate
  fi
done
[[ -n $pg_bin ]] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin:" \
  "install Debian's package postgresql (apt-get install postgresql;" \
  "scripts/setup.sh does)"
as_postgres=()
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || die "running as root, and there is no user" \
    "\"postgres\" to run PostgreSQL as (the postgresql package makes it)"
  as_postgres=(runuser -u postgres --)
fi

# --- Everything that is started is stopped by cleanup, whatever happens.
created_dir=false
pg_data=
pg_started=false
watcher_pid=
node_pids=()
declare -A node_of=()

# Stops every node still running: SIGTERM (webhookd finishes the attempts in
# flight for --shutdown_grace), SIGKILL past NODE_STOP_SECONDS.
stop_nodes() {
  local pid
  for pid in "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${node_pids[@]}"; do
    if ! timeout "$NODE_STOP_SECONDS" tail --pid="$pid" -f /dev/null; then
      echo "cluster: node ${node_of[$pid]} (pid $pid) did not stop;" \
        "killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  node_pids=()
}

# Runs PostgreSQL program $1 with the arguments that follow, as the user
# "postgres" when root, from a directory that user can read.
pg() {
  "${as_postgres[@]}" env -C "$dir/postgres" "$pg_bin/$1" "${@:2}"
}

# Whether process $1 has exited. A zombie has: the postmaster's new parent
# (init, after pg_ctl exits) may take a while to reap it.
exited() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  [[ ${stat##*) } == [ZX]* ]]
}

cleanup() {
  local status=$? ok=true postmaster i
  # A second Ctrl-C must not cut the stopping short.
  trap '' INT TERM HUP
  if ((${#node_pids[@]})); then
    echo "cluster: stopping ${#node_pids[@]} node(s)"
    stop_nodes
  fi
  if $pg_started; then
    echo "cluster: stopping PostgreSQL"
    postmaster=$(head -n1 "$pg_data/postmaster.pid" 2>/dev/null || true)
    if ! pg pg_ctl -D "$pg_data" -m fast -w -t 60 stop >/dev/null; then
      pg pg_ctl -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
      ok=false
    fi
    # pg_ctl returns once the postmaster has removed its pid file, just
    # before it exits.
    for ((i = 0; i < 100; i++)); do
      if [[ -z $postmaster ]] || exited "$postmaster"; then break; fi
      sleep 0.1
    done
  fi
  if [[ -n $watcher_pid ]]; then
    kill -TERM "$watcher_pid" 2>/dev/null || true
    wait "$watcher_pid" 2>/dev/null || true
  fi
  if $created_dir; then
    rm -rf "$dir"
  elif [[ -n $dir ]]; then
    echo "cluster: data and logs kept in $dir"
  fi
  $ok || status=1
  exit "$status"
}
trap cleanup EXIT
# An interrupted cluster that stops cleanly exits 0.
trap 'exit 0' INT TERM HUP

# --- The directory. As root, the user "postgres" must be able to reach it.
postgres_can_enter() {
  ((EUID != 0)) || runuser -u postgres -- test -x "$1"
}
if [[ -z $dir ]]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/webhookd-cluster.XXXXXX")
  created_dir=true
  chmod 755 "$dir"
  if ! postgres_can_enter "$dir"; then
    # $TMPDIR under /root, say.
    rmdir "$dir"
    dir=$(mktemp -d /tmp/webhookd-cluster.XXXXXX)
    chmod 755 "$dir"
  fi
else
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if ((EUID == 0)); then chmod o+x "$dir"; fi
  postgres_can_enter "$dir" || die "the user \"postgres\" cannot enter" \
    "$dir (a directory above it is closed to others?): give a --dir" \
    "elsewhere, e.g. under /tmp"
fi
mkdir -p "$dir/postgres"
if ((EUID == 0)); then chown postgres: "$dir/postgres"; fi
pg_data=$dir/postgres/data
pg_log=$dir/postgres/postgres.log

# --- The database server.
if [[ ! -f $pg_data/PG_VERSION ]]; then
  echo "cluster: creating a PostgreSQL cluster in $pg_data"
  pg initdb -D "$pg_data" -A trust -U postgres --encoding=UTF8 --locale=C \
    --no-instructions >"$dir/initdb.log" 2>&1 ||
    die "initdb failed: $(cat "$dir/initdb.log")"
  rm -f "$dir/initdb.log"
  # TCP on loopback only (a Unix socket path could pass 107 bytes); room for
  # the connection pools of many nodes.
  cat >>"$pg_data/postgresql.conf" <<'EOF'

# scripts/cluster.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
EOF
elif pg pg_ctl -D "$pg_data" status >/dev/null 2>&1; then
  die "a PostgreSQL server already runs on $pg_data (another cluster.sh on" \
    "this --dir?)"
fi

# If this script is killed outright (kill -9), this watcher stops the
# database and removes a temporary directory; SIGTERM ends it doing neither.
remove_dir=
if $created_dir; then remove_dir=$dir; fi
# shellcheck disable=SC2016
setsid sh -c 'p=$1 d=$2; shift 2
tail --pid="$p" -f /dev/null & t=$!
trap "kill $t 2>/dev/null; exit 0" TERM
wait $t
"$@" >/dev/null 2>&1
[ -z "$d" ] || rm -rf "$d"' sh "$$" "$remove_dir" \
  "${as_postgres[@]}" env -C "$dir/postgres" \
  "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop </dev/null &
watcher_pid=$!

# A port of 127.0.0.1 that nothing listens on now, below the range the
# system hands out for outgoing connections (32768 and up).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# Another process may take the port first: then try another.
for attempt in 1 2 3 4 5; do
  pg_port=$(free_port)
  log_size=$(stat -c %s "$pg_log" 2>/dev/null || echo 0)
  # -w: returns once the server accepts connections (or has failed).
  if pg pg_ctl -D "$pg_data" -l "$pg_log" -w -t 60 -o "-p $pg_port" \
    start >/dev/null; then
    pg_started=true
    break
  fi
  pg pg_ctl -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  if ((attempt == 5)) ||
    ! tail -c +"$((log_size + 1))" "$pg_log" | grep -q 'could not bind'; then
    die "PostgreSQL did not start; the end of $pg_log:
$(tail -n 20 "$pg_log")"
  fi
done
"$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -t 10 ||
  die "PostgreSQL does not answer on 127.0.0.1:$pg_port; see $pg_log"
psql_base=("$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres)
if [[ -z $("${psql_base[@]}" -d postgres -tA \
  -c "SELECT 1 FROM pg_database WHERE datname = 'webhookd'") ]]; then
  "${psql_base[@]}" -d postgres -c 'CREATE DATABASE webhookd' ||
    die "cannot create the database webhookd"
fi
conninfo="host=127.0.0.1 port=$pg_port dbname=webhookd user=postgres"

# --- The nodes. All start at once: the schema migrations take an advisory
# lock, so that nodes starting together apply each one once.
for ((i = 1; i <= nodes; i++)); do
  port=0
  if ((base_port)); then port=$((base_port + i - 1)); fi
  rm -f "$dir/node$i.port"
  # --pdeathsig: a node ends with this script even if it is killed outright.
  # --data_dir is not used with --postgres.
  setpriv --pdeathsig TERM -- "$webhookd" --listen="127.0.0.1:$port" \
    --postgres="$conninfo" --port_file="$dir/node$i.port" \
    "${node_flags[@]}" >>"$dir/node$i.log" 2>&1 </dev/null &
  node_pids+=($!)
  node_of[$!]=$i
done

# A node writes its port file (by a rename) once it serves, after its
# start-up lines are logged; a node that cannot start exits.
node_ports=()
for ((i = 1; i <= nodes; i++)); do
  pid=${node_pids[i - 1]}
  deadline=$((SECONDS + NODE_START_SECONDS))
  until [[ -s $dir/node$i.port ]]; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      if kill -0 "$pid" 2>/dev/null; then
        why="did not serve within ${NODE_START_SECONDS}s"
      else
        why="exited"
      fi
      die "node $i $why; the end of its log $dir/node$i.log:
$(tail -n 20 "$dir/node$i.log")"
    fi
    sleep 0.1
  done
  node_ports+=("$(<"$dir/node$i.port")")
done

# --- Ready: how to reach it.
ctl=$webhookctl
[[ $ctl != "$PWD/"* ]] || ctl=${ctl#"$PWD/"}
echo "PostgreSQL $(basename "$(dirname "$pg_bin")") on 127.0.0.1:$pg_port," \
  "database webhookd: psql \"$conninfo\""
for ((i = 1; i <= nodes; i++)); do
  address=127.0.0.1:${node_ports[i - 1]}
  echo "node $i  $address  pid ${node_pids[i - 1]}  try: $ctl -s $address" \
    "endpoints list"
done
echo "cluster ready: $nodes node(s) in $dir (logs node<i>.log);" \
  "Ctrl-C stops it"

# Wait for a signal (the trap above) or for the nodes to exit: a node that
# exits (killed, say, to watch another take its deliveries over) leaves the
# others running.
while ((${#node_pids[@]})); do
  status=0
  gone=
  wait -n -p gone "${node_pids[@]}" || status=$?
  [[ -n $gone ]] || continue
  echo "cluster: node ${node_of[$gone]} (pid $gone) exited with status" \
    "$status; see $dir/node${node_of[$gone]}.log" >&2
  remaining=()
  for pid in "${node_pids[@]}"; do
    [[ $pid == "$gone" ]] || remaining+=("$pid")
  done
  node_pids=("${remaining[@]}")
done
die "every node has exited"
