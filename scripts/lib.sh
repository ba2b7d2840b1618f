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

# have_pkg NAME: the Debian package is installed (`dpkg -s` also succeeds for a removed package
# whose configuration files remain).
have_pkg() { [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]; }

# Debian packages, only those missing. A temporary policy-rc.d (exit 101) keeps the orthanc
# package's own service from starting on 0.0.0.0:8042 during the install.
apt_install() {
  local created_policy=0 log_file
  if ((EUID != 0)); then
    die "missing: $*. Install them as root (apt-get install -y $*) or run this script as root"
  fi
  command -v apt-get >/dev/null || die "missing: $* and no apt-get here: install them with this system's package manager"
  if ! { [[ -x /usr/sbin/policy-rc.d ]] && grep -q 'exit 101' /usr/sbin/policy-rc.d; }; then
    [[ -e /usr/sbin/policy-rc.d ]] &&
      die "/usr/sbin/policy-rc.d exists and does not refuse service starts; install '$*' by hand (services must not autostart)"
    printf '#!/bin/sh\n# temporary, from vigie scripts/lib.sh: no service starts during apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log_file="$(mktemp)"
  log "apt-get install $*"
  local ok=1
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$log_file" 2>&1 || ok=0
  ((created_policy)) && rm -f /usr/sbin/policy-rc.d
  if ((!ok)); then
    tail -20 "$log_file" >&2
    rm -f "$log_file"
    die "apt-get install $* failed (output above): check the network and /etc/apt/sources.list, then run again"
  fi
  rm -f "$log_file"
}
