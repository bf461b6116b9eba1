#!/usr/bin/env bash
# spike.sh: the TV-broadcast spike of issue 7, played through HAProxy, nginx and
# floodgate one after the other, against the same fixed-capacity origin, in one go.
#
# The origin and the open-loop load generator are bench/spike (`go doc ./bench/spike`
# describes the model, the profile and every figure). The origin has 16 service slots,
# 1,553 req/s nominal for the mix; the load goes 300 -> 5,400 req/s in 20 s, holds
# 60 s, comes back down: 140 s and ~450,000 requests per proxy at -s 1. Like
# bench/compare.sh, each proxy gets CPU 1 and the origin and generator share CPU 0.
# A fresh origin is started for each proxy.
#
# Proxies (-p, comma-separated, in this order by default):
#   haproxy          HTTP mode, `maxconn 16` on the server line (the origin's slots),
#                    `timeout queue 2s`: a competent stock config.
#   nginx            proxy_pass to an upstream with `keepalive 256`, no limit: stock.
#   floodgate-basic  floodgate with bench/spike/floodgate-basic.yaml: the same limits
#                    as HAProxy, plus the cache and allow_cidrs, without the keys of
#                    the degraded mode and order capture ("no degrade").
#   floodgate        floodgate with bench/spike/floodgate.yaml: cache, degraded mode,
#                    priorities, capture, allow_cidrs. When `floodgate -check` refuses
#                    the config (features not built yet), its row says "not runnable
#                    yet: <reason>" and the other rows are still produced.
#
# Output: one table per proxy as it finishes, then a side-by-side summary; the JSON
# reports (with a per-second timeline) and the logs stay in OUT_DIR.
#
# The machine is shared: before each run the script waits (up to -q, default 10m) for
# the CPUs to be idle; each run reports the CPU used by the proxy, the generator, the
# origin and anything else; a run disturbed by something else is tried again, up to
# -a attempts (default 3), and the least disturbed attempt is kept.
#
# usage: spike.sh [-b FLOODGATE_BIN] [-c FLOODGATE_YAML] [-C BASIC_YAML] [-p PROXIES]
#                 [-s SCALE] [-w REPLAY_WAIT_S] [-o OUT_DIR] [-P PORT_BASE] [-q QUIET_WAIT] [-a N] [-m MAXCONN]
#                 [-- extra flags for `spike run`, e.g. -class-timeout search=2s]
#   -s 0.25 runs every phase at a quarter of its length (35 s per proxy).
#   -m sets HAProxy's maxconn on the server line (default 16, the origin's slots).
#   Ports: PORT_BASE..PORT_BASE+5 on 127.0.0.1 (default 17150: origin, origin
#   control, haproxy, nginx, floodgate, floodgate admin), within 17101-17199.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="" fg_cfg="$root/bench/spike/floodgate.yaml" basic_cfg="$root/bench/spike/floodgate-basic.yaml"
proxies="haproxy,nginx,floodgate-basic,floodgate" haproxy_maxconn=16 scale=1 replay_wait=120 out="" base=17150 quiet_wait=10m attempts=3
while getopts "b:c:C:p:s:w:o:P:q:a:m:h" opt; do
  case $opt in
    b) bin=$OPTARG ;; c) fg_cfg=$OPTARG ;; C) basic_cfg=$OPTARG ;; p) proxies=$OPTARG ;;
    s) scale=$OPTARG ;; w) replay_wait=$OPTARG ;; o) out=$OPTARG ;; P) base=$OPTARG ;;
    q) quiet_wait=$OPTARG ;; a) attempts=$OPTARG ;; m) haproxy_maxconn=$OPTARG ;;
    *) sed -n '2,39p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
extra=("$@")

if [ "$base" -lt 17101 ] || [ $((base + 5)) -gt 17199 ]; then
  echo "spike.sh: -P $base: ports must stay within 17101-17199" >&2; exit 2
fi
op=$base cp=$((base + 1)) hp=$((base + 2)) np=$((base + 3)) fp=$((base + 4)) ap=$((base + 5))
for p in $op $cp $hp $np $fp $ap; do
  if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
    echo "spike.sh: port $p is in use (someone else's run?); pick another block with -P" >&2; exit 1
  fi
done

need() { command -v "$1" >/dev/null 2>&1; }
if ! need haproxy || ! need nginx; then
  echo "installing haproxy, nginx from Debian packages..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy nginx-light) >/dev/null
