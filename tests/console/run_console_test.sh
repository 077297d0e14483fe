#!/usr/bin/env bash
# Runs the web console's real-browser test (console_test.js): installs its
# pinned npm packages first if they are missing, and fails clearly without
# Debian's Chromium (scripts/setup.sh installs both).
# Usage: tests/console/run_console_test.sh WEBHOOKD [SCREENSHOT_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [[ ! -d $HERE/node_modules/puppeteer-core ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  echo "FAIL: no Chromium at $CHROMIUM (run scripts/setup.sh)" >&2
  exit 1
fi
export CHROMIUM
exec node "$HERE/console_test.js" "$@"
