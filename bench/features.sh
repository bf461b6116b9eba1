#!/usr/bin/env bash
# features.sh: a stand-in floodgate binary for bench/compare.sh that turns
# on the edge features before starting the real binary: an access list, a per-client
# rate limit and the JSON access log (to a file). compare.sh passes -config PATH;
# this script rewrites that config and execs floodgate with it.
#   FLOODGATE_BIN=/path/to/floodgate bash bench/compare.sh -b bench/features.sh
set -euo pipefail
bin=${FLOODGATE_BIN:?set FLOODGATE_BIN to the floodgate binary}
cfg=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "-config" ] && cfg=${args[$((i + 1))]}
done
[ -n "$cfg" ] || { echo "features.sh: no -config" >&2; exit 2; }
out="${cfg%.yaml}-features.yaml"
log="$(dirname "$cfg")/access.log"
# The route line of compare.sh's config gains the guards; the access log goes on top.
sed -e "s#{name: all, path_prefix: /, pool: bench}#{name: all, path_prefix: /, pool: bench, allow_cidrs: [\"127.0.0.0/8\", \"::1/128\"], deny_cidrs: [\"10.0.0.0/8\"], rate_limit: {key: ip, rate: 1000000/s, burst: 1000000}}#" "$cfg" >"$out"
printf 'access_log: {path: %s}\n' "$log" >>"$out"
grep -q allow_cidrs "$out" || { echo "features.sh: route line not found in $cfg" >&2; exit 2; }
exec "$bin" -config "$out"
