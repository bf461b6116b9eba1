# lib.sh: what the bench scripts share. Source it: . "$(dirname "$0")/lib.sh"

# require COMMAND:PACKAGE...: installs from Debian the packages of the commands
# that are missing, all in one apt-get run.
require() {
  local missing=() spec
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} from Debian packages..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
}
