#!/usr/bin/env bash
# tls-compare.sh: floodgate beside HAProxy as TLS-terminating HTTP/1.1 reverse proxies,
# with the same certificate (a self-signed ECDSA P-256 one made here with openssl), on
# this machine, in one run, in the style of bench/compare.sh. Each proxy gets
# one CPU (the second one); the load generators and the backend (nginx returning a
# fixed body over plain HTTP) share the first. Proxies take turns, round after round.
#
# Three tests per proxy, each request a GET of / answered by the backend:
#   full-hs     a new connection and a FULL handshake for every request:
#               `openssl s_time -new` (8 processes in parallel), HTTP/1.0, the
#               server closes after the response. wrk cannot do this: it keeps the TLS
#               session of its last connection and resumes it (checked here:
#               HAProxy counts 100% session reuse under wrk -H "Connection: close").
#               s_time reports no latency, hence "-" in the p50/p99 columns.
#   resumed-hs  a new connection per request with a RESUMED handshake (TLS 1.3 PSK
#               from a session ticket, with (EC)DHE): wrk -H "Connection: close".
#   keepalive   TLS keep-alive: wrk, CONNS connections.
# Figures per proxy and test (median over rounds): requests (= handshakes in the two
# -hs tests) per second, p50 and p99 latency, the proxy's own CPU time per request
# (user+sys, from /proc; per handshake+request in the -hs tests), and ratios to
# HAProxy. The negotiated protocol, cipher, key exchange and whether the proxy resumes
# sessions are printed under the table. HAProxy runs with its defaults (nbthread 1)
# except that it prefers TLS_AES_128_GCM_SHA256, the TLS 1.3 cipher Go picks, so that
# both encrypt alike (OpenSSL's own first choice is AES-256-GCM); floodgate runs with
# GOMAXPROCS=1. If floodgate cannot be built or refuses the config, the
# reason is printed and the HAProxy rows are still produced.
# The header shows the 1-minute load average before and after the run (the run itself
# adds about 2): other work on the machine skews req/s more than CPU per request.
#
# usage: tls-compare.sh [-b FLOODGATE_BIN] [-d SECONDS] [-c CONNS] [-r ROUNDS]
#                       [-s BODY_BYTES] [-o RESULT_FILE]
# Without -b it builds ./cmd/floodgate from the current directory when it exists.
# Ports used: 127.0.0.1:17003 (backend), 17019 (HAProxy), 17020 (floodgate TLS),
# 17004 and 17005 (floodgate plain HTTP listener and admin API).
set -euo pipefail

dur=8 conns=64 rounds=3 body=128 bin="" out=""
while getopts "b:d:c:r:s:o:h" opt; do
  case $opt in
    b) bin=$OPTARG ;; d) dur=$OPTARG ;; c) conns=$OPTARG ;; r) rounds=$OPTARG ;;
    s) body=$OPTARG ;; o) out=$OPTARG ;;
    *) sed -n '2,34p' "$0"; exit 2 ;;
  esac
done
for v in "$dur" "$conns" "$rounds" "$body"; do
  [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || { echo "-d, -c, -r and -s take positive integers" >&2; exit 2; }
done
stime_procs=8

p_backend=17003 p_haproxy=17019 p_fg_tls=17020 p_fg=17004 p_fg_admin=17005

. "$(dirname "$0")/lib.sh"
require wrk:wrk haproxy:haproxy nginx:nginx-light openssl:openssl curl:curl taskset:util-linux

# Refuse to start on top of another run: the ports would clash and the CPUs be shared.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $p_backend $p_haproxy $p_fg_tls $p_fg $p_fg_admin; do
  if listening "$p"; then echo "port 127.0.0.1:$p is in use (another benchmark running?)" >&2; exit 1; fi
done

work=$(mktemp -d -t fg-tls.XXXXXX)
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

# One certificate for both: self-signed ECDSA P-256, for localhost and 127.0.0.1.
chmod 755 "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"

# The backend: nginx, one worker, a fixed body from the page cache.
head -c "$body" /dev/zero | tr '\0' 'x' >"$work/body"; chmod 644 "$work/body"
cat >"$work/backend.conf" <<EOF
daemon off; worker_processes 1; pid $work/backend.pid; error_log $work/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$p_backend backlog=4096; location / { default_type text/plain; root $work; try_files /body =404; } } }
EOF
pin $load_cpu nginx -c "$work/backend.conf" -p "$work" & pids+=($!)

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$p_haproxy backlog 4096 ssl crt $work/haproxy.pem
  default_backend be
backend be
  server s1 127.0.0.1:$p_backend maxconn 1000
