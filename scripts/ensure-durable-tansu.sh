#!/usr/bin/env bash
# Prints the path of a Tansu broker built with durable storage (sqlite), which the chaos
# suite's broker-outage scenario restarts without losing data. The PyPI build that the
# other tests use keeps everything in memory. First run: `cargo install` (10-20 minutes
# on 2 cores), then cached in ~/.cargo/bin.
set -euo pipefail
bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if [ ! -x "$bin" ]; then
  echo "installing tansu 0.6.0 with sqlite storage (one time, slow)…" >&2
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql >&2
fi
echo "$bin"
