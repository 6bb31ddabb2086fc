#!/usr/bin/env bash
# `make test`: provisioning as for `make run`, then every test of the project.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

provision

cd "$ROOT"
say "Dropping databases left by interrupted test runs"
psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
  "select datname from pg_database where datname like 'studyflow_test_%'" |
  while read -r db; do psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "drop database if exists \"$db\" with (force)"; done

say "Checking format and lints"
cargo fmt --all --check
# --release: build scripts and proc-macros are then compiled once, for this check and the
# release build below alike.
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

say "Checking the legacy stand-in (deno check, deno lint)"
(cd tests && ./node_modules/.bin/deno check --quiet legacy/main.ts && ./node_modules/.bin/deno lint --quiet legacy/)

# One release build for binaries and tests: `--tests` brings the dev-dependencies into
# feature resolution, so the binaries the end-to-end tests launch and the test binaries
# share every dependency build (a plain `--bins` build resolves features without them
# and compiles much of the tree a second time). The benchmark suite (`make bench`, the
# only crate with plotting code) is left out.
tested=(--workspace --exclude studyflow-bench)

say "Building binaries and tests"
cargo build --release "${tested[@]}" --bins --tests --quiet --timings

say "Running the tests"
# `#[sqlx::test]` creates each test's database on the server DATABASE_URL names (and
# drops it when the test passes); the tests' own processes get their URLs explicitly.
DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres" \
  cargo test --release "${tested[@]}" --no-fail-fast
