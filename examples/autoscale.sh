#!/usr/bin/env bash
# autoscale.sh: register this instance with floodgate on boot, deregister it on
# shutdown. Run it beside the application on each autoscaled instance (a systemd
# unit, a container entrypoint, a sidecar):
#
#   FLOODGATE_POOL=shop BACKEND_ADDRESS=10.0.1.7:8080 ./autoscale.sh            # waits for SIGTERM
#   FLOODGATE_POOL=shop BACKEND_ADDRESS=10.0.1.7:8080 ./autoscale.sh myapp -p 8080
#
# With a command, it starts the command, registers the instance, and when the
# command exits (or the script gets SIGTERM/SIGINT) deregisters first, so that
# floodgate drains the instance, and only then stops the command: no request is
# sent to an application that is going away.
#
# Settings, from the environment:
#   FLOODGATE_ADMIN        admin API base URL               (default http://127.0.0.1:9090)
#   FLOODGATE_TOKEN_FILE   file holding the admin token      (default: no token)
#   FLOODGATE_POOL         pool to join                      (required)
#   BACKEND_ADDRESS        host:port floodgate should use    (required)
#   BACKEND_WEIGHT         weight, 0-1000                    (default 1)
#   RETRY_MAX              attempts per call                 (default 10)
#   RETRY_INITIAL          first backoff, seconds            (default 0.5)
#   RETRY_CAP              longest backoff, seconds          (default 30)
#   DEREGISTER_TIMEOUT     seconds one DELETE may take; it waits for the
#                          instance's requests to finish     (default 120)
#
# Registering is idempotent (201 the first time, 200 after), so retries are
# safe. Calls are retried with exponential backoff and jitter on connection
# errors, 5xx and 409 (the address is still being removed); other 4xx answers are
# mistakes that retrying will not fix, and stop the script. The token never
# appears on a command line (curl reads it from a private header file).
#
# Exit status: 0 after a clean deregistration, 1 if registration or
# deregistration failed, else the command's own status.
set -euo pipefail

admin="${FLOODGATE_ADMIN:-http://127.0.0.1:9090}"
pool="${FLOODGATE_POOL:?set FLOODGATE_POOL to the pool to join}"
address="${BACKEND_ADDRESS:?set BACKEND_ADDRESS to this instance host:port}"
weight="${BACKEND_WEIGHT:-1}"
retry_max="${RETRY_MAX:-10}"
retry_initial="${RETRY_INITIAL:-0.5}"
retry_cap="${RETRY_CAP:-30}"
deregister_timeout="${DEREGISTER_TIMEOUT:-120}"

log() { printf '%s autoscale: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

work="$(mktemp -d)"
chmod 700 "$work"
headers="$work/headers"
: >"$headers"
chmod 600 "$headers"
printf 'Content-Type: application/json\n' >>"$headers"
if [[ -n "${FLOODGATE_TOKEN_FILE:-}" ]]; then
  token="$(head -n 1 "$FLOODGATE_TOKEN_FILE" | tr -d '\r\n')"
  printf 'Authorization: Bearer %s\n' "$token" >>"$headers"
  unset token
fi

# The address goes into a URL path: percent-encode what is not a plain
# host:port character (IPv6 brackets).
urlencode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9.:_~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# call METHOD PATH [BODY] [MAX_TIME]: one request; prints the HTTP status
# (000 when the connection failed) and leaves the answer in $work/body.
call() {
  local method="$1" path="$2" body="${3:-}" max_time="${4:-10}"
  local args=(-sS -o "$work/body" -w '%{http_code}' -X "$method" -H "@$headers" --max-time "$max_time")
  [[ -n "$body" ]] && args+=(--data "$body")
  curl "${args[@]}" "$admin$path" 2>"$work/curl.err" || true
}

# backoff N: sleep for the N-th backoff (from 1): initial * 2^(N-1), capped,
# with up to 50% jitter so that a fleet restarting together does not retry in
# lockstep.
backoff() {
  awk -v n="$1" -v i="$retry_initial" -v cap="$retry_cap" -v r="$RANDOM" \
    'BEGIN { d = i * 2 ^ (n - 1); if (d > cap) d = cap; printf "%.3f", d * (0.5 + (r % 1000) / 2000) }'
}

# with_retry WHAT METHOD PATH BODY MAX_TIME OK_CODES: retry until one of the
# space-separated OK_CODES; returns 1 on a final failure.
with_retry() {
  local what="$1" method="$2" path="$3" body="$4" max_time="$5" ok="$6" code attempt delay
  for ((attempt = 1; attempt <= retry_max; attempt++)); do
    code="$(call "$method" "$path" "$body" "$max_time")"
    if [[ " $ok " == *" $code "* ]]; then
      log "$what: $code $(tr -d '\n' <"$work/body" | cut -c1-200)"
      return 0
    fi
    case "$code" in
      000) log "$what: attempt $attempt: cannot reach $admin: $(tr -d '\n' <"$work/curl.err")" ;;
      5?? | 409) log "$what: attempt $attempt: $code $(tr -d '\n' <"$work/body")" ;;
      *)
        log "$what: $code $(tr -d '\n' <"$work/body"); not retrying"
        return 1
        ;;
    esac
    if ((attempt < retry_max)); then
      delay="$(backoff "$attempt")"
      log "$what: retrying in ${delay}s"
      sleep "$delay"
    fi
  done
  log "$what: giving up after $retry_max attempts"
  return 1
}

register() {
  with_retry "register $address in pool $pool" POST "/api/v1/pools/$pool/backends" \
    "{\"address\": \"$address\", \"weight\": $weight}" 10 "200 201"
}

# deregister drains the instance and removes it; 404 means it is gone already.
deregister() {
  with_retry "deregister $address from pool $pool" DELETE \
    "/api/v1/pools/$pool/backends/$(urlencode "$address")" "" "$deregister_timeout" "200 404"
}

child=""
sleeper=""
registered=0
status=0
shutdown() {
  trap - TERM INT
  [[ -z "$sleeper" ]] || kill "$sleeper" 2>/dev/null || true
  if ((registered)); then
    deregister || status=1
  else
    # Stopped while still registering: an attempt may have reached floodgate
    # without its answer reaching us, so try once, without insisting.
    retry_max=1 deregister || true
    status=1
  fi
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" || true
  fi
  rm -rf "$work"
  exit "$status"
}

if (($# > 0)); then
  "$@" &
  child=$!
fi
trap shutdown TERM INT
if ! register; then
  [[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null || true
  rm -rf "$work"
  exit 1
fi
registered=1

if [[ -n "$child" ]]; then
  # The command ended on its own: leave the pool with its status.
  wait "$child" || status=$?
  child=""
  shutdown
fi
# No command: hold until told to stop. wait returns at once on a signal, so the
# trap runs without delay.
sleep infinity &
sleeper=$!
wait "$sleeper" || true
shutdown
