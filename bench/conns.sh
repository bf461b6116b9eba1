#!/usr/bin/env bash
# conns.sh: a flash crowd of connections through HAProxy, nginx and floodgate, in one
# run, one proxy at a time, each on CPU 1 (the load and the backend share CPU 0), each
# started fresh for each phase so its peak memory is that phase's.
#
# active: N keep-alive clients at full load (wrk -c N, default 7,000) for D seconds
#         against one nginx backend serving a 128-byte body. Per proxy: req/s, p99,
#         errors (wrk's socket errors and non-2xx), peak RSS (VmHWM, summed over the
#         proxy's processes).
# idle:   I connections opened (default 9,000), one request each, then held idle
#         (bench/idleconns). Per proxy: RSS before and with them, and RSS per idle
#         connection ((with - before) / I).
#
# usage: conns.sh [-b FLOODGATE_BIN] [-n ACTIVE_CONNS] [-i IDLE_CONNS] [-d SECONDS]
#                 [-p PROXIES] [-o RESULT_FILE]
# PROXIES is comma-separated, default haproxy,nginx,floodgate. Without -b it builds
# ./cmd/floodgate. Needs wrk, haproxy and nginx (installed from Debian when missing)
# and a file descriptor limit above the connection counts. Ports: 127.0.0.1:17201-17214.
set -euo pipefail

n=7000 idle=9000 dur=10 bin="" out="" proxies="haproxy,nginx,floodgate"
while getopts "b:n:i:d:p:o:h" opt; do
  case $opt in
    b) bin=$OPTARG ;; n) n=$OPTARG ;; i) idle=$OPTARG ;; d) dur=$OPTARG ;;
    p) proxies=$OPTARG ;; o) out=$OPTARG ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
  esac
done

. "$(dirname "$0")/lib.sh"
require wrk:wrk haproxy:haproxy nginx:nginx-light
most=$(( n > idle ? n : idle ))
ulimit -n "$(ulimit -Hn)"
# HAProxy wants two descriptors per connection it may hold (client and server side).
maxconn=$(( most + 400 ))
if [ "$(ulimit -n)" -lt $(( maxconn * 2 + 100 )) ]; then
  echo "conns.sh: file descriptor limit $(ulimit -n) is too low for $n/$idle connections" >&2; exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d -t fg-conns.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

if [ -z "$bin" ]; then
  echo "building ./cmd/floodgate..." >&2
  (cd "$here/.." && go build -o "$work/floodgate" ./cmd/floodgate) && bin="$work/floodgate"
fi
(cd "$here/.." && go build -o "$work/idleconns" ./bench/idleconns)

if [ "$(nproc)" -ge 2 ]; then load_cpu=0; proxy_cpu=1; else load_cpu=0; proxy_cpu=0; fi
pin() { exec taskset -c "$1" "${@:2}"; }

chmod 755 "$work"
head -c 128 /dev/zero | tr '\0' 'x' >"$work/body"; chmod 644 "$work/body"
cat >"$work/backend.conf" <<EOF2
daemon off; worker_processes 1; pid $work/backend.pid; error_log $work/backend.err;
worker_rlimit_nofile 40000;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:17201 backlog=8192; location / { default_type text/plain; root $work; try_files /body =404; } } }
EOF2
pin $load_cpu nginx -c "$work/backend.conf" -p "$work" & pids+=($!)

cat >"$work/haproxy.cfg" <<EOF2
global
  nbthread 1
  maxconn $maxconn
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:17210
  maxconn $maxconn
  default_backend be
backend be
  server s1 127.0.0.1:17201 maxconn 1000
