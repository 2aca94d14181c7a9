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
wait_port "$POR"
post_script "$work/post.lua"
r() { taskset -c 0 wrk -t1 -c32 -d2s -s "$work/post.lua" "http://127.0.0.1:$POR$1?dry_run=false" >/dev/null 2>&1
      taskset -c 0 wrk -t1 -c32 -d5s -s "$work/post.lua" "http://127.0.0.1:$POR$1?dry_run=false" | awk '/Requests\/sec/ {print $2}'; }
rows="$work/rows.txt"
for _ in $(seq "$TRIPLES"); do
  echo "$(r /plain/pets) $(r /routed/v1/pets) $(r /store/v1/pets)" | tee -a "$rows"
done
python3 - "$rows" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
p, a, b = ([r[i] for r in rows] for i in range(3))
m = statistics.median
print(f"{len(rows)} rounds; median requests/s: plain {m(p):.0f}, routed {m(a):.0f}, validated {m(b):.0f}")
print(f"validated / routed: {m(b) / m(a):.3f} (ratio of medians), {m([y / x for x, y in zip(a, b)]):.3f} (median of ratios)")
print(f"validated / plain:  {m(b) / m(p):.3f} (ratio of medians), {m([y / x for x, y in zip(p, b)]):.3f} (median of ratios)")
print(f"routed / plain:     {m(a) / m(p):.3f}")
PY
