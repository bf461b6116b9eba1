#!/usr/bin/env bash
# spike.sh: the TV-broadcast spike of issues 7 and 15, played through HAProxy, nginx
# and floodgate one after the other, against the same origin fleet, in one go.
#
# The origin and the open-loop load generator are bench/spike (`go doc ./bench/spike`
# describes the model, the profile and every figure). The origin is a shop fleet of
# three unequal backends (8, 6 and 2 service slots, each its own listener) and the
# back office's own server (8 slots), sharing one order database that deduplicates
# by the client's Idempotency-Key. The mix: static assets, cacheable pages,
# uncacheable search, orders ten times dearer than a page view, back office. The
# load goes 300 -> 5,400 req/s (18x) in 20 s, holds 60 s, comes back down over 20 s,
# then stays at 300 req/s (about 20% of the shop's uncached capacity) for the
# recovery (-R, default 150 s, not scaled): 260 s per proxy at -s 1. Like
# bench/compare.sh, each proxy gets CPU 1 and the origin and generator share CPU 0.
# A fresh origin is started for each proxy.
#
# Proxies (-p, comma-separated, in this order by default), each configured for
# overload as an expert would:
#   haproxy    per server `maxconn` = its slots and `weight` = its slots, `timeout
#              queue 500ms` (half the SLO), a cache for what the origin lets it store, the
#              back office on its own backend, open to 127.0.0.2 only.
#   nginx      per server `weight` and `max_conns` = its slots; nginx without Plus
#              has no upstream queue, so a request finding every server full gets
#              503 with Retry-After at once (or a stale page from proxy_cache);
#              proxy_cache with lock and use_stale; the back office as above.
#   floodgate  bench/spike/floodgate.yaml: docs/degraded-mode.md's worked
#              configuration for this fleet (a test checks that they agree). When
#              `floodgate -check` refuses per-backend `max_conns` (issue 15, not
#              built yet), it runs without them and its row says so; when it
#              refuses anything else, its row says "not runnable yet: <reason>".
#
# Output: one table per proxy as it finishes, then the summary: issue 15's two
# tables (at the peak; after it), then the detail. The JSON reports (with a
# per-second timeline) and the logs stay in OUT_DIR.
#
# The machine is shared: before each run the script waits (up to -q, default 10m) for
# the CPUs to be idle; each run reports the CPU used by the proxy, the generator, the
# origin and anything else; a run disturbed by something else is tried again, up to
# -a attempts (default 3), and the least disturbed attempt is kept.
#
# usage: spike.sh [-b FLOODGATE_BIN] [-c FLOODGATE_YAML] [-p PROXIES] [-s SCALE] [-R RECOVERY_S]
#                 [-w REPLAY_WAIT_S] [-o OUT_DIR] [-P PORT_BASE] [-q QUIET_WAIT] [-a N]
#                 [-- extra flags for `spike run`, e.g. -slo 500ms]
#   -s 0.5 runs the spike's phases at half their length; the recovery stays -R.
#   Ports: PORT_BASE..PORT_BASE+8 on 127.0.0.1 (default 17150: shop1, shop2, shop3,
#   back office, origin control, haproxy, nginx, floodgate, floodgate admin), within
#   17101-17199.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="" fg_cfg="$root/bench/spike/floodgate.yaml"
proxies="haproxy,nginx,floodgate" scale=1 recovery=150 replay_wait=120 out="" base=17150 quiet_wait=10m attempts=3
while getopts "b:c:p:s:R:w:o:P:q:a:h" opt; do
  case $opt in
    b) bin=$OPTARG ;; c) fg_cfg=$OPTARG ;; p) proxies=$OPTARG ;;
    s) scale=$OPTARG ;; R) recovery=$OPTARG ;; w) replay_wait=$OPTARG ;; o) out=$OPTARG ;; P) base=$OPTARG ;;
    q) quiet_wait=$OPTARG ;; a) attempts=$OPTARG ;;
    *) sed -n '2,46p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
extra=("$@")

if [ "$base" -lt 17101 ] || [ $((base + 8)) -gt 17199 ]; then
  echo "spike.sh: -P $base: ports must stay within 17101-17199" >&2; exit 2
fi
s1=$base s2=$((base + 1)) s3=$((base + 2)) bo=$((base + 3)) cp=$((base + 4))
hp=$((base + 5)) np=$((base + 6)) fp=$((base + 7)) ap=$((base + 8))
for p in $s1 $s2 $s3 $bo $cp $hp $np $fp $ap; do
  if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
    echo "spike.sh: port $p is in use (someone else's run?); pick another block with -P" >&2; exit 1
  fi
done

. "$(dirname "$0")/lib.sh"
require haproxy:haproxy nginx:nginx-light

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

# Rewrite the default addresses of a floodgate config (17150-17158) to this run's
# port block, through placeholders so that overlapping blocks cannot chain.
fg_config() {
  local k args=() back=()
  for k in 0 1 2 3 4 5 6 7 8; do
    args+=(-e "s/127\.0\.0\.1:$((17150 + k))\b/127.0.0.1:@PORT$k@/g")
    back+=(-e "s/@PORT$k@/$((base + k))/g")
  done
  sed "${args[@]}" "$1" | sed "${back[@]}" >"$2"
}

# HAProxy as an expert sets it up for overload: each server's maxconn and weight
# are its slots, so the origin never queues and the servers share the load by
# capacity; a request waits in the queue at most half the SLO (leaving the other half
# for its service and the way back); a cache stores what the origin allows.
cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 18000
  # HAProxy asks for 2 fds per connection (36k) and the hard limit here may be 20k;
  # only 20 server-side connections exist, so run with what it gets.
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
  timeout queue 500ms
