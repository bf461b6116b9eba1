#!/usr/bin/env bash
# cache-compare.sh: cache-HIT throughput of floodgate's response cache beside nginx's
# proxy_cache and Varnish, on this machine, in one run, in the style of
# bench/compare.sh. Each cache gets one CPU (the second one); the load
# generator (wrk) and the origin (nginx serving a fixed body with
# "Cache-Control: public, max-age=3600", an ETag and a Last-Modified) share the first.
# Every cache is warmed and checked to answer from its store before the measurement
# (nginx: X-Cache-Status: HIT; Varnish: X-Varnish with two ids and Age; floodgate:
# Cache-Status: floodgate; hit), and the origin's access log shows how many requests
# reached it during the measured runs (0 when every answer was a hit). The caches take
# turns, round after round, so drift in machine speed hits all of them alike.
#
# Figures per cache (median over rounds): requests/s, p50 and p99 latency, and the
# cache's own CPU time per request (user+sys of the process and its children, from
# /proc), which does not depend on where the bottleneck sits; ratios to nginx and to
# Varnish. nginx: one worker, proxy_cache with a keys_zone, proxy_cache_valid,
# proxy_cache_lock, open_file_cache (so a hit does not reopen the cache file).
# Varnish: varnishd -F, malloc storage (64 MB), one thread pool; default VCL logic.
# floodgate: one route / with cache: {enabled: true}, cache.max_bytes 64MB,
# GOMAXPROCS=1. If floodgate cannot be built, refuses the config, or does not answer
# from its cache, the reason is printed and the other rows are still produced.
# The header shows the 1-minute load average before and after the run (the run itself
# adds about 2): other work on the machine skews req/s more than CPU per request.
#
# usage: cache-compare.sh [-b FLOODGATE_BIN] [-d SECONDS] [-c CONNS] [-r ROUNDS]
#                         [-s BODY_BYTES] [-o RESULT_FILE]
# Without -b it builds ./cmd/floodgate from the current directory when it exists.
# Ports used: 127.0.0.1:17002 (origin), 17015 (nginx), 17016 (Varnish),
# 17017 and 17018 (floodgate, its admin API).
set -euo pipefail

dur=8 conns=64 rounds=3 body=128 bin="" out=""
while getopts "b:d:c:r:s:o:h" opt; do
  case $opt in
    b) bin=$OPTARG ;; d) dur=$OPTARG ;; c) conns=$OPTARG ;; r) rounds=$OPTARG ;;
    s) body=$OPTARG ;; o) out=$OPTARG ;;
    *) sed -n '2,29p' "$0"; exit 2 ;;
  esac
done
for v in "$dur" "$conns" "$rounds" "$body"; do
  [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || { echo "-d, -c, -r and -s take positive integers" >&2; exit 2; }
done

p_origin=17002 p_nginx=17015 p_varnish=17016 p_fg=17017 p_fg_admin=17018

. "$(dirname "$0")/lib.sh"
require wrk:wrk nginx:nginx-light varnishd:varnish curl:curl taskset:util-linux

# Refuse to start on top of another run: the ports would clash and the CPUs be shared.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $p_origin $p_nginx $p_varnish $p_fg $p_fg_admin; do
  if listening "$p"; then echo "port 127.0.0.1:$p is in use (another benchmark running?)" >&2; exit 1; fi
done

work=$(mktemp -d -t fg-cache.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  for _ in $(seq 50); do
    local alive=""
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  rm -rf "$work"
}
trap cleanup EXIT

fg_tree="$bin"
notes=()   # lines printed under the table (and written to -o)
note() { notes+=("# $*"); echo "$*" >&2; }

if [ -z "$bin" ] && [ -d ./cmd/floodgate ]; then
  echo "building ./cmd/floodgate..." >&2
  if go build -o "$work/floodgate" ./cmd/floodgate 2>"$work/build.err"; then
    bin="$work/floodgate"
    rev=$(git rev-parse --short HEAD 2>/dev/null || true)
    if [ -n "$rev" ] && ! git diff --quiet HEAD -- 2>/dev/null; then rev+=" with uncommitted changes"; fi
    fg_tree="built from ./cmd/floodgate${rev:+ at $rev}"
  else
    note "floodgate not runnable yet: build failed: $(head -c 600 "$work/build.err" | tr '\n' ' ')"
  fi
fi

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then load_cpu=0; proxy_cpu=1; else load_cpu=0; proxy_cpu=0; fi
pin() { exec taskset -c "$1" "${@:2}"; }

# The origin: nginx, one worker, a fixed body from the page cache, cacheable for an
# hour (with the ETag and Last-Modified nginx adds to static files). Its access log
# counts the requests that got past the caches.
chmod 755 "$work"
head -c "$body" /dev/zero | tr '\0' 'x' >"$work/body"; chmod 644 "$work/body"
cat >"$work/origin.conf" <<EOF
daemon off; worker_processes 1; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 4096; }
http { access_log $work/origin.access; keepalive_requests 1000000;
  server { listen 127.0.0.1:$p_origin backlog=4096;
    location / { default_type text/plain; root $work; try_files /body =404;
      add_header Cache-Control "public, max-age=3600" always; } } }
