#!/usr/bin/env bash
# Where the limits node's cost over plain Portico goes: nodes that each
# add one part of `limits_config` (lib.sh), measured like limits-ab.sh
# (fresh node per measurement, alone on CPU 1, wrk on CPU 0 sending GET /
# with the limits node's API key, 3 s warm-up, 5 s measured), the order
# reversed every other round:
#
#   plain    one API, no policies, access log off (lib.sh's `portico`)
#   log      plain, with the access log to a file
#   key      api_key, access log off
#   keyrl    api_key + rate_limit (in-process, by app, 10^9 per hour)
#   limits   api_key + rate_limit + access log (lib.sh's `portico-limits`)
#
# Prints each round ("name requests/s CPU-µs-per-request" per node), then
# the median CPU time per request of each node and its difference from
# plain. CPU time per request is the figure to read: it does not depend
# on which node the machine's other load fell on.
#
# Usage: bench/limits-parts.sh [ROUNDS]   (default 5)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}
build_portico
machine_facts
UP=$(free_port)
start_upstream "$UP"; wait_port "$UP"

# start_part NAME: starts the node NAME (lib.sh's `keyed_config`) on CPU 1
# (T_PORT, T_PID).
start_part() {
  T_PORT=$(free_port); T_ADM=$(free_port)
  local conf="$work/part-$1-$T_PORT.yaml" log="$work/access-$T_PORT.log"
  case $1 in
    plain) keyed_config "$conf" "$T_PORT" "$T_ADM" off "" "      []" ;;
    log) keyed_config "$conf" "$T_PORT" "$T_ADM" "$log" "" "      []" ;;
    key) keyed_config "$conf" "$T_PORT" "$T_ADM" off "" "      - api_key: {}" ;;
    keyrl) keyed_config "$conf" "$T_PORT" "$T_ADM" off "" "$LIMITS_POLICIES" ;;
    limits) keyed_config "$conf" "$T_PORT" "$T_ADM" "$log" "" "$LIMITS_POLICIES" ;;
  esac
  PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$conf" >/dev/null 2>&1 &
  T_PID=$!
  pids+=("$T_PID")
  wait_port "$T_PORT"
}

AB_WRK=(-H "x-api-key: $LIMITS_KEY")
parts=(plain log key keyrl limits)
rows="$work/parts.txt"
for round in $(seq "$ROUNDS"); do
  order=("${parts[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=(limits keyrl key log plain)
  fi
  line=""
  for part in "${order[@]}"; do
    start_part "$part"
    out=$(ab_run "http://127.0.0.1:$T_PORT/" "$T_PID" "${AB_WRK[@]}")
    stop_target
    line="$line $part $out"
  done
  echo "$line" | tee -a "$rows"
done
python3 - "$rows" <<'PY'
import statistics, sys
cpu = {}
for line in open(sys.argv[1]):
    f = line.split()
    for i in range(0, len(f), 3):
        cpu.setdefault(f[i], []).append(float(f[i + 2]))
plain = statistics.median(cpu["plain"])
print(f"{len(cpu['plain'])} rounds; median CPU µs per request (difference from plain):")
for name in ["plain", "log", "key", "keyrl", "limits"]:
    m = statistics.median(cpu[name])
    print(f"  {name:7s} {m:6.2f} ({m - plain:+.2f})")
PY
