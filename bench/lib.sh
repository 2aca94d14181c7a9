# Shared by the benchmark scripts: a work directory removed on exit with
# every process started into `pids`, tool installation from Debian, free
# loopback ports, and the trivial upstream (nginx answering GET / with 5
# bytes) that every benchmark proxies to. Source it; it sets `root`,
# `work`, `pids`, `NGINX`, `HAPROXY`.

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/portico-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

install_tools() {
  local missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return
  echo "Installing ${missing[*]} (services are not started)." >&2
  # Keep the packages' own services from starting during install.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 1200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}


install_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# start_upstream PORT: nginx on CPU 0 answering every GET with "hello".
start_upstream() {
  mkdir -p "$work/up"
  cat > "$work/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/up/nginx.pid; error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  server { listen 127.0.0.1:$1 backlog=4096; location / { default_type text/plain; return 200 "hello"; } }
}
CONF
  taskset -c 0 "$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)
}

# machine_facts: one line naming what the run was drawn on. The same
# code has measured 35 % apart from one session to the next on this
# virtual machine (docs/benchmarks.md, tenth session): the host's CPU, the
# kernel and its return mitigations (which set what a system call costs)
# are what a reader needs to compare two runs.
machine_facts() {
  local cpu vuln=/sys/devices/system/cpu/vulnerabilities
  cpu=$(awk -F': ' '/^cpu family/ {f=$2} /^model\t/ {m=$2} /^model name/ {n=$2} END {printf "%s (family %s, model %s)", n, f, m}' /proc/cpuinfo)
  echo "machine: $cpu, $(nproc) CPUs, kernel $(uname -r); spectre_v2: $(cat $vuln/spectre_v2 2>/dev/null || echo unknown); srso: $(cat $vuln/spec_rstack_overflow 2>/dev/null || echo unknown)"
}

# build_portico: builds the release binary the benchmarks run, and sets
# PORTICO to it.
build_portico() {
  echo "Building Portico (release)." >&2
  (cd "$root" && cargo build --release -q -p portico)
  PORTICO="$root/target/release/portico"
}

# nginx_proxy_config DIR PORT: DIR/nginx.conf for nginx as the reverse
# proxy of BENCHMARK.md (one worker, no master, upstream keep-alive 256) on
# PORT in front of the upstream on $UP.
nginx_proxy_config() {
  local work_dir=$1 port=$2
  mkdir -p "$work_dir"
  cat > "$work_dir/nginx.conf" <<CONF
worker_processes 1; master_process off; daemon off; pid $work_dir/nginx.pid; error_log $work_dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work_dir; proxy_temp_path $work_dir; fastcgi_temp_path $work_dir; uwsgi_temp_path $work_dir; scgi_temp_path $work_dir;
  upstream backend { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$port backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
}

# plain_config FILE PORT ADMIN: a Portico node with one API and no
# policies in front of the upstream on $UP, access log off (nginx's is off
# too), one worker. Every node has a store of its own: nodes sharing one
# follow each other's entities (the file seeds the store, ADR 0008).
plain_config() {
  node_head "$1" "$2" "$3" off
  cat >> "$1" <<CONF
apis:
  - name: bench
    base_path: /
    upstream:
      targets: ["http://127.0.0.1:$UP"]
CONF
}

# node_head FILE PORT ADMIN ACCESS_LOG: the `server:` and `storage:` lines
# every bench node starts with (one worker, a store of its own).
node_head() {
  cat > "$1" <<CONF
server:
  proxy: { listen: "127.0.0.1:$2" }
  admin: { listen: "127.0.0.1:$3" }
  access_log: "$4"
  workers: 1
storage: "sqlite://$work/data-$2/portico.db"
CONF
}

# all_2xx WRK_OUTPUT WHAT: fails, showing the output, when wrk saw non-2xx
# answers from WHAT.
all_2xx() {
  if echo "$1" | grep -q "Non-2xx"; then
    echo "non-2xx answers from $2:" >&2
    echo "$1" >&2
    return 1
  fi
}

# ab_run URL PID [wrk args...]: "requests/s CPU-µs-per-request" of one
# round of the interleaved benchmarks: 3 s of warm-up (as BENCHMARK.md
# asks), then 5 s measured with the CPU time of process PID (user +
# system, /proc/PID/stat) read around it. Fails on non-2xx answers.
ab_run() {
  local url=$1 pid=$2 before after out
  shift 2
  taskset -c 0 wrk -t1 -c32 -d3s "$@" "$url" >/dev/null 2>&1
  before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  out=$(taskset -c 0 wrk -t1 -c32 -d5s "$@" "$url")
  after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  all_2xx "$out" "$url" || return 1
  echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    / requests in / { n = $1 } /Requests\/sec/ { rps = $2 }
    END { printf "%s %.2f", rps, t / hz * 1e6 / n }'
}

# keys_config FILE N PORT ADMIN: api_key with N keys (apps of 100 keys).
keys_config() {
  python3 - "$1" "$2" "$3" "$4" "$UP" "$work" <<'PY'
import sys
path, n, port, adm, up, work = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
per_app = min(n, 100)
with open(path, "w") as f:
    f.write(f'server:\n  proxy: {{ listen: "127.0.0.1:{port}" }}\n  admin: {{ listen: "127.0.0.1:{adm}" }}\n')
    f.write(f'  access_log: "off"\n  workers: 1\nstorage: "sqlite://{work}/data-{port}/portico.db"\n')
    f.write(f'apis:\n  - name: bench\n    base_path: /\n    upstream: {{ targets: ["http://127.0.0.1:{up}"] }}\n')
    f.write('    policies:\n      - api_key: {}\nproducts:\n  - { name: all, apis: [bench] }\n')
    f.write('developers:\n  - { email: bench@example.com, name: Bench }\napps:\n')
    for a in range(n // per_app):
        keys = ", ".join(f'"bench-key-{a:05d}-{k:03d}"' for k in range(per_app))
        f.write(f'  - {{ name: app-{a}, developer: bench@example.com, products: [all], api_keys: [{keys}] }}\n')
PY
}

# start_target NAME: starts the proxy behind target NAME on CPU 1 on ports
# of its own; sets T_PORT, T_ADM and T_PID (T_PID empty for `direct`).
start_target() {
  T_PORT=$(free_port); T_ADM=$(free_port); T_PID=""
  local conf="$work/$1-$T_PORT.yaml"
  case $1 in
    direct) T_PORT=$UP; return ;;
    nginx | nginx-post)
      nginx_proxy_config "$work/ngx-$T_PORT" "$T_PORT"
      taskset -c 1 "$NGINX" -c "$work/ngx-$T_PORT/nginx.conf" -p "$work/ngx-$T_PORT" >/dev/null &
      ;;
    haproxy)
      cat > "$work/haproxy-$T_PORT.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$T_PORT
  default_backend be