EOF
pin $load_cpu nginx -c "$work/origin.conf" -p "$work" & pids+=($!)

# nginx as a caching proxy: one worker, the cache's files on disk (in the page cache)
# with their descriptors kept open between hits.
mkdir -p "$work/nginx-cache"
cat >"$work/nginx-cache.conf" <<EOF
daemon off; worker_processes 1; pid $work/nginx-cache.pid; error_log $work/nginx-cache.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=bench:16m max_size=64m inactive=1h use_temp_path=off;
  open_file_cache max=1000 inactive=60s;
  upstream origin { server 127.0.0.1:$p_origin; keepalive 64; }
  server { listen 127.0.0.1:$p_nginx backlog=4096;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache bench; proxy_cache_valid 200 1h; proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status always; } } }
EOF

# Varnish: the builtin VCL logic after a backend definition; malloc storage; one thread
# pool with enough threads for every connection wrk opens, started up front.
cat >"$work/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$p_origin"; }
EOF
tmin=$((conns + 100)); tmax=$((conns * 2 + 1000))

cat >"$work/floodgate.yaml" <<EOF
listen: "127.0.0.1:$p_fg"
admin:
  listen: "127.0.0.1:$p_fg_admin"
cache: {max_bytes: 64MB}
pools:
  - name: bench
    backends:
      - {address: "127.0.0.1:$p_origin", weight: 1}
    health: {type: none}
routes:
  - {name: all, path_prefix: /, pool: bench, cache: {enabled: true}}
EOF

pin $proxy_cpu nginx -c "$work/nginx-cache.conf" -p "$work" & pids+=($!); np=$!
pin $proxy_cpu varnishd -F -j none -n "$work/varnish" -a "127.0.0.1:$p_varnish" -T none \
  -f "$work/varnish.vcl" -s malloc,64m -p thread_pools=1 -p "thread_pool_min=$tmin" \
  -p "thread_pool_max=$tmax" >"$work/varnish.log" 2>&1 & pids+=($!); vp=$!
names=(nginx-cache varnish)
ports=("$p_nginx" "$p_varnish")
procs=("$np" "$vp")
if [ -n "$bin" ]; then
  if ! "$bin" -check -config "$work/floodgate.yaml" >"$work/floodgate.check" 2>&1; then
    note "floodgate not runnable yet: $(tr '\n' ' ' <"$work/floodgate.check" | sed "s#$work/##g; s/ *$//")"
  else
    GOMAXPROCS=1 pin $proxy_cpu "$bin" -config "$work/floodgate.yaml" >"$work/floodgate.log" 2>&1 & pids+=($!); fp=$!
    names+=(floodgate); ports+=("$p_fg"); procs+=("$fp")
  fi
fi

# Drop a proxy from the run (floodgate only; the others are the script's own setup).
drop() {
  local i=$1 j; local n2=() p2=() c2=()
  for j in "${!names[@]}"; do
    [ "$j" = "$i" ] && continue
    n2+=("${names[$j]}"); p2+=("${ports[$j]}"); c2+=("${procs[$j]}")
  done
  names=("${n2[@]}"); ports=("${p2[@]}"); procs=("${c2[@]}")
}

# Wait until every proxy answers (at most 20 s each).
for i in "${!names[@]}"; do
  ok=""
  for _ in $(seq 200); do
    if curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:${ports[$i]}/"; then ok=1; break; fi
    kill -0 "${procs[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    if [ "${names[$i]}" = floodgate ]; then
      note "floodgate not runnable yet: does not answer on port ${ports[$i]}: $(tail -c 600 "$work/floodgate.log" | tr '\n' ' ' | sed 's/ *$//')"
      drop "$i"; break
    fi
    echo "${names[$i]} does not answer on port ${ports[$i]}" >&2
    cat "$work/${names[$i]}.log" "$work/${names[$i]}.err" 2>/dev/null >&2 || true
    exit 1
  fi
done

# Warm every cache, then check that it answers from its store.
hdr() { curl -fs --max-time 2 -D - -o /dev/null "http://127.0.0.1:$1/" | tr -d '\r'; }
is_hit() {
  local name=$1 h=$2
  case $name in
    nginx-cache) grep -qi '^X-Cache-Status: HIT$' <<<"$h" ;;
    varnish) grep -Eqi '^X-Varnish: [0-9]+ [0-9]+$' <<<"$h" || grep -Eqi '^Age: [1-9]' <<<"$h" ;;
    floodgate) grep -Eqi '^Cache-Status:.*floodgate; hit' <<<"$h" ;;
  esac
}
for i in "${!names[@]}"; do
  for _ in 1 2 3 4 5; do hdr "${ports[$i]}" >/dev/null || true; done