EOF
cat >"$work/floodgate.yaml" <<EOF
listen: "127.0.0.1:$p_fg"
tls:
  listen: "127.0.0.1:$p_fg_tls"
  certificates:
    - {cert_file: "$work/cert.pem", key_file: "$work/key.pem"}
admin:
  listen: "127.0.0.1:$p_fg_admin"
pools:
  - name: bench
    backends:
      - {address: "127.0.0.1:$p_backend", weight: 1}
    health: {type: none}
routes:
  - {name: all, path_prefix: /, pool: bench}
EOF

pin $proxy_cpu haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!); hp=$!
names=(haproxy)
ports=("$p_haproxy")
procs=("$hp")
if [ -n "$bin" ]; then
  if ! "$bin" -check -config "$work/floodgate.yaml" >"$work/floodgate.check" 2>&1; then
    note "floodgate not runnable yet: $(tr '\n' ' ' <"$work/floodgate.check" | sed "s#$work/##g; s/ *$//")"
  else
    GOMAXPROCS=1 pin $proxy_cpu "$bin" -config "$work/floodgate.yaml" >"$work/floodgate.log" 2>&1 & pids+=($!); fp=$!
    names+=(floodgate); ports+=("$p_fg_tls"); procs+=("$fp")
  fi
fi

# The request s_time sends is "GET <page> HTTP/1.0\r\n\r\n"; the page carries a Host
# header so that the request is one every proxy must accept.
stime_page=$'/ HTTP/1.0\r\nHost: localhost\r\nX-Bench:'
https_get() {  # prints the status line of GET / over a new TLS connection
  printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
    timeout 5 openssl s_client -quiet -connect "127.0.0.1:$1" -servername localhost 2>/dev/null | head -1 | tr -d '\r'
}

# Wait until every proxy answers over TLS (at most 20 s each).
for i in "${!names[@]}"; do
  ok=""
  for _ in $(seq 200); do
    if curl -fsk --max-time 2 -o /dev/null "https://127.0.0.1:${ports[$i]}/"; then ok=1; break; fi
    kill -0 "${procs[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    if [ "${names[$i]}" = floodgate ]; then
      note "floodgate not runnable yet: does not answer on port ${ports[$i]}: $(tail -c 600 "$work/floodgate.log" | tr '\n' ' ' | sed 's/ *$//')"
      unset 'names[i]' 'ports[i]' 'procs[i]'
      names=("${names[@]}"); ports=("${ports[@]}"); procs=("${procs[@]}")
      break
    fi
    echo "${names[$i]} does not answer on port ${ports[$i]}" >&2
    cat "$work/${names[$i]}.log" >&2 || true
    exit 1
  fi
done

# What each proxy negotiates with OpenSSL's client (wrk and s_time use OpenSSL too),
# whether it resumes a session, and the status s_time's request gets.
for i in "${!names[@]}"; do
  # stdin stays open a moment so that s_client reads the TLS 1.3 session tickets.
  s=$(sleep 0.5 | timeout 5 openssl s_client -connect "127.0.0.1:${ports[$i]}" -servername localhost \
        -sess_out "$work/sess.$i" 2>&1 || true)
  proto=$(awk '/^New, /{sub(/,$/, "", $2); print $2; exit}' <<<"$s")
  cipher=$(awk '/^New, /{print $NF; exit}' <<<"$s")
  kex=$(awk -F': *' '/^Server Temp Key/{print $2; exit}' <<<"$s")
  sig=$(awk -F': *' '/^Peer signature type/{print $2; exit}' <<<"$s")
  resumed=no
  if [ -s "$work/sess.$i" ]; then
    s=$(sleep 0.5 | timeout 5 openssl s_client -connect "127.0.0.1:${ports[$i]}" -servername localhost \
          -sess_in "$work/sess.$i" 2>&1 || true)
    grep -q '^Reused,' <<<"$s" && resumed=yes
  fi
  status=$(https_get "${ports[$i]}")
  note "${names[$i]}: ${proto:-?} ${cipher:-?}, key exchange ${kex:-?}, signature ${sig:-?}, session resumption $resumed, s_time request gets \"$status\""
  [[ $status == *" 200"* ]] || { echo "${names[$i]}: the s_time request does not get a 200" >&2; exit 1; }
done

# CPU ticks (user+sys) of a process and its children.
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{print $14+$15}' "/proc/$p/stat") ))
  done
  echo $total
}
hz=$(getconf CLK_TCK)

# Latency in wrk's "--latency" form to microseconds.
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print "nan"}'; }