backend be
  server up 127.0.0.1:$UP
CONF
      taskset -c 1 "$HAPROXY" -f "$work/haproxy-$T_PORT.cfg" -db >/dev/null &
      ;;
    portico) plain_config "$conf" "$T_PORT" "$T_ADM" ;;
    portico-key10) keys_config "$conf" 10 "$T_PORT" "$T_ADM" ;;
    portico-key100000) keys_config "$conf" 100000 "$T_PORT" "$T_ADM" ;;
    portico-limits) limits_config "$conf" "$T_PORT" "$T_ADM" "" ;;
    # Parts of the limits node, access log off (as limits-parts.sh has them).
    portico-key) keyed_config "$conf" "$T_PORT" "$T_ADM" off "" "      - api_key: {}" ;;
    portico-keyrl) keyed_config "$conf" "$T_PORT" "$T_ADM" off "" "$LIMITS_POLICIES" ;;
    portico-limits-redis)
      limits_config "$conf" "$T_PORT" "$T_ADM" \
        "redis: { url: \"$REDIS_URL\", key_prefix: \"bench-$$:\", failure: deny }"
      ;;
    portico-*-post) validate_config "$conf" "$T_PORT" "$T_ADM" ;;
    *) echo "unknown target $1" >&2; return 1 ;;
  esac
  if [[ $1 == portico* ]]; then
    PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$conf" >/dev/null &
  fi
  T_PID=$!
  pids+=("$T_PID")
  wait_port "$T_PORT"
}

stop_target() {
  [ -n "$T_PID" ] || return 0
  kill "$T_PID" 2>/dev/null || true
  wait "$T_PID" 2>/dev/null || true
  # The limits node's access log (about 150 MB a measurement): removed with
  # its node, before the kernel writes it back. Kept, the logs of a 20-round
  # run pass the dirty-page threshold (10 % of memory) partway through, and
  # the write-back then competes with whichever target runs next.
  rm -f "$work/access-$T_PORT.log"
}

# solo_run TARGET: one measurement (ab_run, wrk arguments from the array
# AB_WRK) of a proxy started for it alone on CPU 1 (start_target) and
# stopped after it. Prints "requests/s CPU-µs-per-request"; fails if the
# run does.
solo_run() {
  local out
  start_target "$1" || { stop_target; return 1; }
  if ! out=$(ab_run "http://127.0.0.1:$T_PORT/" "$T_PID" "${AB_WRK[@]}"); then
    stop_target
    return 1
  fi
  stop_target
  echo "$out"
}

