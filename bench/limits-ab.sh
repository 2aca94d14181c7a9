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
echo "Building Portico (release)." >&2
(cd "$root" && cargo build --release -q -p portico)
PORTICO="$root/target/release/portico"
UP=$(free_port); NGX=$(free_port); POR=$(free_port); ADM=$(free_port)
LIM=$(free_port); LIM_ADM=$(free_port)
start_upstream "$UP"; wait_port "$UP"

nginx_proxy_config "$work/ngx" "$NGX"
taskset -c 1 "$NGINX" -c "$work/ngx/nginx.conf" -p "$work/ngx" & pids+=($!)
NGX_PID=$!
cat > "$work/plain.yaml" <<CONF
server:
  proxy: { listen: "127.0.0.1:$POR" }
  admin: { listen: "127.0.0.1:$ADM" }
  access_log: "off"
  workers: 1
storage: "sqlite://$work/data-$POR/portico.db"
apis:
  - name: bench
    base_path: /
    upstream: { targets: ["http://127.0.0.1:$UP"] }
CONF
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/plain.yaml" >/dev/null 2>&1 & pids+=($!)
POR_PID=$!
limits_config "$work/limits.yaml" "$LIM" "$LIM_ADM" ""
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/limits.yaml" >/dev/null 2>&1 & pids+=($!)
LIM_PID=$!
wait_port "$NGX"; wait_port "$POR"; wait_port "$LIM"

TICK=$(getconf CLK_TCK)
# r PORT PID: "requests/s CPU-µs-per-request" of one measured run.
r() {
  local url="http://127.0.0.1:$1/" pid=$2 before after out
  taskset -c 0 wrk -t1 -c32 -d2s -H 'x-api-key: bench-key-limits-01' "$url" >/dev/null 2>&1
  before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  out=$(taskset -c 0 wrk -t1 -c32 -d5s -H 'x-api-key: bench-key-limits-01' "$url")
  after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  if echo "$out" | grep -q "Non-2xx"; then
    echo "non-2xx answers from port $1:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$out" | awk -v t=$((after - before)) -v hz="$TICK" '
    / requests in / { n = $1 } /Requests\/sec/ { rps = $2 }
    END { printf "%s %.2f", rps, t / hz * 1e6 / n }'
}
rows="$work/rows.txt"
for _ in $(seq "$TRIPLES"); do
  echo "$(r "$NGX" "$NGX_PID") $(r "$POR" "$POR_PID") $(r "$LIM" "$LIM_PID")" | tee -a "$rows"
done
python3 - "$rows" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
n, p, l, cn, cp, cl = ([r[i] for r in rows] for i in (0, 2, 4, 1, 3, 5))
m = statistics.median
def ratios(name, x, y, cx, cy):
    print(f"{name}: requests/s {m(y) / m(x):.3f} (ratio of medians), {m([v / u for u, v in zip(x, y)]):.3f} (median of ratios); "
          f"CPU per request {m(cy) / m(cx):.3f} (ratio of medians), {m([v / u for u, v in zip(cx, cy)]):.3f} (median of ratios)")
print(f"{len(rows)} rounds; median requests/s: nginx {m(n):.0f}, portico {m(p):.0f}, limits {m(l):.0f}; "
      f"CPU µs per request: nginx {m(cn):.2f}, portico {m(cp):.2f}, limits {m(cl):.2f}")
ratios("limits / nginx  ", n, l, cn, cl)
ratios("portico / nginx ", n, p, cn, cp)
ratios("limits / portico", p, l, cp, cl)
PY