EOF2
cat >"$work/nginx.conf" <<EOF2
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/nginx.err;
worker_rlimit_nofile 40000;
events { worker_connections 40000; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream be { server 127.0.0.1:17201; keepalive 256; }
  server { listen 127.0.0.1:17211 backlog=8192;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
EOF2
cat >"$work/floodgate.yaml" <<EOF2
listen: "127.0.0.1:17212"
admin:
  listen: "127.0.0.1:17213"
limits:
  max_conns: 40000
timeouts:
  client_idle: 300s
pools:
  - name: bench
    backends:
      - {address: "127.0.0.1:17201", weight: 1}
    health: {type: none}
routes:
  - {name: all, path_prefix: /, pool: bench}
EOF2

start() { # proxy -> sets pid and port
  case $1 in
    haproxy) pin $proxy_cpu haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pid=$!; port=17210 ;;
    nginx) pin $proxy_cpu nginx -c "$work/nginx.conf" -p "$work" & pid=$!; port=17211 ;;
    floodgate) GOMAXPROCS=1 pin $proxy_cpu "$bin" -config "$work/floodgate.yaml" >"$work/floodgate.log" 2>&1 & pid=$!; port=17212 ;;
    *) echo "unknown proxy $1" >&2; exit 2 ;;
  esac
  pids+=("$pid")
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.1; done
  echo "$1 does not answer on port $port" >&2; cat "$work/$1.log" >&2 2>/dev/null; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
# Memory of a process and its children, in KB: field is VmHWM (peak) or VmRSS.
mem() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/status" ] || continue
    total=$(( total + $(awk -v f="$2:" '$1==f{print $2}' "/proc/$p/status") ))
  done
  echo $total
}
to_ms() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n/1000; else if (v ~ /ms$/) print n; else if (v ~ /s$/) print n*1000; else print n}'; }

rows=()
IFS=, read -ra list <<<"$proxies"
for p in "${list[@]}"; do
  # Active: the crowd at full load.
  start "$p"
  w=$(pin $load_cpu wrk -t1 -c"$n" -d"${dur}s" --timeout 5s --latency "http://127.0.0.1:$port/" 2>&1)
  hwm=$(mem "$pid" VmHWM)
  stop
  rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' <<<"$w")
  p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$w")")
  sock=$(awk '/Socket errors/{gsub(",",""); print $4+$6+$8+$10}' <<<"$w"); sock=${sock:-0}
  non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$w"); non2xx=${non2xx:-0}

  # Idle: the crowd opened, answered once, then quiet.
  start "$p"
  before=$(mem "$pid" VmRSS)
  exec 3> >("$work/idleconns" -addr "127.0.0.1:$port" -n "$idle" -hold 120s >"$work/idle.out" 2>&1)
  ic=$!
  for _ in $(seq 600); do grep -q '^ready' "$work/idle.out" 2>/dev/null && break
    grep -q 'failed' "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1 # let the proxy finish the last answers' bookkeeping
  with=$(mem "$pid" VmRSS)
  ok=$(grep -c '^ready' "$work/idle.out" || true)
  exec 3>&-
  wait "$ic" 2>/dev/null || true
  stop
  per=$(awk -v a="$before" -v b="$with" -v n="$idle" 'BEGIN{printf "%.1f", (b-a)/n}')
  [ "$ok" = 1 ] || per="failed: $(head -1 "$work/idle.out")"
  rows+=("$(printf "%-10s %9s %9s %7s %7s %12s %12s %12s %14s" "$p" "$rps" "$p99" "$sock" "$non2xx" "$((hwm/1024))" "$((before/1024))" "$((with/1024))" "$per")")
done

hdr="# $(date -u +%Y-%m-%dT%H:%MZ) conns.sh active=$n for ${dur}s, idle=$idle, cpus=$(nproc)"
table=$(printf "%-10s %9s %9s %7s %7s %12s %12s %12s %14s\n" proxy "req/s" "p99 ms" "sockerr" "non2xx" "peak RSS MB" "idle0 MB" "idleN MB" "KB/idle conn"; printf "%s\n" "${rows[@]}")
echo "$hdr"; echo "$table"
if [ -n "$out" ]; then { echo "$hdr"; echo "$table"; } >>"$out"; fi
