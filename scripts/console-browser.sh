#!/usr/bin/env bash
# Runs the console's headless-browser test (tests/console/console.test.mjs) with the
# environment it reads. Installs what it needs on first use: playwright-core at the
# version pinned by tests/console/package-lock.json under tests/console/node_modules
# (gitignored), and Debian's chromium when /usr/bin/chromium is missing and this runs as
# root. No browser is downloaded by Playwright: it drives the system's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) >&2
  else
    echo "chromium is missing: apt-get install chromium (or set CHROMIUM=/path/to/chromium)" >&2
    exit 2
  fi
fi
# Tests may run this concurrently: one installs, the others wait for it.
exec 9>tests/console/.install.lock
flock 9
LOCK=$(sha256sum tests/console/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/console/node_modules/.lock-sha256 2>/dev/null)" != "$LOCK" ]; then
  npm ci --prefix tests/console --no-audit --no-fund --loglevel=error >&2
  echo "$LOCK" > tests/console/node_modules/.lock-sha256
fi
flock -u 9
exec node tests/console/console.test.mjs
