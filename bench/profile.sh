#!/usr/bin/env bash
# Where a proxy's time goes under load: `perf record` on one target of
# lib.sh (started alone on CPU 1 with `start_target`, as limits-ab.sh
# does) while wrk (CPU 0) sends it GET / with the limits node's API key,
# then the samples split by thread and by kernel / user space, and the
# top functions, each as nanoseconds of the proxy's time per request.
#
# perf slows the proxy (by a fifth, or more than twofold, by machine and
# options), so the nanoseconds are at the slowed rate: compare targets
# profiled the same way, not these figures with limits-ab.sh's.
#
# Usage: bench/profile.sh [TARGET] [TOP]
#   TARGET: a start_target name (default portico-limits; portico, nginx,
#   portico-key10, ...). TOP: how many functions to list (default 40).
# PERF_DATA=FILE keeps the samples for `perf report`. PERF_OPTS replaces
# the sampling options (default `-F 4999 -g`): on the sixteenth session's
# Intel machine those slowed the proxy 2.3-fold, which shrinks the
# differences between targets; `-F 999` without call chains slowed it by
# about 15 %.
# Needs perf (linux-perf) and permission to profile another process.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
TARGET=${1:-portico-limits}
TOP=${2:-40}
command -v perf >/dev/null || { echo "profile.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
build_portico
UP=$(free_port)
start_upstream "$UP"; wait_port "$UP"
start_target "$TARGET"
url="http://127.0.0.1:$T_PORT/"
key=(-H "x-api-key: $LIMITS_KEY")

taskset -c 0 wrk -t1 -c32 -d3s "${key[@]}" "$url" >/dev/null 2>&1
taskset -c 0 wrk -t1 -c32 -d8s "${key[@]}" "$url" > "$work/wrk.txt" &
load=$!
sleep 1
perf record -q ${PERF_OPTS:--F 4999 -g} -p "$T_PID" -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$load"
stop_target
all_2xx "$(cat "$work/wrk.txt")" "$TARGET" || exit 1
rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
# The proxy has CPU 1 to itself and is busy all the time under this load,
# so a request's share of its time is 1 / requests/s.
per_request_ns=$(awk -v r="$rps" 'BEGIN { printf "%.1f", 1e9 / r }')
echo "$TARGET under perf: $rps requests/s, $per_request_ns ns of the proxy per request"

report() {
  perf report -i "$work/perf.data" --no-children --stdio -g none "$@" 2>/dev/null |
    awk -v ns="$per_request_ns" '
      /^#/ || NF == 0 { next }
      { pct = $1; sub(/%$/, "", pct); $1 = ""; printf "%8.0f ns  %s\n", pct / 100 * ns, $0 }'
}
if [ -n "${PERF_DATA:-}" ]; then
  cp "$work/perf.data" "$PERF_DATA"
  echo "perf data kept in $PERF_DATA"
fi
echo
echo "By thread and object:"
report --sort comm,dso | head -12
echo
echo "Top functions:"
report --sort dso,sym | head -"$TOP"
