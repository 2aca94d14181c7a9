#!/usr/bin/env bash
# What the `validate` policy costs per request, as user-space instructions
# under callgrind (repeatable, unlike requests/s on a shared machine).
#
# One node (release build, one worker) serves three APIs in front of the
# same nginx upstream:
#   plain      no spec, no policies                      POST /plain/pets
#   routed     the pet store spec, no policies           POST /routed/v1/pets
#   validated  the pet store spec + `validate: {}`       POST /store/v1/pets
# Each gets the same request: the 1,040-byte JSON body of
# bench/validate/pet.json with a query and a header parameter. After a
# warm-up the counters are zeroed, then N requests go to each API in turn
# over one keep-alive connection (curl), with a callgrind dump after each
# phase. The script prints instructions per request and the ratios.
#
# Then the same node runs without valgrind (pinned to CPU 1, curl and
# nginx on CPU 0), and the node's CPU time (user + system, from
# /proc/PID/stat) is read around M requests per API, over 3 interleaved
# rounds: CPU per request, kernel included, and its ratios.
#
# Usage: bench/validate.sh [N] [M]   (defaults 2000 and 20000)
# With CALLGRIND_OUT=DIR the callgrind dumps are kept in DIR, for
# callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${1:-2000}
M=${2:-20000}
command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}

build_portico

UP=$(free_port); POR=$(free_port); ADM=$(free_port)
start_upstream "$UP"
wait_port "$UP"

BODY="$root/bench/validate/pet.json"
validate_config "$work/portico.yaml" "$POR" "$ADM"

PORTICO_LOG=warn valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$work/cg.out" \
  "$PORTICO" serve -c "$work/portico.yaml" 2>"$work/valgrind.log" & pids+=($!)
VG=$!
wait_port "$POR"

# send PATH COUNT: COUNT POSTs over one connection; fails unless all are 200.
send() {
  local cfg="$work/urls.txt"
  : > "$cfg"
  for _ in $(seq "$2"); do
    printf 'url = "http://127.0.0.1:%s%s?dry_run=false"\noutput = "/dev/null"\n' "$POR" "$1" >> "$cfg"
  done
  local codes
  # The sender on CPU 0, away from the node on CPU 1.
  codes=$(taskset -c 0 curl -s --config "$cfg" -H 'content-type: application/json' -H 'x-request-tag: bench' \
    --data-binary @"$BODY" -w '%{http_code}\n' | sort | uniq -c)
  if [ "$(echo "$codes" | awk '{print $2}')" != "200" ]; then
    echo "unexpected statuses for $1: $codes" >&2
    exit 1
  fi
}

for p in /plain/pets /routed/v1/pets /store/v1/pets; do send "$p" 200; done
callgrind_control -z "$VG" >/dev/null
declare -A per
for phase in plain:/plain/pets routed:/routed/v1/pets validated:/store/v1/pets; do
  name=${phase%%:*}
  send "${phase#*:}" "$N"
  callgrind_control -d "$name" "$VG" >/dev/null
  # The newest dump holds this phase's counts since the previous dump.
  file=$(ls -t "$work"/cg.out* | head -1)
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$file")
  per[$name]=$((total / N))
  echo "$name: $total instructions for $N requests, ${per[$name]} per request"
done
python3 - "${per[plain]}" "${per[routed]}" "${per[validated]}" <<'PY'
import sys
plain, routed, validated = map(int, sys.argv[1:])
print(f"validated / plain:  {validated / plain:.3f}  (+{validated - plain} instructions per request)")
print(f"validated / routed: {validated / routed:.3f}  (+{validated - routed} instructions per request)")
print(f"routed / plain:     {routed / plain:.3f}")
PY

kill "$VG"; wait "$VG" 2>/dev/null || true
if [ -n "${CALLGRIND_OUT:-}" ]; then
  mkdir -p "$CALLGRIND_OUT" && cp "$work"/cg.out* "$CALLGRIND_OUT"/
fi
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/portico.yaml" & pids+=($!)
NODE=$!
wait_port "$POR"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$NODE/stat"; }
TICK=$(getconf CLK_TCK)
for p in /plain/pets /routed/v1/pets /store/v1/pets; do send "$p" 1000; done
declare -A cpu
for round in 1 2 3; do
  for phase in plain:/plain/pets routed:/routed/v1/pets validated:/store/v1/pets; do
    name=${phase%%:*}
    before=$(cpu_ticks)
    send "${phase#*:}" "$M"
    after=$(cpu_ticks)
    cpu[$name]="${cpu[$name]:-} $((after - before))"
  done
done
python3 - "$M" "$TICK" "${cpu[plain]}" "${cpu[routed]}" "${cpu[validated]}" <<'PY'
import statistics, sys
m, tick = int(sys.argv[1]), int(sys.argv[2])
us = {}
for name, ticks in zip(["plain", "routed", "validated"], sys.argv[3:]):
    per = [int(t) * 1e6 / tick / m for t in ticks.split()]
    us[name] = statistics.median(per)
    print(f"{name}: CPU per request {us[name]:.1f} us (rounds: {', '.join(f'{p:.1f}' for p in per)})")
print(f"CPU validated / plain:  {us['validated'] / us['plain']:.3f}")
print(f"CPU validated / routed: {us['validated'] / us['routed']:.3f}")
PY
