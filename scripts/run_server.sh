#!/usr/bin/env bash
# Sets up, builds and runs webhookd on 127.0.0.1:50051 with its LevelDB
# database under ./data. Extra arguments are passed to webhookd, e.g.
#   scripts/run_server.sh --allow_insecure_targets
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec build/server/webhookd --data_dir=./data "$@"
