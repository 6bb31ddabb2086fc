#!/usr/bin/env bash
# `make bench`: every benchmark suite, in release builds, side by side in one run;
# rewrites docs/benchmarks.md and docs/benchmarks-latency.png. Not part of `make test`.
# The suites take about 24 minutes on 2 cores, 10 of them the memory soak
# (`BENCH_SOAK_MINUTES=0 make bench` skips it); a first run also builds release binaries
# and installs oha.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh"
start_local_postgres
start_local_redis
trap stop_local_services EXIT
apt_install nginx-light fonts-dejavu-core
OHA_VERSION=1.16.0
if ! "$STACK_DIR/tools/bin/oha" --version 2>/dev/null | grep -q "$OHA_VERSION"; then
  say "Installing the oha load generator $OHA_VERSION (crates.io)"
  cargo install --quiet --locked --root "$STACK_DIR/tools" "oha@$OHA_VERSION"
fi

say "Building release binaries"
(cd "$ROOT" && cargo build --release --workspace --bins --quiet)
bench="$ROOT/target/release/studyflow-bench"

say "Diff engine (criterion)"
rm -rf "$ROOT"/target/criterion/compare*   # results of renamed benchmarks would linger
(cd "$ROOT" && cargo bench --quiet -p studyflow-diffing --bench diff -- --noplot)
"$bench" diff-engine

say "New backend vs legacy stand-in"
"$bench" functions

say "Time to first token of the streaming tutor: fake provider direct, backend, gateway"
"$bench" ttft

say "Realtime fan-out: 2 000 WebSocket clients across two backend instances"
"$bench" realtime --clients "${BENCH_REALTIME_CLIENTS:-2000}"

say "Proxy overhead: direct, nginx, gateway in every phase; then the memory soak"
"$bench" proxy --soak-minutes "${BENCH_SOAK_MINUTES:-10}"
say "Results written to docs/benchmarks.md"
