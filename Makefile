# StudyFlow migration gateway. The two commands: `make run` and `make test`.
.PHONY: run test bench setup build lint fmt

## Start the whole local stack (Postgres, Redis, fake AI providers, legacy stand-in,
## backend, gateway) and print where everything is. Ctrl-C stops it.
run:
	@scripts/run.sh

## Provision, then run every test (format, lints, unit, integration, end-to-end).
test:
	@scripts/test.sh

## Benchmarks (release builds, a few minutes); rewrites docs/benchmarks.md.
bench:
	@scripts/bench.sh

## Install what is missing (Debian and npm packages). `run` and `test` do it too.
setup:
	@scripts/setup.sh

build:
	cargo build --release --workspace --bins

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
