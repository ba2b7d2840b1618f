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

# A real ACME server for the scripts: Debian's pebble (2.4) and pebble-challtestsrv as its DNS.
# It uses log, die, free_ports and wait_port from above.

# start_pebble WORKDIR HTTP_PORT TLS_PORT VALIDITY_SECS: starts pebble-challtestsrv (DNS only:
# every name is 127.0.0.1, no AAAA; its own challenge servers disabled) and pebble, both on free
# loopback ports, pebble validating http-01 on 127.0.0.1:HTTP_PORT and tls-alpn-01 on
# 127.0.0.1:TLS_PORT, issuing certificates valid VALIDITY_SECS (notAfter is notBefore +
# VALIDITY_SECS - 1 s). Waits for the ACME directory (15 s at most; a stalled pebble is killed
# and started again, three times). Files go to WORKDIR (config, listener certificate, logs).
# Sets:
#   PEBBLE_DIR_URL  https://127.0.0.1:P/dir
#   PEBBLE_CA       the authority of pebble's own HTTPS listeners (trust it to talk ACME)
#   PEBBLE_ROOTS    the root that signs issued certificates (PEM file, from the management port)
#   PEBBLE_MGMT_URL https://127.0.0.1:M (/roots/0, /intermediates/0)
#   PEBBLE_PID, PEBBLE_LOG (and CHALLTESTSRV_PID, CHALLTESTSRV_LOG)
# and appends both PIDs to the caller's PIDS array (challtestsrv's first, pebble's when it is up).
# PEBBLE_BIN and PEBBLE_CHALLTESTSRV_BIN name other builds.
start_pebble() {
  local work=$1 http_port=$2 tls_port=$3 validity=$4
  local pebble_bin=${PEBBLE_BIN:-pebble} cts_bin=${PEBBLE_CHALLTESTSRV_BIN:-pebble-challtestsrv}
  local dns_port cts_mgmt_port acme_port mgmt_port attempt i up
  if ! command -v "$pebble_bin" >/dev/null || ! command -v "$cts_bin" >/dev/null; then
    die "pebble and pebble-challtestsrv are needed (apt-get install pebble)"
  fi
  mkdir -p "$work" || die "cannot create $work"

  # Four free ports, none of them the gateway's (picked the same way, perhaps not bound yet).
  while :; do
    read -r dns_port cts_mgmt_port acme_port mgmt_port < <(free_ports 4)
    case " $dns_port $cts_mgmt_port $acme_port $mgmt_port " in
      *" $http_port "* | *" $tls_port "*) continue ;;
    esac
    break
  done

  # pebble's own HTTPS listener: a throw-away authority and a certificate for 127.0.0.1 and
  # localhost, ECDSA P-256.
  PEBBLE_CA="$work/pebble-listener-ca.pem"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$work/pebble-listener-ca.key" -out "$PEBBLE_CA" -days 30 \
      -subj "/CN=pebble listener test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/pebble-listener-key.pem" -out "$work/pebble-listener.csr" \
        -subj "/CN=pebble listener" &&
      openssl x509 -req -in "$work/pebble-listener.csr" -CA "$PEBBLE_CA" \
        -CAkey "$work/pebble-listener-ca.key" -CAcreateserial -days 30 \
        -out "$work/pebble-listener-cert.pem" \
        -extfile <(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
          "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
          "extendedKeyUsage=serverAuth")
  } >"$work/pebble-openssl.log" 2>&1 || {
    cat "$work/pebble-openssl.log" >&2
    die "openssl could not make pebble's listener certificate"
  }

  CHALLTESTSRV_LOG="$work/challtestsrv.log"
  "$cts_bin" -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$cts_mgmt_port" \
    >"$CHALLTESTSRV_LOG" 2>&1 &
  CHALLTESTSRV_PID=$!
  PIDS+=("$CHALLTESTSRV_PID")
  wait_port "$dns_port" 15 || {
    cat "$CHALLTESTSRV_LOG" >&2
    die "pebble-challtestsrv did not listen on 127.0.0.1:$dns_port"
  }

  cat >"$work/pebble-config.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme_port",
    "managementListenAddress": "127.0.0.1:$mgmt_port",
    "certificate": "$work/pebble-listener-cert.pem",
    "privateKey": "$work/pebble-listener-key.pem",
    "httpPort": $http_port,
    "tlsPort": $tls_port,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "certificateValidityPeriod": $validity
  }
}
EOF
  PEBBLE_DIR_URL="https://127.0.0.1:$acme_port/dir"
  PEBBLE_MGMT_URL="https://127.0.0.1:$mgmt_port"
  PEBBLE_LOG="$work/pebble.log"
  : >"$PEBBLE_LOG"
  for attempt in 1 2 3; do
    # Only these settings (never PEBBLE_VA_ALWAYS_VALID): validate at once, never reject a good
    # nonce, never reuse an authorization.
    env -i PATH="$PATH" PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
      "$pebble_bin" -config "$work/pebble-config.json" -dnsserver "127.0.0.1:$dns_port" \
      >>"$PEBBLE_LOG" 2>&1 &
    PEBBLE_PID=$!
    up=0
    for ((i = 0; i < 150; i++)); do
      kill -0 "$PEBBLE_PID" 2>/dev/null || break
      if curl -fsS --max-time 5 --cacert "$PEBBLE_CA" -o /dev/null "$PEBBLE_DIR_URL" 2>/dev/null; then
        up=1
        break
      fi
      sleep 0.1
    done
    ((up)) && break
    log "pebble did not answer at $PEBBLE_DIR_URL (attempt $attempt)"
    kill "$PEBBLE_PID" 2>/dev/null || true
    wait "$PEBBLE_PID" 2>/dev/null || true
    ((attempt == 3)) || sleep "$attempt"
  done
  if ((!up)); then
    tail -30 "$PEBBLE_LOG" >&2
    die "pebble did not start (log: $PEBBLE_LOG)"
  fi
  PIDS+=("$PEBBLE_PID")

  PEBBLE_ROOTS="$work/pebble-roots.pem"
  curl -fsS --max-time 5 --cacert "$PEBBLE_CA" -o "$PEBBLE_ROOTS" "$PEBBLE_MGMT_URL/roots/0" ||
    die "cannot fetch pebble's issuing root from $PEBBLE_MGMT_URL/roots/0"
  log "pebble at $PEBBLE_DIR_URL (validates on 127.0.0.1:$http_port and :$tls_port)"
}
