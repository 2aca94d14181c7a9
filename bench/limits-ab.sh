#!/usr/bin/env bash
# DESIGN.md's limits target under load: nginx as reverse proxy (the
# BENCHMARK.md baseline), a plain Portico node and the limits node
# (api_key + rate_limit + metrics + access log, `limits_config` in lib.sh),
# in front of the nginx upstream of lib.sh, with wrk (CPU 0) sending GET /
# to each in turn, 3 s warm-up and 5 s measured, for ROUNDS rounds.
#
# Each measurement starts its proxy afresh and stops it afterwards, so the
# proxy under test is alone on CPU 1 (as BENCHMARK.md lays out), and the
# order of the three alternates from round to round. Why: with all three
# kept running for the whole run, the same binary measured as two
# processes came out 7-9 % apart, in either direction, over 8 rounds
# (most likely a property of the process rather than of the round: its
# memory layout and whatever else it drew at start), and which target ran
# last in a round seemed to matter as much. Fresh processes spread those effects over the rounds
# instead of fixing them on one target (docs/benchmarks.md, 2026-12-07,
# seventh session).
#
# Prints each round, then medians, the median of the per-round ratios,
# and each proxy's CPU time per request (user + system, from
# /proc/PID/stat, over the measured 5 s).
#
# Usage: bench/limits-ab.sh [ROUNDS]   (default 20)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-20}
build_portico
machine_facts
UP=$(free_port)
start_upstream "$UP"; wait_port "$UP"

AB_WRK=(-H "x-api-key: $LIMITS_KEY")
rows="$work/rows.txt"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    a=$(solo_run nginx); b=$(solo_run portico); c=$(solo_run portico-limits)
  else
    c=$(solo_run portico-limits); b=$(solo_run portico); a=$(solo_run nginx)
  fi
  echo "$a $b $c" | tee -a "$rows"
done
ab_summary "$rows" nginx portico limits