# One wrk run: prints "rps p50 p99 requests", warnings on stderr.
run_wrk() {
  local label=$1 url=$2; shift 2
  local w rps p50 p99 reqs errs
  w=$(pin $load_cpu timeout $((dur + 30)) wrk -t1 -c"$conns" -d"${dur}s" --latency "$@" "$url" 2>&1) || true
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$w")
  p50=$(to_us "$(awk '$1=="50%"{print $2}' <<<"$w")")
  p99=$(to_us "$(awk '$1=="99%"{print $2}' <<<"$w")")
  reqs=$(awk '/requests in/{print $1}' <<<"$w")
  errs=$(awk '/Non-2xx|Socket errors/{printf "%s ", $0}' <<<"$w")
  [ -n "$errs" ] && echo "$label: $errs" >&2
  [ -z "$rps" ] && { echo "$label: wrk failed:" >&2; echo "$w" >&2; }
  echo "${rps:-nan} $p50 $p99 ${reqs:-0}"
}

# One s_time run: stime_procs processes of `openssl s_time -new` for dur seconds;
# prints "rate nan nan connections".
run_stime() {
  local label=$1 port=$2 k start end n
  start=$(date +%s.%N)
  for k in $(seq "$stime_procs"); do
    pin $load_cpu timeout $((dur + 30)) openssl s_time -connect "127.0.0.1:$port" -new \
      -www "$stime_page" -time "$dur" >"$work/stime.$k" 2>&1 &
  done
  wait
  end=$(date +%s.%N)
  n=$(cat "$work"/stime.* | awk '/connections in .* real seconds/{s+=$1} END{print s+0}')
  if grep -qi error "$work"/stime.*; then echo "$label: s_time reported errors: $(grep -hi error "$work"/stime.* | sort | uniq -c | head -3 | tr '\n' ' ')" >&2; fi
  rm -f "$work"/stime.*
  awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN{ if (n>0) printf "%.1f nan nan %d\n", n/(e-s), n; else print "nan nan nan 0" }'
}

notes+=("# versions: $(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy", $3}'), $(openssl version | awk '{print $1, $2}'), floodgate ${fg_tree:--}")
load1=$(cut -d' ' -f1 /proc/loadavg)
results="$work/results.tsv"
: >"$results"
for r in $(seq "$rounds"); do
  for test in full-hs resumed-hs keepalive; do
    for i in "${!names[@]}"; do
      url="https://127.0.0.1:${ports[$i]}/"
      label="${names[$i]} $test round $r"
      t0=$(ticks "${procs[$i]}")
      case $test in
        full-hs) res=$(run_stime "$label" "${ports[$i]}") ;;
        resumed-hs) res=$(run_wrk "$label" "$url" -H "Connection: close") ;;
        keepalive) res=$(run_wrk "$label" "$url") ;;
      esac
      t1=$(ticks "${procs[$i]}")
      read -r rps p50 p99 reqs <<<"$res"
      cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN{ if (n>0) printf "%.2f", t/hz*1e6/n; else print "nan" }')
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$test" "${names[$i]}" "$r" "$rps" "$p50" "$p99" "$cpu_us" >>"$results"
    done
  done
done

report=$(python3 - "$results" <<'EOF'
import sys, math, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().splitlines() if l]
by = {}
for t, n, r, rps, p50, p99, cpu in rows:
    by.setdefault((t, n), []).append((float(rps), float(p50), float(p99), float(cpu)))
def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return st.median(xs) if xs else float('nan')
m = {k: [med([x[i] for x in v]) for i in range(4)] for k, v in by.items()}
def f(v, w, p=0): return f"{'-':>{w}}" if math.isnan(v) else f"{v:>{w}.{p}f}"
def ratio(a, b): return a / b if b == b and b else float('nan')
print(f"{'test':<12}{'proxy':<11}{'req/s':>10}{'p50 us':>9}{'p99 us':>9}{'cpu us/req':>12}{'req/s vs haproxy':>18}{'cpu vs haproxy':>16}")
for (t, n), (rps, p50, p99, cpu) in m.items():
    base = m.get((t, 'haproxy'), [float('nan')] * 4)
    print(f"{t:<12}{n:<11}{f(rps, 10)}{f(p50, 9)}{f(p99, 9)}{f(cpu, 12, 2)}"
          f"{f(ratio(rps, base[0]), 18, 2)}{f(ratio(cpu, base[3]), 16, 2)}")
EOF
)
hdr="# $(date -u +%Y-%m-%dT%H:%MZ) tls body=${body}B conns=$conns s_time-procs=$stime_procs dur=${dur}s rounds=$rounds cpus=$ncpu load1=$load1->$(cut -d' ' -f1 /proc/loadavg) (medians)"
echo "$hdr"; echo "$report"; printf '%s\n' "${notes[@]}"
if [ -n "$out" ]; then { echo "$hdr"; echo "$report"; printf '%s\n' "${notes[@]}"; } >>"$out"; fi
