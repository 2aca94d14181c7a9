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
echo "Building Portico (release)." >&2
(cd "$root" && cargo build --release -q -p portico)
PORTICO="$root/target/release/portico"
UP=$(free_port); POR=$(free_port); ADM=$(free_port)
start_upstream "$UP"; wait_port "$UP"
validate_config "$work/p.yaml" "$POR" "$ADM"
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/p.yaml" >/dev/null 2>&1 & pids+=($!)
NODE=$!
wait_port "$POR"
post_script "$work/post.lua"
TICK=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$NODE/stat"; }
# r PATH: "requests/s CPU-µs-per-request" of one measured run.
r() {
  taskset -c 0 wrk -t1 -c32 -d2s -s "$work/post.lua" "http://127.0.0.1:$POR$1?dry_run=false" >/dev/null 2>&1
  local before after out
  before=$(ticks)
  out=$(taskset -c 0 wrk -t1 -c32 -d5s -s "$work/post.lua" "http://127.0.0.1:$POR$1?dry_run=false")
  after=$(ticks)
  echo "$out" | awk -v t=$((after - before)) -v hz="$TICK" '
    / requests in / { n = $1 } /Requests\/sec/ { rps = $2 }
    END { printf "%s %.2f", rps, t / hz * 1e6 / n }'
}
rows="$work/rows.txt"
for _ in $(seq "$TRIPLES"); do
  echo "$(r /plain/pets) $(r /routed/v1/pets) $(r /store/v1/pets)" | tee -a "$rows"
done
python3 - "$rows" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
p, a, b, cp, ca, cb = ([r[i] for r in rows] for i in (0, 2, 4, 1, 3, 5))
m = statistics.median
def ratios(name, x, y, cx, cy):
    print(f"{name}: requests/s {m(y) / m(x):.3f} (ratio of medians), {m([v / u for u, v in zip(x, y)]):.3f} (median of ratios); "
          f"CPU per request {m(cy) / m(cx):.3f} (ratio of medians), {m([v / u for u, v in zip(cx, cy)]):.3f} (median of ratios)")
print(f"{len(rows)} rounds; median requests/s: plain {m(p):.0f}, routed {m(a):.0f}, validated {m(b):.0f}; "
      f"CPU µs per request: plain {m(cp):.2f}, routed {m(ca):.2f}, validated {m(cb):.2f}")
ratios("validated / routed", a, b, ca, cb)
ratios("validated / plain ", p, b, cp, cb)
ratios("routed / plain    ", p, a, cp, ca)
PY