cache pages
  total-max-size 512
  max-object-size 1000000
  max-age 3600
frontend fe
  bind 127.0.0.1:$hp
  acl backoffice path_beg /admin/
  acl office src 127.0.0.2
  http-request deny if backoffice !office
  use_backend backoffice if backoffice
  default_backend shop
backend shop
  balance roundrobin
  option httpchk GET /healthz
  http-request cache-use pages
  http-response cache-store pages
  server shop1 127.0.0.1:$s1 weight 8 maxconn 8 check inter 1s
  server shop2 127.0.0.1:$s2 weight 6 maxconn 6 check inter 1s
  server shop3 127.0.0.1:$s3 weight 2 maxconn 2 check inter 1s
backend backoffice
  option httpchk GET /healthz
  server bo 127.0.0.1:$bo maxconn 8 check inter 1s
EOF
# nginx (open source, as nginx-light ships it) as an expert sets it up: weights and
# max_conns by slots; with no upstream queue, a request that finds every server full
# is answered at once from the cache if it can be (use_stale), else 503 with
# Retry-After; Cache-Status says whether an answer was stale.
cat >"$work/nginx.conf" <<EOF
daemon off; worker_processes 1; worker_rlimit_nofile 20000;
pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 19000; }
http { access_log off; keepalive_requests 100000; keepalive_timeout 75s;
  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=pages:64m max_size=512m inactive=1h use_temp_path=off;
  upstream shop { server 127.0.0.1:$s1 weight=8 max_conns=8; server 127.0.0.1:$s2 weight=6 max_conns=6;
    server 127.0.0.1:$s3 weight=2 max_conns=2; keepalive 64; }
  upstream backoffice { server 127.0.0.1:$bo max_conns=8; keepalive 16; }
  server { listen 127.0.0.1:$np backlog=4096;
    proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_connect_timeout 2s; proxy_read_timeout 30s; proxy_next_upstream error timeout;
    proxy_cache pages; proxy_cache_lock on; proxy_cache_lock_timeout 1s; proxy_cache_background_update on;
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header Cache-Status "nginx; detail=\$upstream_cache_status" always;
    error_page 502 503 504 = @busy;
    location / { proxy_pass http://shop; }
    location /admin/ { allow 127.0.0.2; deny all; proxy_pass http://backoffice; }
    location @busy { add_header Retry-After 10 always; return 503 "busy, try again\n"; } } }
EOF

start_origin() { # $1: log name
  taskset -c $load_cpu env GOMAXPROCS=1 "$spike" origin -control "127.0.0.1:$cp" \
    -shop "127.0.0.1:$s1=8,127.0.0.1:$s2=6,127.0.0.1:$s3=2" -backoffice "127.0.0.1:$bo=8" \
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
budget=$(awk -v s="$scale" -v r="$recovery" -v w="$replay_wait" 'BEGIN{printf "%d", 110*s + r + 10 + w + 90}')
# The replay rate of the floodgate config, for the replay budget of the report.
replay_rate=$(awk -F'[:/ ]+' '/^ *replay_rate:/ {print $3; exit}' "$fg_cfg")
# Issue 15: back to normal within hold + 3 windows of steady traffic (the shop pool's).
exit_budget=$(awk '/^ *hold: *[0-9]+s/ && !h {h = $2 + 0} /^ *window: *[0-9]+s/ && !w {w = $2 + 0}
  END {if (h) printf "%ds", h + 3 * (w ? w : 2)}' "$fg_cfg")

# Check once that this machine delivers the origin's nominal capacity.
"$spike" quiet -max-wait "$quiet_wait"
start_origin capacity
taskset -c $load_cpu env GOMAXPROCS=1 "$spike" capacity -control "127.0.0.1:$cp" -conc 2 -d 5s \
  | tee "$out/capacity.txt"
stop "$origin_pid"

reports=()
IFS=, read -ra list <<<"$proxies"
for key in "${list[@]}"; do
  metrics=() cwd="$work"
  case $key in
    haproxy) name=haproxy port=$hp cmd=(haproxy -f "$work/haproxy.cfg" -db) ;;
    nginx) name=nginx port=$np cmd=(nginx -c "$work/nginx.conf" -p "$work"); rm -rf "$work/nginx-cache" ;;
    floodgate)
      name=floodgate port=$fp
      if [ -z "$bin" ]; then skip "$key" "$name" "$no_bin"; reports+=("$out/$key.json"); continue; fi
      fg_config "$fg_cfg" "$work/$key.yaml"
      cp "$(dirname "$fg_cfg")/busy.html" "$work/busy.html"
      msg=$(cd "$work" && "$bin" -check -config "$work/$key.yaml" 2>&1) || true
      if grep -q 'backends\[[0-9]*\]\.max_conns: unknown key' <<<"$msg"; then
        # A binary older than per-backend limits (issue 15): every backend gets the
        # pool's max_conns_per_backend instead. The row's name says so.
        sed -i -E 's/, max_conns: [0-9]+\}/}/' "$work/$key.yaml"
        name="floodgate (no per-backend max_conns)"
      fi
      if ! msg=$(cd "$work" && "$bin" -check -config "$work/$key.yaml" 2>&1); then
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
        -origin-control "127.0.0.1:$cp" -proxy-pid "$proxy_pid" "${metrics[@]}" -scale "$scale" -recovery "${recovery}s" \
        -replay-wait "${replay_wait}s" ${replay_rate:+-replay-rate "$replay_rate"} ${exit_budget:+-exit-budget "$exit_budget"} \
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
echo "=== summary ($(date -u +%Y-%m-%dT%H:%MZ), scale $scale, recovery ${recovery}s, cpus $ncpu; reports in $out)"
"$spike" report "${reports[@]}" | tee "$out/summary.txt"
