#!/usr/bin/env bash
# Writes the differential test vectors (tests/vectors/generate.py) to $1, signed and
# judged by the providers' own libraries at pinned versions: PyPI packages in a
# virtualenv under tests/vectors/.venv, npm packages (tests/vectors/package-lock.json)
# under tests/vectors/node_modules; both gitignored, installed on first use and reused.
# With `keyed` as $2, writes instead the vectors of the schemes whose keys are fetched
# (tests/vectors/keyed.py, tests/vectors/keyed-node.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/sdk-vectors.sh OUT.json [keyed]}
KIND=${2:-}
VENV=tests/vectors/.venv
# Tests generate vectors concurrently: one installs, the others wait for it.
exec 9>tests/vectors/.install.lock
flock 9
PINS="stripe==16.1.0 standardwebhooks==1.1.0 slack-sdk==3.47.0 twilio==9.13.0 discord-interactions==0.4.0 pynacl==1.6.2 sendgrid==6.12.5 hubspot-api-client==12.0.0 workos==10.6.0 mailgun==1.10.0 google-auth==2.62.2 pyjwt==2.15.1"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
  ${PYTHON:-python3} -m venv "$VENV" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS >&2
  echo "$PINS" > "$VENV/.pins"
fi
LOCK=$(sha256sum tests/vectors/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/vectors/node_modules/.lock-sha256 2>/dev/null)" != "$LOCK" ]; then
  npm ci --prefix tests/vectors --no-audit --no-fund --loglevel=error >&2
  echo "$LOCK" > tests/vectors/node_modules/.lock-sha256
fi
flock -u 9
if [ "$KIND" = keyed ]; then
  "$VENV/bin/python" tests/vectors/keyed.py "$OUT"
  exec node tests/vectors/keyed-node.mjs "$OUT"
fi
"$VENV/bin/python" tests/vectors/generate.py "$OUT"
node tests/vectors/generate-node.mjs "$OUT"
