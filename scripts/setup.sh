#!/usr/bin/env bash
# Installs what the stack and the tests need, only what is missing; safe to run again.
#   Debian packages: cmake and pkg-config (pingora's TLS build), Node.js and npm,
#                    the PostgreSQL and Redis clients, Prometheus (observability
#                    tests), a font for the plots, and Chromium (browser tests).
#   npm packages (tests/): Deno, supabase-js, the Postgres driver of the legacy stand-in.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v cargo >/dev/null || die "Rust (cargo) is required: https://rustup.rs"

apt_install cmake pkg-config build-essential postgresql-client redis-tools prometheus fonts-dejavu-core chromium
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm

lock="$ROOT/tests/package-lock.json"
stamp="$ROOT/tests/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  say "Installing npm packages in tests/ (pinned by package-lock.json)"
  (cd "$ROOT/tests" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$ROOT/tests/node_modules/.bin/deno" --version >/dev/null || die "Deno from npm does not run"
