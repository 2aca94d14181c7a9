#!/usr/bin/env bash
# The `validate` cost under load, measured as closely interleaved as the
# machine allows: one node (release, one worker, CPU 1) with three APIs in
# front of the nginx upstream of lib.sh (plain: no spec; routed: the pet
# store spec; validated: the spec + `validate: {}`), and wrk (CPU 0)
# sending the 1 KiB POST of bench/validate/pet.json to each in turn, 2 s
# warm-up and 5 s measured, for TRIPLES rounds. Runs of 5 s move by 10 %
# on a shared 2-core machine; many short interleaved rounds and their
# medians are steadier than a few long ones.
#
# Besides requests/s it prints the node's CPU time per request (user +
# system, from /proc/PID/stat, over the measured 5 s): the node may lose
# CPU 1 to something else for part of a round, which moves requests/s
# but not what each request cost.
#
# Usage: bench/validate-ab.sh [TRIPLES]   (default 20)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
TRIPLES=${1:-20}
install_tools
build_portico
UP=$(free_port); POR=$(free_port); ADM=$(free_port)
start_upstream "$UP"; wait_port "$UP"
validate_config "$work/p.yaml" "$POR" "$ADM"
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/p.yaml" >/dev/null 2>&1 & pids+=($!)
NODE=$!
wait_port "$POR"
post_script "$work/post.lua"
rows="$work/rows.txt"
AB_WRK=(-s "$work/post.lua")
q="?dry_run=false"
ab_rounds "$TRIPLES" "$rows" \
  "http://127.0.0.1:$POR/plain/pets$q" "$NODE" \
  "http://127.0.0.1:$POR/routed/v1/pets$q" "$NODE" \
  "http://127.0.0.1:$POR/store/v1/pets$q" "$NODE"
ab_summary "$rows" plain routed validated
