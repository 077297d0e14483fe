#!/usr/bin/env bash
# Sets up, builds and runs webhookd on 127.0.0.1:50051 (gRPC) and
# 127.0.0.1:8081 (the HTTP/JSON API) with its LevelDB database under ./data.
# Extra arguments are passed to webhookd (and win over these), e.g.
#   scripts/run_server.sh --allow_insecure_targets
#   scripts/run_server.sh --http_listen=     # no HTTP/JSON API
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec build/server/webhookd --data_dir=./data --http_listen=127.0.0.1:8081 "$@"
