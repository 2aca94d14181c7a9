#!/usr/bin/env bash
# The `validate` cost under load: a node (release, one worker, CPU 1) with
# three APIs in front of the nginx upstream of lib.sh (plain: no spec;
# routed: the pet store spec; validated: the spec + `validate: {}`), and
# wrk (CPU 0) sending the 1 KiB POST of bench/validate/pet.json to each in
# turn, 3 s warm-up and 5 s measured, for ROUNDS rounds. Runs of 5 s move
# by 10 % on a shared 2-core machine; many short rounds and their medians
# are steadier than a few long ones.
#
# Each round starts a fresh node and stops it after, and the order of the
# three APIs rotates from round to round: a process's speed varies with
# what it drew at start (7-9 % between two processes of one binary, see
# bench/limits-ab.sh), and so did the last place in a round; rotating
# spreads both over the three instead of fixing them on one.
#
# Besides requests/s it prints the node's CPU time per request (user +
# system, from /proc/PID/stat, over the measured 5 s): the node may lose
# CPU 1 to something else for part of a round, which moves requests/s
# but not what each request cost.
#
# Usage: bench/validate-ab.sh [ROUNDS]   (default 20)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-20}
build_portico
machine_facts
UP=$(free_port)
start_upstream "$UP"; wait_port "$UP"
post_script "$work/post.lua"
AB_WRK=(-s "$work/post.lua")
q="?dry_run=false"
paths=("/plain/pets$q" "/routed/v1/pets$q" "/store/v1/pets$q")
rows="$work/rows.txt"
for round in $(seq "$ROUNDS"); do
  POR=$(free_port); ADM=$(free_port)
  validate_config "$work/p-$POR.yaml" "$POR" "$ADM"
  PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/p-$POR.yaml" >/dev/null 2>&1 &
  node=$!
  pids+=("$node")
  wait_port "$POR"
  results=("" "" "")
  for k in 0 1 2; do
    i=$(((round + k) % 3))
    # One assignment each, so that a failed run stops the script.
    r=$(ab_run "http://127.0.0.1:$POR${paths[$i]}" "$node" "${AB_WRK[@]}")
    results[$i]=$r
  done
  kill "$node"
  wait "$node" 2>/dev/null || true
  echo "${results[*]}" | tee -a "$rows"
done
ab_summary "$rows" plain routed validated
