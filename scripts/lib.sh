# Shared helpers for the scripts in this folder (sourced, not run).
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_ports [N]: asks the kernel for N (default 1) free TCP ports on loopback, printed on one
# line; the N sockets are held together while it picks, so the ports differ.
free_ports() {
  python3 -c 'import socket, sys; s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' "${1:-1}"
}
free_port() { free_ports 1; }

# totp_tool debug|release: prints the path of the TOTP helper, the cargo example examples/totp.rs
# (Vigie's own implementation; the secret on its standard input), building it on first use (the
# debug build, or the release one). VIGIE_TOTP_BIN points at another build.
totp_tool() {
  local profile=debug flags=()
  if [[ "${1:-}" == release ]]; then profile=release flags=(--release); fi
  local bin="${VIGIE_TOTP_BIN:-$ROOT/target/$profile/examples/totp}"
  if [[ ! -x "$bin" ]]; then
    [[ -z "${VIGIE_TOTP_BIN:-}" ]] || die "VIGIE_TOTP_BIN=$bin is not an executable"
    log "building the TOTP helper (cargo build ${flags[*]} --example totp)"
    (cd "$ROOT" && cargo build --locked --quiet "${flags[@]}" --example totp) >&2 ||
      die "cargo build ${flags[*]} --example totp failed"
  fi
  printf '%s\n' "$bin"
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
