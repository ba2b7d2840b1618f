# Starting a real Orthanc for the test scripts (sourced by scripts/e2e.sh and scripts/bench.sh,
# after scripts/lib.sh or with ROOT set). Orthanc 1.10 has no option for its bind address and
# listens on every interface: it runs with tests/e2e/loopback-bind.c preloaded, which turns
# wildcard binds into 127.0.0.1 / ::1.
# shellcheck shell=bash

ORTHANC_BIN="${ORTHANC_BIN:-/usr/sbin/Orthanc}"
ORTHANC_SHIM_SRC="$ROOT/tests/e2e/loopback-bind.c"
ORTHANC_SHIM="$ROOT/target/e2e/loopback-bind.so"

# orthanc_shim: builds the preload library when it is missing or older than its source.
orthanc_shim() {
  mkdir -p "$(dirname "$ORTHANC_SHIM")"
  if [[ ! -f "$ORTHANC_SHIM" || "$ORTHANC_SHIM_SRC" -nt "$ORTHANC_SHIM" ]]; then
    gcc -shared -fPIC -O2 -Wall -o "$ORTHANC_SHIM" "$ORTHANC_SHIM_SRC" -ldl
  fi
}

# orthanc_start CONFIG LOGFILE STDOUT: starts Orthanc in the background with the shim; sets
# ORTHANC_PID.
orthanc_start() {
  LD_PRELOAD="$ORTHANC_SHIM" "$ORTHANC_BIN" --logfile="$2" "$1" >"$3" 2>&1 &
  ORTHANC_PID=$!
}

# orthanc_wait URL TRIES [CURL ARGS...]: polls URL every 0.1 s until it answers 200.
# Returns 0 when it does, 1 when Orthanc exited, 2 after TRIES polls.
orthanc_wait() {
  local url=$1 tries=$2 i
  shift 2
  for ((i = 0; i < tries; i++)); do
    kill -0 "$ORTHANC_PID" 2>/dev/null || return 1
    [[ "$(curl -sS "$@" -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null)" == 200 ]] && return 0
    sleep 0.1
  done
  return 2
}

# orthanc_loopback_only PID: whether every TCP listener of PID is on a loopback address
# (false when it has none).
orthanc_loopback_only() {
  local addrs
  addrs=$(ss -Hltnp 2>/dev/null | grep "pid=$1," | awk '{print $4}')
  [[ -n "$addrs" ]] && ! grep -qvE '^(127\.[0-9.]+|\[::1\]):[0-9]+$' <<<"$addrs"
}
