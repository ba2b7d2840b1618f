# Shared helpers for the scripts in this folder (sourced, not run).
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_port: asks the kernel for a free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 limit=${2:-20} i
  for ((i = 0; i < limit * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Python tools (sslyze) live in a venv under target/, created on first use.
py_tool() {
  local venv="$ROOT/target/py-venv"
  if [[ ! -x "$venv/bin/$1" ]]; then
    log "installing $2 into $venv"
    python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install -q "$2" || die "pip install $2 failed"
  fi
  echo "$venv/bin/$1"
}
