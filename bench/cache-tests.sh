#!/usr/bin/env bash
# cache-tests.sh: run the public HTTP cache conformance suite (http-tests/cache-tests,
# https://github.com/http-tests/cache-tests) against floodgate on loopback and print,
# per test category, how many of the suite's required tests pass.
#
# usage: bench/cache-tests.sh [-k] [-p PORT_BASE] [-o RESULTS_JSON] SUITE_CHECKOUT_PATH
#   SUITE_CHECKOUT_PATH  a checkout of the suite (git clone ...; the script runs
#                        `npm install --omit=dev` there when node_modules is missing)
#   -p PORT_BASE         origin on PORT_BASE, floodgate on +1, its admin API on +2
#                        (default 18000)
#   -o RESULTS_JSON      keep the CLI's raw results (the suite's JSON format)
#   -k                   keep the work directory (config, logs) and print its path
#
# Run from the floodgate checkout: it builds ./cmd/floodgate, writes a plain config
# (one pool with the suite's origin on 127.0.0.1, one route for / with the cache on,
# default passive health, no active health check), starts the origin and floodgate,
# runs the suite's CLI against floodgate, and stops both. "Required" is what the
# suite counts as required (test-engine/lib/results.mjs: kind "required" or no kind),
# over the tests the CLI runs (browser_only tests are skipped by the CLI); a test
# passes when the suite's own determineTestResult says "pass" with its dependencies
# honoured, as on cache-tests.fyi. Exit status 0 when the run completed (whatever the
# score), 1 when something could not be started or floodgate died during the run.
set -euo pipefail

port_base=18000 out="" keep=""
while getopts "p:o:kh" opt; do
  case $opt in
    p) port_base=$OPTARG ;; o) out=$OPTARG ;; k) keep=1 ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { sed -n '2,22p' "$0" >&2; exit 2; }
suite=$(cd "$1" && pwd)
[ -f "$suite/test-engine/cli.mjs" ] && [ -f "$suite/tests/index.mjs" ] ||
  { echo "$suite does not look like a cache-tests checkout" >&2; exit 2; }
[[ $port_base =~ ^[0-9]+$ ]] || { echo "-p takes a port number" >&2; exit 2; }
p_origin=$port_base p_fg=$((port_base + 1)) p_admin=$((port_base + 2))

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $p_origin $p_fg $p_admin; do
  if listening "$p"; then echo "port 127.0.0.1:$p is in use" >&2; exit 1; fi
done

work=$(mktemp -d -t fg-cache-tests.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=""
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  if [ -n "$keep" ]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building ./cmd/floodgate..." >&2
go build -o "$work/floodgate" ./cmd/floodgate

if [ ! -d "$suite/node_modules" ]; then
  echo "installing the suite's dependencies (npm install)..." >&2
  (cd "$suite" && npm install --omit=dev --no-audit --no-fund >"$work/npm.log" 2>&1) ||
    { cat "$work/npm.log" >&2; exit 1; }
fi

cat >"$work/floodgate.yaml" <<YAML
listen: "127.0.0.1:$p_fg"
admin:
  listen: "127.0.0.1:$p_admin"
cache: {max_bytes: 64MB}
pools:
  - name: origin
    backends:
      - {address: "127.0.0.1:$p_origin", weight: 1}
routes:
  - {name: all, path_prefix: /, pool: origin, cache: {enabled: true}}
YAML

wait_port() { # port pid what
  for _ in $(seq 100); do
    listening "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "$3 is not listening on 127.0.0.1:$1 after 10s" >&2
  return 1
}

# The suite's server reads its settings from npm's config variables and listens on
# every interface; a preloaded module makes it listen on loopback only.
cat >"$work/loopback.mjs" <<'JS'
import http from 'node:http'
const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' || typeof port === 'string') return listen.call(this, Number(port), '127.0.0.1', ...rest)
  return listen.call(this, port, ...rest)
}
JS
(cd "$suite" && npm_config_protocol=http npm_config_port=$p_origin npm_config_pidfile="$work/origin.pid" \
  exec node --import "$work/loopback.mjs" test-engine/server/server.mjs) >"$work/origin.log" 2>&1 &
pids+=($!); origin_pid=$!
"$work/floodgate" -config "$work/floodgate.yaml" >"$work/floodgate.log" 2>&1 &
pids+=($!); fg_pid=$!
wait_port "$p_origin" "$origin_pid" "the suite's origin" || { cat "$work/origin.log" >&2; exit 1; }
wait_port "$p_fg" "$fg_pid" floodgate || { cat "$work/floodgate.log" >&2; exit 1; }

echo "running the suite against http://127.0.0.1:$p_fg ..." >&2
(cd "$suite" && npm_config_base="http://127.0.0.1:$p_fg" npm_package_config_id="" \
  timeout 600 node --no-warnings test-engine/cli.mjs) >"$work/results.json" 2>"$work/cli.err" || {
  echo "the suite's CLI failed:" >&2; tail -20 "$work/cli.err" >&2; exit 1; }
alive=1
kill -0 "$fg_pid" 2>/dev/null || alive=""
[ -n "$out" ] && cp "$work/results.json" "$out"

cat >"$suite/.floodgate-summary.mjs" <<'JS'
import { readFileSync } from 'node:fs'
import tests from './tests/index.mjs'
import { determineTestResult, resultTypes } from './test-engine/lib/results.mjs'
const results = JSON.parse(readFileSync(process.argv[2], 'utf8'))
let tp = 0, tn = 0
const failed = []
const rows = []
for (const suite of tests) {
  let p = 0, n = 0
  for (const t of suite.tests) {
    if (t.browser_only) continue
    if (t.kind !== undefined && t.kind !== 'required') continue
    n++
    if (determineTestResult(tests, t.id, results) === resultTypes.pass) p++
    else failed.push(`${suite.id}/${t.id}: ${determineTestResult(tests, t.id, results)[2]} ${JSON.stringify(results[t.id] ?? null)}`)
  }
  if (n) rows.push([suite.name, p, n])
  tp += p; tn += n
}
const w = Math.max(...rows.map(r => r[0].length), 5)
console.log(`${'category'.padEnd(w)}  pass  fail  required`)
for (const [name, p, n] of rows) console.log(`${name.padEnd(w)}  ${String(p).padStart(4)}  ${String(n - p).padStart(4)}  ${String(n).padStart(8)}`)
console.log(`${'total'.padEnd(w)}  ${String(tp).padStart(4)}  ${String(tn - tp).padStart(4)}  ${String(tn).padStart(8)}`)
if (process.env.SHOW_FAILED) for (const f of failed) console.error('FAILED ' + f)
JS
(cd "$suite" && node --no-warnings .floodgate-summary.mjs "$work/results.json")
rm -f "$suite/.floodgate-summary.mjs"
if [ -z "$alive" ]; then
  echo "floodgate died during the run; its log:" >&2; tail -40 "$work/floodgate.log" >&2
  exit 1
fi
