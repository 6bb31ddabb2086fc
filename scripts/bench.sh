#!/usr/bin/env bash
# `make bench`: every benchmark suite, in release builds, side by side in one run;
# rewrites docs/benchmarks.md and docs/benchmarks-latency.png. Not part of `make test`.
# After `make test` (which builds the release binaries but not the benchmark suite) it
# takes about 20 minutes on 2 cores, 10 of them the memory soak (`BENCH_SOAK_MINUTES=0
# make bench` skips it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

provision
# The load generator is Debian's wrk (bookworm: 4.1.0), with LuaJIT for the suite's
# fixed-rate script; nginx-light is the reverse proxy the gateway is compared with;
# valgrind (callgrind) counts instructions per request.
apt_install nginx-light wrk fonts-dejavu-core valgrind
wrk_version=$(wrk -v 2>&1 | head -1 || true)   # wrk -v exits with 1
[[ $wrk_version == *4.1.0* ]] || die "wrk 4.1.0 expected, found: $wrk_version"

say "Building release binaries"
(cd "$ROOT" && cargo build --release --workspace --bins --quiet)
bench="$ROOT/target/release/studyflow-bench"

say "Diff engine (criterion)"
rm -rf "$ROOT"/target/criterion/compare*   # results of renamed benchmarks would linger
# --workspace: the same dependency features as the build above, so the diff engine is
# not compiled again.
(cd "$ROOT" && cargo bench --quiet --workspace --bench diff -- --noplot --warm-up-time 1 --measurement-time 3)
"$bench" diff-engine

say "New backend vs legacy stand-in"
"$bench" functions

say "Data API: the frontend's three most common queries, backend beside pooled SQL"
"$bench" data-api

say "semantic-search embeddings: the backend's model (candle) beside the NumPy reference"
"$bench" embeddings

say "Time to first token of the streaming tutor: fake provider direct, backend, gateway"
"$bench" ttft

say "Realtime fan-out: 2 000 WebSocket clients across two backend instances"
"$bench" realtime --clients "${BENCH_REALTIME_CLIENTS:-2000}"

say "Proxy overhead: direct, nginx, gateway in every phase; then the memory soak"
"$bench" proxy --soak-minutes "${BENCH_SOAK_MINUTES:-10}"
say "Results written to docs/benchmarks.md"
