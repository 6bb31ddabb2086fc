#!/usr/bin/env bash
# `make bench`: the benchmark suites, in release builds; writes docs/benchmarks.md.
# Not part of `make test`. Takes a few minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh"
OHA_VERSION=1.16.0
if ! "$STACK_DIR/tools/bin/oha" --version 2>/dev/null | grep -q "$OHA_VERSION"; then
  say "Installing the oha load generator $OHA_VERSION (crates.io)"
  cargo install --quiet --locked --root "$STACK_DIR/tools" "oha@$OHA_VERSION"
fi

say "Building release binaries"
(cd "$ROOT" && cargo build --release --workspace --bins --quiet)

say "Diff engine (criterion)"
(cd "$ROOT" && cargo bench --quiet -p studyflow-diffing --bench diff -- --noplot)
"$ROOT/target/release/studyflow-bench" diff-engine

say "Gateway overhead"
"$ROOT/target/release/studyflow-bench" gateway "$@"
say "Results written to docs/benchmarks.md"
