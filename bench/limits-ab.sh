#!/usr/bin/env bash
# DESIGN.md's limits target under load, as closely interleaved as the
# machine allows: nginx as reverse proxy (the BENCHMARK.md baseline), a
# plain Portico node and the limits node (api_key + rate_limit + metrics +
# access log, `limits_config` in lib.sh), each on CPU 1, in front of the
# nginx upstream of lib.sh, with wrk (CPU 0) sending GET / to each in turn,
# 2 s warm-up and 5 s measured, for TRIPLES rounds.
#
# bench/proxy.sh runs each target for 10 s, a target after another: on
# this shared 2-core machine the load from outside moves from one target's
# run to the next, and five rounds of that left ratios 10 % apart between
# runs of one binary. Many short interleaved rounds, and the median of the
# per-round ratios, move less. Besides requests/s it prints each proxy's
# CPU time per request (user + system, from /proc/PID/stat, over the
# measured 5 s).
#
# Usage: bench/limits-ab.sh [TRIPLES]   (default 20)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
TRIPLES=${1:-20}
install_tools
build_portico
UP=$(free_port); NGX=$(free_port); POR=$(free_port); ADM=$(free_port)
LIM=$(free_port); LIM_ADM=$(free_port)
start_upstream "$UP"; wait_port "$UP"

nginx_proxy_config "$work/ngx" "$NGX"
taskset -c 1 "$NGINX" -c "$work/ngx/nginx.conf" -p "$work/ngx" & pids+=($!)
NGX_PID=$!
plain_config "$work/plain.yaml" "$POR" "$ADM"
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/plain.yaml" >/dev/null 2>&1 & pids+=($!)
POR_PID=$!
limits_config "$work/limits.yaml" "$LIM" "$LIM_ADM" ""
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/limits.yaml" >/dev/null 2>&1 & pids+=($!)
LIM_PID=$!
wait_port "$NGX"; wait_port "$POR"; wait_port "$LIM"

rows="$work/rows.txt"
AB_WRK=(-H 'x-api-key: bench-key-limits-01')
ab_rounds "$TRIPLES" "$rows" \
  "http://127.0.0.1:$NGX/" "$NGX_PID" \
  "http://127.0.0.1:$POR/" "$POR_PID" \
  "http://127.0.0.1:$LIM/" "$LIM_PID"
ab_summary "$rows" nginx portico limits
