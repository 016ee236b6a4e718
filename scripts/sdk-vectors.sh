#!/usr/bin/env bash
# Writes the differential test vectors (tests/vectors/generate.py) to $1, signed and
# judged by the providers' own libraries at pinned versions. The libraries live in a
# virtualenv under tests/vectors/.venv (gitignored), created on first use and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/sdk-vectors.sh OUT.json}
VENV=tests/vectors/.venv
PINS="stripe==16.1.0 standardwebhooks==1.1.0 slack-sdk==3.47.0 twilio==9.13.0"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
  ${PYTHON:-python3} -m venv "$VENV" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS >&2
  echo "$PINS" > "$VENV/.pins"
fi
"$VENV/bin/python" tests/vectors/generate.py "$OUT"