fi

# Up to ~11k connections are open at once on each side of the proxy at the peak.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 16384 ]; then
  echo "spike.sh: warning: open-file limit $(ulimit -n) is low for this scenario" >&2
fi

work=$(mktemp -d -t fg-spike.XXXXXX)
chmod 755 "$work"
[ -n "$out" ] || out="/tmp/floodgate-spike-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/logs"
pids=()
stop() { # stop the processes given (ours, by pid), wait for them, forget them
  local p q keep=()
  for p in "$@"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    [ -n "$p" ] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for q in "${pids[@]:-}"; do
    for p in "$@"; do [ "$q" = "$p" ] && continue 2; done
    [ -n "$q" ] && keep+=("$q")
  done
  pids=("${keep[@]:-}")
}
cleanup() {
  stop "${pids[@]:-}"
  cp "$work"/*.log "$work"/*.err "$out/logs/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then load_cpu=0; proxy_cpu=1; else load_cpu=0; proxy_cpu=0; fi

echo "building bench/spike..." >&2
(cd "$root" && go build -o "$work/spike" ./bench/spike)
spike="$work/spike"
no_bin="no floodgate binary (no -b and no ./cmd/floodgate)"
if [ -z "$bin" ] && [[ ",$proxies," == *,floodgate* ]]; then
  echo "building ./cmd/floodgate..." >&2
  if (cd "$root" && go build -o "$work/floodgate" ./cmd/floodgate) 2>"$work/build.err"; then
    bin="$work/floodgate"
  else
    no_bin="./cmd/floodgate does not build: $(grep . "$work/build.err" | head -n 2 | tr '\n' ' ')"
    echo "spike.sh: $no_bin" >&2
  fi
fi

# Rewrite the default addresses of a floodgate config to this run's port block.
fg_config() {
  sed -e "s/127\.0\.0\.1:17150/127.0.0.1:$op/g" -e "s/127\.0\.0\.1:17154/127.0.0.1:$fp/g" \
      -e "s/127\.0\.0\.1:17155/127.0.0.1:$ap/g" "$1" >"$2"
}

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 18000
  # HAProxy asks for 2 fds per connection (36k) and the hard limit here may be 20k;
  # only 16 server-side connections exist, so run with what it gets.
  no strict-limits
defaults
  mode http
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  timeout queue 2s
frontend fe
  bind 127.0.0.1:$hp
  default_backend shop
backend shop
  server origin 127.0.0.1:$op maxconn $haproxy_maxconn
EOF
cat >"$work/nginx.conf" <<EOF
daemon off; worker_processes 1; worker_rlimit_nofile 20000;
pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 19000; }
http { access_log off; keepalive_requests 100000; keepalive_timeout 75s;
  upstream shop { server 127.0.0.1:$op; keepalive 256; }
  server { listen 127.0.0.1:$np backlog=4096;
    location / { proxy_pass http://shop; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_connect_timeout 2s; proxy_read_timeout 30s; } } }
EOF

start_origin() { # $1: log name
  taskset -c $load_cpu env GOMAXPROCS=1 "$spike" origin -listen "127.0.0.1:$op" -control "127.0.0.1:$cp" \
    >"$work/origin-$1.log" 2>&1 &
  origin_pid=$!; pids+=("$origin_pid")
  for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$cp/stats" && return 0; sleep 0.1; done
  echo "spike.sh: the origin did not start:" >&2; cat "$work/origin-$1.log" >&2; exit 1
}

ready() { # $1: port; $2: pid. Waits for a 2xx on /healthz through the proxy.
  for _ in $(seq 150); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$1/healthz" && return 0
    sleep 0.1
  done
  return 1
}

# A proxy that cannot run still gets a row.
skip() { # $1: key, $2: name, $3: reason
  "$spike" skip -name "$2" -reason "$3" -json "$out/$1.json"
}

# The longest a run may take: the profile, the client timeout, the replay wait, margin.
budget=$(awk -v s="$scale" -v w="$replay_wait" 'BEGIN{printf "%d", 140*s + 10 + w + 90}')

# Check once that this machine delivers the origin's nominal capacity.
"$spike" quiet -max-wait "$quiet_wait"
start_origin capacity
taskset -c $load_cpu env GOMAXPROCS=1 "$spike" capacity -origin "127.0.0.1:$op" -control "127.0.0.1:$cp" -conc 32 -d 5s \
  | tee "$out/capacity.txt"
stop "$origin_pid"

reports=()
IFS=, read -ra list <<<"$proxies"
for key in "${list[@]}"; do
  metrics=() cwd="$work"
  case $key in
    haproxy) name=haproxy port=$hp cmd=(haproxy -f "$work/haproxy.cfg" -db) ;;
    nginx) name=nginx port=$np cmd=(nginx -c "$work/nginx.conf" -p "$work") ;;
    floodgate-basic|floodgate)
      if [ "$key" = floodgate ]; then name=floodgate src=$fg_cfg; else name="floodgate (no degrade)" src=$basic_cfg; fi
      port=$fp
      if [ -z "$bin" ]; then skip "$key" "$name" "$no_bin"; reports+=("$out/$key.json"); continue; fi
      fg_config "$src" "$work/$key.yaml"
      if ! msg=$("$bin" -check -config "$work/$key.yaml" 2>&1); then
        # "field: not supported by this version of floodgate yet", one a line: name the fields.
        reason=$(awk -F': ' '/not supported by this version/ {f = f (f ? ", " : "") $1; next} NF && !o {o = $0} END {print (f ? "config keys not supported yet: " f : o)}' <<<"$msg")
        skip "$key" "$name" "$reason"; reports+=("$out/$key.json"); continue
      fi
      cmd=(env GOMAXPROCS=1 "$bin" -config "$work/$key.yaml")
      metrics=(-metrics "http://127.0.0.1:$ap/metrics") ;;
    *) echo "spike.sh: unknown proxy $key" >&2; exit 2 ;;
  esac
  # A run that something else disturbed is tried again; the least disturbed is kept.
  best="" best_other=""
  for attempt in $(seq "$attempts"); do
    echo "=== $name (attempt $attempt of $attempts)" >&2
    "$spike" quiet -max-wait "$quiet_wait"
    rm -rf "$work/spike-journal" # a fresh origin must not get an earlier attempt's orders
    start_origin "$key"
    (cd "$cwd" && exec taskset -c $proxy_cpu "${cmd[@]}") >"$work/$key.log" 2>&1 &
    proxy_pid=$!; pids+=("$proxy_pid")
    if ! ready "$port" "$proxy_pid"; then
      reason="did not start: $( { tail -n 3 "$work/$key.log"; [ "$key" = nginx ] && tail -n 3 "$work/nginx.err"; } 2>/dev/null | grep . | tail -n 1 || true)"
      stop "$proxy_pid" "$origin_pid"
      skip "$key" "$name" "$reason"; best="$out/$key.json"; break
    fi
    try="$out/$key.try$attempt.json"
    if taskset -c $load_cpu env GOMAXPROCS=1 timeout -k 10 "$budget" "$spike" run -target "127.0.0.1:$port" -name "$name" \
        -origin-control "127.0.0.1:$cp" -proxy-pid "$proxy_pid" "${metrics[@]}" -scale "$scale" -replay-wait "${replay_wait}s" \
        -json "$try" "${extra[@]}"; then
      ok=1
    else
      ok=""
    fi
    stop "$proxy_pid" "$origin_pid"
    cp "$work/$key.log" "$out/logs/$key.try$attempt.log" 2>/dev/null || true
    cp "$work/origin-$key.log" "$out/logs/origin-$key.try$attempt.log" 2>/dev/null || true
    if [ -z "$ok" ]; then
      [ -n "$best" ] || { skip "$key" "$name" "the run failed; see $out/logs"; best="$out/$key.json"; }
      break
    fi
    if other=$("$spike" disturbed "$try"); then best=$try; break; fi
    echo "spike.sh: $name: ${other}% of a CPU used by something else during the load (or the generator lagged)" >&2
    if [ -z "$best_other" ] || [ "$other" -lt "$best_other" ]; then best=$try best_other=$other; fi
    sleep 2
  done
  [ "$best" = "$out/$key.json" ] || cp "$best" "$out/$key.json"
  reports+=("$out/$key.json")
  sleep 2
done

echo
echo "=== summary ($(date -u +%Y-%m-%dT%H:%MZ), scale $scale, cpus $ncpu; reports in $out)"
"$spike" report "${reports[@]}" | tee "$out/summary.txt"
