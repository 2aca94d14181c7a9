#!/usr/bin/env bash
# Load benchmark: Portico against nginx (and HAProxy) as reverse proxies in
# front of the same trivial upstream, by the protocol in BENCHMARK.md:
#   CPU 0: wrk and the upstream (nginx answering GET / with 5 bytes)
#   CPU 1: the proxy under test, one worker / one thread
#   targets interleaved over ROUNDS rounds (the order reversed every
#   other round), each proxy started afresh for its run and stopped after
#   it, 3 s warm-up before each run, medians reported, then the ratio
#   portico / nginx.
#
# Usage: bench/proxy.sh [--rounds N] [--duration S] [--connections C] [--quick] [--keys]
#                       [--rate-limit] [--redis URL] [--validate]
#   --keys adds two Portico targets with the api_key policy: 10 keys and
#   100,000 keys configured (every request carries a valid key). Each run
#   starts its node afresh and waits until it answers 200 before the
#   warm-up.
#   --rate-limit adds `portico-limits`: api_key + rate_limit (in-process,
#   so generous that nothing is refused) + metrics + an access log written
#   to a file: DESIGN.md's second performance target. With --redis URL it
#   also adds `portico-limits-redis`, the same counting in that Redis, and
#   prints the Redis round trips per request from /metrics.
#   --validate adds POST targets with the 1 KiB JSON body of
#   bench/validate/pet.json: nginx, Portico routing by the pet store spec
#   (bench/validate/petstore.yaml) without policies, and the same with the
#   `validate` policy, and Portico proxying the same POST without a spec;
#   it prints validated / routed and validated / plain.
# Needs root for apt-get the first time (nginx, haproxy, wrk).
set -euo pipefail

ROUNDS=5
DURATION=10
CONNS=32
WARMUP=3
KEYS=0
LIMITS=0
REDIS_URL=""
VALIDATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --quick) ROUNDS=1; DURATION=3; WARMUP=1; shift ;;
    --keys) KEYS=1; shift ;;
    --rate-limit) LIMITS=1; shift ;;
    --redis) REDIS_URL=$2; shift 2 ;;
    --validate) VALIDATE=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. "$(dirname "$0")/lib.sh"

build_portico
machine_facts

UP=$(free_port)

# The upstream: nginx on CPU 0, GET / answers "hello".
start_upstream "$UP"
wait_port "$UP"

# Every proxy is started afresh for each measurement and stopped after it,
# so the one under test is alone on CPU 1 (two processes of one binary
# kept running side by side measured 7-9 % apart: bench/limits-ab.sh).

# The request each target gets: wrk arguments and path.
target_request() {
  URL_PATH=/
  WRK_ARGS=()
  case $1 in
    portico-key10) WRK_ARGS=(-H "x-api-key: bench-key-00000-007") ;;
    portico-key100000) WRK_ARGS=(-H "x-api-key: bench-key-00777-042") ;;
    portico-limits | portico-limits-redis) WRK_ARGS=(-H "x-api-key: $LIMITS_KEY") ;;
    nginx-post) WRK_ARGS=(-s "$work/post.lua") ;;
    portico-plain-post) WRK_ARGS=(-s "$work/post.lua"); URL_PATH="/plain/pets?dry_run=false" ;;
    portico-routed-post) WRK_ARGS=(-s "$work/post.lua"); URL_PATH="/routed/v1/pets?dry_run=false" ;;
    portico-validate-post) WRK_ARGS=(-s "$work/post.lua"); URL_PATH="/store/v1/pets?dry_run=false" ;;
  esac
}

TARGETS=(direct nginx haproxy portico)
[ "$KEYS" = 1 ] && TARGETS+=(portico-key10 portico-key100000)
if [ "$LIMITS" = 1 ]; then
  TARGETS+=(portico-limits)
  [ -n "$REDIS_URL" ] && TARGETS+=(portico-limits-redis)
fi
if [ "$VALIDATE" = 1 ]; then
  # wrk sends the same POST on every request: built once from the script.
  post_script "$work/post.lua"
  TARGETS+=(nginx-post portico-plain-post portico-routed-post portico-validate-post)
fi

# answer_code: the status of one request of the target just started (the
# one its runs send).
answer_code() {
  if [[ $1 == *-post ]]; then
    curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      -H 'x-request-tag: bench' --data-binary @"$root/bench/validate/pet.json" \
      "http://127.0.0.1:$T_PORT$URL_PATH"
  else
    curl -s -o /dev/null -w '%{http_code}' "${WRK_ARGS[@]}" "http://127.0.0.1:$T_PORT/"
  fi
}

# ready TARGET: waits until the target just started answers 200 (a node
# listens before it has loaded everything: 100,000 keys take a while).
ready() {
  target_request "$1"
  for _ in $(seq 600); do
    [ "$(answer_code "$1")" = 200 ] && return 0
    sleep 0.2
  done
  echo "target $1 answered $(answer_code "$1"), not 200" >&2
  return 1
}

cpu_ticks() { # busy and total jiffies of one CPU
  awk -v c="cpu$1" '$1==c { busy=$2+$3+$4+$7+$8; total=busy+$5+$6; print busy, total }' /proc/stat
}
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

results="$work/results.tsv"
: > "$results"
run() { # name port pid [wrk args...]
  local name=$1 port=$2 pid=$3 out
  shift 3
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "http://127.0.0.1:$port${URL_PATH:-/}" >/dev/null 2>&1
  read -r b0a t0a < <(cpu_ticks 0); read -r b1a t1a < <(cpu_ticks 1)
  local pa=0; [ -n "$pid" ] && pa=$(proc_ticks "$pid")
  out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "http://127.0.0.1:$port${URL_PATH:-/}")
  read -r b0b t0b < <(cpu_ticks 0); read -r b1b t1b < <(cpu_ticks 1)
  local pb=0; [ -n "$pid" ] && pb=$(proc_ticks "$pid")
  python3 - "$name" "$((b0b-b0a))" "$((t0b-t0a))" "$((b1b-b1a))" "$((t1b-t1a))" "$((pb-pa))" "$out" >> "$results" <<'PY'
