#!/usr/bin/env bash
# Side-by-side load run of two gateway binaries on the small JSON GET in the `legacy`
# phase: the direct upstream, the baseline binary and the current one, alternating in
# rounds so that machine noise falls on both alike. Each round runs each target at
# saturation (throughput) and at a fixed 2000 req/s (p99, with the suite's wrk script).
# Prints one Markdown table.
#   scripts/bench-compare.sh BASELINE_GATEWAY_BINARY [ROUNDS] [SECONDS]
# The current binary is target/release/studyflow-gateway (run `make build` first).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

baseline=${1:?usage: scripts/bench-compare.sh BASELINE_GATEWAY_BINARY [ROUNDS] [SECONDS]}
rounds=${2:-5}
seconds=${3:-4}
current="$ROOT/target/release/studyflow-gateway"
bench="$ROOT/target/release/studyflow-bench"
command -v wrk >/dev/null || apt_install wrk
for bin in "$baseline" "$current" "$bench"; do
  [ -x "$bin" ] || die "$bin is missing (make build)"
done

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$1 did not answer"
}

upstream=$(free_port)
"$bench" upstream --listen "127.0.0.1:$upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$upstream/bench/json"
printf 'routes:\n  - {name: bench, path: /bench/*, phase: legacy}\n' >"$work/routes.yaml"

start_gateway() { # name binary
  local port admin
  port=$(free_port); admin=$(free_port)
  STUDYFLOW_GATEWAY__LISTEN="127.0.0.1:$port" STUDYFLOW_GATEWAY__ADMIN_LISTEN="127.0.0.1:$admin" \
    STUDYFLOW_GATEWAY__ROUTES_FILE="$work/routes.yaml" \
    STUDYFLOW_GATEWAY__LEGACY_URL="http://127.0.0.1:$upstream" \
    STUDYFLOW_GATEWAY__NEW_URL="http://127.0.0.1:$upstream" RUST_LOG=warn \
    "$2" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/bench/json"
  echo "$port"
}
base_port=$(start_gateway baseline "$baseline")
curr_port=$(start_gateway current "$current")

# One round on a target: prints "requests_per_second_at_saturation p99_ms_at_2000_req/s".
run() {
  local rps p99
  rps=$(wrk -t2 -c64 -d"${seconds}s" "http://127.0.0.1:$1/bench/json" | awk '/Requests\/sec/ {print $2}')
  p99=$(STUDYFLOW_WRK_RATE=1000 wrk -t2 -c16 -d"${seconds}s" -s "$ROOT/bench/src/wrk.lua" \
    "http://127.0.0.1:$1/bench/json" | python3 -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        print(json.loads(line)["p99_us"] / 1000)')
  echo "$rps $p99"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for target in direct baseline current; do : >"$work/$target.txt"; done
for port in "$upstream" "$base_port" "$curr_port"; do run "$port" >/dev/null; done # warm-up
for round in $(seq "$rounds"); do
  say "round $round of $rounds"
  run "$upstream" >>"$work/direct.txt"
  if [ $((round % 2)) -eq 1 ]; then
    run "$base_port" >>"$work/baseline.txt"; run "$curr_port" >>"$work/current.txt"
  else
    run "$curr_port" >>"$work/current.txt"; run "$base_port" >>"$work/baseline.txt"
  fi
done

direct_p99=$(cut -d' ' -f2 "$work/direct.txt" | median)
echo "| target | req/s at saturation (median of $rounds) | p99 ms at 2000 req/s (median) | added p99 ms | req/s per round |"
echo "| --- | ---: | ---: | ---: | --- |"
for target in direct baseline current; do
  rps=$(cut -d' ' -f1 "$work/$target.txt" | median)
  p99=$(cut -d' ' -f2 "$work/$target.txt" | median)
  added=$(awk -v a="$p99" -v b="$direct_p99" 'BEGIN {printf "%+.3f", a-b}')
  all=$(cut -d' ' -f1 "$work/$target.txt" | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1}')
  [ "$target" = direct ] && added="—"
  printf '| %s | %.0f | %.3f | %s | %s |\n' "$target" "$rps" "$p99" "$added" "$all"
done