done
sleep 0.2
i=0
while [ "$i" -lt "${#names[@]}" ]; do
  h=$(hdr "${ports[$i]}" || true)
  if ! is_hit "${names[$i]}" "$h"; then
    if [ "${names[$i]}" = floodgate ]; then
      note "floodgate answers but not from its cache: $(grep -i -E '^(HTTP|Cache-Status|Age)' <<<"$h" | tr '\n' ' ')"
      drop "$i"; continue
    fi
    echo "${names[$i]} does not answer from its cache:" >&2; echo "$h" >&2; exit 1
  fi
  echo "${names[$i]} hit: $(grep -i -E '^(X-Cache-Status|X-Varnish|Cache-Status|Age):' <<<"$h" | tr '\n' ' ')" >&2
  i=$((i + 1))
done

# CPU ticks (user+sys) of a process and its children (nginx's worker, Varnish's child).
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{print $14+$15}' "/proc/$p/stat") ))
  done
  echo $total
}
hz=$(getconf CLK_TCK)
origin_reqs() { wc -l <"$work/origin.access" 2>/dev/null || echo 0; }

# Latency in wrk's "--latency" form to microseconds.
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print "nan"}'; }

load1=$(cut -d' ' -f1 /proc/loadavg)
results="$work/results.tsv"
: >"$results"
declare -A passed
for r in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    url="http://127.0.0.1:${ports[$i]}/"
    o0=$(origin_reqs)
    t0=$(ticks "${procs[$i]}")
    w=$(pin $load_cpu timeout $((dur + 30)) wrk -t1 -c"$conns" -d"${dur}s" --latency "$url" 2>&1) || true
    t1=$(ticks "${procs[$i]}")
    o1=$(origin_reqs)
    passed[${names[$i]}]=$(( ${passed[${names[$i]}]:-0} + o1 - o0 ))
    rps=$(awk '/^Requests\/sec/{print $2}' <<<"$w")
    p50=$(to_us "$(awk '$1=="50%"{print $2}' <<<"$w")")
    p99=$(to_us "$(awk '$1=="99%"{print $2}' <<<"$w")")
    reqs=$(awk '/requests in/{print $1}' <<<"$w")
    errs=$(awk '/Non-2xx|Socket errors/{printf "%s ", $0}' <<<"$w")
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${reqs:-0}" 'BEGIN{ if (n>0) printf "%.2f", t/hz*1e6/n; else print "nan" }')
    printf "%s\t%s\t%s\t%s\t%s\t%s\n" "${names[$i]}" "$r" "${rps:-nan}" "$p50" "$p99" "$cpu_us" >>"$results"
    [ -n "$errs" ] && echo "${names[$i]} round $r: $errs" >&2
    [ -z "$rps" ] && { echo "${names[$i]} round $r: wrk failed:" >&2; echo "$w" >&2; }
  done
done

report=$(python3 - "$results" <<'EOF'
import sys, math, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().splitlines() if l]
by = {}
for n, r, rps, p50, p99, cpu in rows:
    by.setdefault(n, []).append((float(rps), float(p50), float(p99), float(cpu)))
def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return st.median(xs) if xs else float('nan')
m = {n: [med([x[i] for x in v]) for i in range(4)] for n, v in by.items()}
ng, vn = m.get('nginx-cache'), m.get('varnish')
def ratio(a, b): return a / b if b and b == b and b != 0 else float('nan')
print(f"{'proxy':<14}{'req/s':>10}{'p50 us':>9}{'p99 us':>9}{'cpu us/req':>12}"
      f"{'req/s vs nginx':>16}{'cpu vs nginx':>14}{'req/s vs varnish':>18}{'cpu vs varnish':>16}")
for n, (rps, p50, p99, cpu) in m.items():
    print(f"{n:<14}{rps:>10.0f}{p50:>9.0f}{p99:>9.0f}{cpu:>12.2f}"
          f"{ratio(rps, ng[0] if ng else 0):>16.2f}{ratio(cpu, ng[3] if ng else 0):>14.2f}"
          f"{ratio(rps, vn[0] if vn else 0):>18.2f}{ratio(cpu, vn[3] if vn else 0):>16.2f}")
EOF
)
notes+=("# versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(varnishd -V 2>&1 | head -1 | sed 's/ revision.*/)/'), floodgate ${fg_tree:--}")
summary=""
for n in "${names[@]}"; do summary+="$n ${passed[$n]:-0}, "; done
notes+=("# origin requests during the measured runs (0 = every answer a hit): ${summary%, }")
hdr="# $(date -u +%Y-%m-%dT%H:%MZ) cache hits body=${body}B conns=$conns dur=${dur}s rounds=$rounds cpus=$ncpu load1=$load1->$(cut -d' ' -f1 /proc/loadavg) (medians)"
echo "$hdr"; echo "$report"; printf '%s\n' "${notes[@]}"
if [ -n "$out" ]; then { echo "$hdr"; echo "$report"; printf '%s\n' "${notes[@]}"; } >>"$out"; fi