import re, sys
name, b0, t0, b1, t1, pticks, out = sys.argv[1:8]
def lat(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % p, out, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errs = sum(int(x) for x in sock.groups()) if sock else 0
hz = 100  # USER_HZ
cpu_us_per_req = int(pticks) / hz * 1e6 / total if total and int(pticks) else 0
print("\t".join(str(x) for x in [name, rps, lat(50), lat(99), non2xx.group(1) if non2xx else 0, errs,
      round(100 * int(b0) / max(int(t0), 1)), round(100 * int(b1) / max(int(t1), 1)), round(cpu_us_per_req, 2)]))
PY
}

# Redis round trips and admitted requests of the Redis-counting node,
# summed over its runs (each run is a fresh node).
redis_counts() {
  curl -sf "http://127.0.0.1:$T_ADM/metrics" | awk '
    /^portico_limit_redis_round_trips_total / { rt = $2 }
    /^portico_requests_total\{api="bench",status_class="2xx"\}/ { ok = $2 }
    END { printf "%d %d\n", rt, ok }' >> "$work/redis-counts.txt"
}

echo "Portico: single-threaded runtime (workers: 1) on CPU 1; upstream pool: Portico's own HTTP/1.1 pool, up to 1,024 idle connections per target (one per concurrent request here)." >&2
echo "Running $ROUNDS rounds x ${#TARGETS[@]} targets, ${DURATION}s each, -c$CONNS, each proxy started afresh for its run; the order reverses every other round." >&2
for r in $(seq "$ROUNDS"); do
  order=("${TARGETS[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TARGETS[$i]}"); done
  fi
  for t in "${order[@]}"; do
    start_target "$t"
    ready "$t"
    run "$t" "$T_PORT" "$T_PID" "${WRK_ARGS[@]}"
    [ "$t" = portico-limits-redis ] && redis_counts
    stop_target
  done
  echo "round $r done" >&2
done

python3 - "$results" "$CONNS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
order = ["direct", "nginx", "haproxy", "portico", "portico-key10", "portico-key100000",
         "portico-limits", "portico-limits-redis", "nginx-post", "portico-plain-post", "portico-routed-post",
         "portico-validate-post"]
med = {}
print(f"\nc={sys.argv[2]}, medians over {sum(r[0] == 'direct' for r in rows)} rounds")
print(f"{'target':<22}{'rps':>10}{'p50 ms':>9}{'p99 ms':>9}{'non2xx':>8}{'sockerr':>8}{'cpu0%':>7}{'cpu1%':>7}{'cpu us/req':>11}")
for name in order:
    rs = [r for r in rows if r[0] == name]
    if not rs:
        continue
    m = [statistics.median(float(r[i]) for r in rs) for i in range(1, 9)]
    med[name] = m
    print(f"{name:<22}{m[0]:>10.0f}{m[1]:>9.3f}{m[2]:>9.3f}{m[3]:>8.0f}{m[4]:>8.0f}{m[5]:>7.0f}{m[6]:>7.0f}{m[7]:>11.2f}")
if "nginx" in med and "portico" in med:
    n, p = med["nginx"], med["portico"]
    print(f"\nportico / nginx: rps {p[0] / n[0]:.2f}x, p99 {p[2] / n[2]:.2f}x (lower is better), "
          f"cpu per request {p[7] / n[7]:.2f}x" if n[7] else "")
if "portico-key10" in med and "portico-key100000" in med:
    p, k10, k100k = med["portico"], med["portico-key10"], med["portico-key100000"]
    print(f"api_key (10 keys) / plain portico: rps {k10[0] / p[0]:.3f}x, cpu per request {k10[7] / p[7]:.3f}x")
    print(f"api_key 100,000 keys / 10 keys: rps {k100k[0] / k10[0]:.3f}x, cpu per request {k100k[7] / k10[7]:.3f}x")
for name in ["portico-limits", "portico-limits-redis"]:
    if name in med and "nginx" in med:
        l, n = med[name], med["nginx"]
        print(f"{name} (api_key + rate_limit + metrics + access log) / nginx: rps {l[0] / n[0]:.3f}x"
              + (" (target: at least 0.9x)" if name == "portico-limits" else "")
              + f", non-2xx {l[3]:.0f}")
if "portico-validate-post" in med:
    v, r, n = med["portico-validate-post"], med["portico-routed-post"], med["nginx-post"]
    p = med["portico-plain-post"]
    print(f"validate / routed (POST, 1 KiB JSON): rps {v[0] / r[0]:.3f}x (target: cost under 10 %, so at least 0.9x), "
          f"cpu per request {v[7] / r[7]:.3f}x; routed / nginx (POST): rps {r[0] / n[0]:.3f}x")
    print(f"validate / plain (POST, no spec): rps {v[0] / p[0]:.3f}x, cpu per request {v[7] / p[7]:.3f}x; "
          f"routed / plain: rps {r[0] / p[0]:.3f}x")
PY
if [ -n "$REDIS_URL" ] && [ "$LIMITS" = 1 ]; then
  # Redis round trips per admitted request, from the nodes' own counters
  # (warm-up included on both sides).
  awk '{ rt += $1; ok += $2 }
    END { if (ok > 0) printf "Redis round trips per request: %.3f (%d over %d requests)\n", rt / ok, rt, ok }' \
    "$work/redis-counts.txt"
fi