# ab_summary ROWS A B C: medians and ratios of an interleaved run whose
# ROWS file has one line per round, "rps cpu" for A, B and C in turn. The
# median of the per-round ratios comes with a 95 % bootstrap interval
# (rounds resampled with replacement, fixed seed): how far another run of
# as many rounds could plausibly land.
ab_summary() {
  python3 - "$@" <<'PY'
import random, statistics, sys
path, names = sys.argv[1], sys.argv[2:5]
rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
rps = [[r[2 * i] for r in rows] for i in range(3)]
cpu = [[r[2 * i + 1] for r in rows] for i in range(3)]
m = statistics.median
rng = random.Random(20261207)

def interval(ratios):
    meds = sorted(m(rng.choices(ratios, k=len(ratios))) for _ in range(10000))
    return meds[249], meds[9749]

print(f"{len(rows)} rounds; median requests/s: "
      + ", ".join(f"{n} {m(x):.0f}" for n, x in zip(names, rps))
      + "; CPU µs per request: "
      + ", ".join(f"{n} {m(x):.2f}" for n, x in zip(names, cpu)))
width = max(len(names[i]) + len(names[j]) + 3 for i, j in ((2, 1), (2, 0), (1, 0)))
for i, j in ((2, 1), (2, 0), (1, 0)):
    x, y, cx, cy = rps[j], rps[i], cpu[j], cpu[i]
    ratios = [v / u for u, v in zip(x, y)]
    low, high = interval(ratios)
    label = f"{names[i]} / {names[j]}".ljust(width)
    print(f"{label}: requests/s {m(y) / m(x):.3f} (ratio of medians), {m(ratios):.3f} (median of ratios, 95 % interval {low:.3f}-{high:.3f}); "
          f"CPU per request {m(cy) / m(cx):.3f} (ratio of medians), {m([v / u for u, v in zip(cx, cy)]):.3f} (median of ratios)")
PY
}

# The API key of the limits node's one app (`limits_config`), which its
# load sends.
LIMITS_KEY=bench-key-limits-01

# limits_config FILE PORT ADMIN EXTRA: the node DESIGN.md's limits target is
# measured on: one API in front of the upstream on $UP with api_key and a
# rate_limit nothing reaches (by app, 10^9 per hour), the access log to a
# file, metrics on as always. EXTRA is one more top-level line (`redis:`)
# or empty.
limits_config() {
  keyed_config "$1" "$2" "$3" "$work/access-$2.log" "$4" "$LIMITS_POLICIES"
}

# The limits node's policies, as lines of its API's `policies:` list.
LIMITS_POLICIES='      - api_key: {}
      - rate_limit: { limit: 1000000000, window: 1h, by: app }'

# keyed_config FILE PORT ADMIN ACCESS_LOG EXTRA POLICIES: one API in front
# of the upstream on $UP with the POLICIES lines (`[]` for none), and one
# app subscribed to it with the key $LIMITS_KEY. EXTRA is one more
# top-level line or empty.
keyed_config() {
  node_head "$1" "$2" "$3" "$4"
  cat >> "$1" <<CONF
$5
apis:
  - name: bench
    base_path: /
    upstream: { targets: ["http://127.0.0.1:$UP"] }
    policies:
$6
products:
  - { name: all, apis: [bench] }
developers:
  - { email: bench@example.com, name: Bench }
apps:
  - { name: bench-app, developer: bench@example.com, products: [all], api_keys: ["$LIMITS_KEY"] }
CONF
}

# validate_config FILE PORT ADMIN: the node the `validate` cost is measured
# on, in front of the upstream on $UP: three APIs, `plain` (no spec, under
# /plain), `routed` (the pet store spec, /routed/v1) and `validated` (the
# spec and `validate: {}`, /store/v1), access log off. The spec is copied
# next to FILE.
validate_config() {
  cp "$root/bench/validate/petstore.yaml" "$(dirname "$1")/petstore.yaml"
  node_head "$1" "$2" "$3" off
  cat >> "$1" <<CONF
apis:
  - name: plain
    base_path: /plain
    upstream: { targets: ["http://127.0.0.1:$UP"] }
  - name: routed
    base_path: /routed/v1
    spec: petstore.yaml
    upstream: { targets: ["http://127.0.0.1:$UP"] }
  - name: validated
    base_path: /store/v1
    spec: petstore.yaml
    upstream: { targets: ["http://127.0.0.1:$UP"] }
    policies:
      - validate: {}
CONF
}

# post_script FILE: a wrk script sending the 1 KiB JSON POST of
# bench/validate/pet.json (with the header parameter the spec declares).
post_script() {
  python3 - "$root/bench/validate/pet.json" "$1" <<'PY'
import json, sys
body = open(sys.argv[1]).read()
with open(sys.argv[2], "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write("wrk.body = " + json.dumps(body) + "\n")
    f.write('wrk.headers["Content-Type"] = "application/json"\n')
    f.write('wrk.headers["x-request-tag"] = "bench"\n')
PY
}
