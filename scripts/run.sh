#!/usr/bin/env bash
# `make run`: the whole stack on this machine. Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

provision

say "Building"
(cd "$ROOT" && cargo build --release --workspace --bins)
# The stack launcher forwards Ctrl-C to the processes it started and waits for them.
"$ROOT/target/release/studyflow-stack" "$@"
