#!/usr/bin/env bash
# Bare pingora and the gateway (route in `legacy`), each with work stealing on and off,
# small JSON GET at saturation (wrk -t2 -c64, 4 s), in alternating rounds (the order flips
# each round). Both use 2 threads and pingora's default keep-alive pool. Prints a table.
#   scripts/bench-work-stealing.sh [ROUNDS]   (after `make build`)
set -euo pipefail
B="$(cd "$(dirname "$0")/.." && pwd)/target/release"
work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no $1"; exit 1; }
up=$(free_port); "$B/studyflow-bench" upstream --listen "127.0.0.1:$up" >/dev/null 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$up/bench/json"
printf 'routes:\n  - {name: bench, path: /bench/*, phase: legacy}\n' >"$work/routes.yaml"
declare -A port
for ws in true false; do
  p=$(free_port); BARE_PINGORA_WORK_STEALING=$ws "$B/bare-pingora" "127.0.0.1:$p" "127.0.0.1:$up" >/dev/null 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$p/bench/json"; port[bare-$ws]=$p
  p=$(free_port); a=$(free_port)
  STUDYFLOW_GATEWAY__LISTEN="127.0.0.1:$p" STUDYFLOW_GATEWAY__ADMIN_LISTEN="127.0.0.1:$a" \
    STUDYFLOW_GATEWAY__ROUTES_FILE="$work/routes.yaml" STUDYFLOW_GATEWAY__STATE_FILE="$work/state-$ws.json" \
    STUDYFLOW_GATEWAY__LEGACY_URL="http://127.0.0.1:$up" STUDYFLOW_GATEWAY__NEW_URL="http://127.0.0.1:$up" \
    STUDYFLOW_GATEWAY__WORK_STEALING=$ws RUST_LOG=warn "$B/studyflow-gateway" >"$work/gw-$ws.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$p/bench/json"; port[gateway-$ws]=$p
done
targets=(bare-true gateway-true bare-false gateway-false)
for t in "${targets[@]}"; do wrk -t2 -c64 -d1s "http://127.0.0.1:${port[$t]}/bench/json" >/dev/null; : >"$work/$t.txt"; done
rounds=${1:-5}
for r in $(seq "$rounds"); do
  order=("${targets[@]}"); [ $((r % 2)) -eq 0 ] && order=(gateway-false bare-false gateway-true bare-true)
  for t in "${order[@]}"; do
    wrk -t2 -c64 -d4s "http://127.0.0.1:${port[$t]}/bench/json" | awk '/Requests\/sec/ {print $2}' >>"$work/$t.txt"
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| proxy | work_stealing | req/s (median of $rounds) | rounds |"; echo "|---|---|---:|---|"
for t in "${targets[@]}"; do
  printf '| %s | %s | %.0f | %s |\n' "${t%-*}" "${t##*-}" "$(median <"$work/$t.txt")" "$(awk '{printf "%s%.0f", (NR>1?", ":""), $1}' "$work/$t.txt")"
done
