#!/usr/bin/env bash
# Grades the gateway's TLS with two real scanners, against the two certificates it obtains
# itself (issue 12):
#   acme      a chain from a real ACME CA (Debian's pebble, tls-alpn-01), as with Let's Encrypt;
#   local-ca  a chain from the practice CA (`vigie ca init`, tls.local_ca: true).
# For each:
#   sslyze --mozilla_config=intermediate  must report "Compliant";
#   testssl.sh                             no finding of severity MEDIUM or worse, except the two
#                                          that a test or practice CA cannot avoid (no OCSP/CRL
#                                          URI, no DNS CAA record): judged by
#                                          scripts/tls-findings.py.
# The summaries go to target/tls-scan/ (docs/tls.md quotes them). Starts its own gateways
# (debug build unless VIGIE_BIN is set) in front of a throw-away upstream.
#   scripts/tls-scan.sh [acme|local-ca]...   (default: both)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
command -v testssl >/dev/null || die "testssl.sh missing (apt-get install testssl.sh)"
command -v pebble >/dev/null || die "pebble missing (apt-get install pebble)"
SSLYZE="$(py_tool sslyze sslyze)"
BIN="${VIGIE_BIN:-$ROOT/target/debug/vigie}"
[[ -x "$BIN" ]] || (cd "$ROOT" && cargo build -q) || die "build failed"
OUT="$ROOT/target/tls-scan"
mkdir -p "$OUT"

WORK="$(mktemp -d)"; PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

NAME=viewer.clinic.test
UP_PORT="$(free_port)"
python3 -m http.server "$UP_PORT" --bind 127.0.0.1 --directory "$WORK" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$UP_PORT" || die "upstream did not start"

# gateway KIND TLS_YAML: writes the configuration, starts the gateway on GW_PORT and waits
# until it serves a certificate.
gateway() {
  local kind=$1 tls=$2 dir="$WORK/$1"
  mkdir -p "$dir"
  cat > "$dir/vigie.yaml" <<YAML
server_name: $NAME
listen:
  https: "127.0.0.1:$GW_PORT"
  http: "127.0.0.1:$HTTP_PORT"
state_dir: $dir/state
$tls
upstream:
  url: "http://127.0.0.1:$UP_PORT"
log:
  level: info
YAML
  if [[ "$kind" == local-ca ]]; then
    "$BIN" ca init --config "$dir/vigie.yaml" >/dev/null || die "vigie ca init failed"
  fi
  "$BIN" serve --config "$dir/vigie.yaml" >"$dir/vigie.log" 2>&1 & PIDS+=($!)
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q "certificate obtained and served" "$dir/vigie.log" && return 0
    sleep 0.1
  done
  cat "$dir/vigie.log" >&2
  die "$kind: the gateway obtained no certificate in 60 s"
}

# scan KIND CA_FILE: both scanners against the gateway on GW_PORT, trusting CA_FILE only.
scan() {
  local kind=$1 ca=$2 dir="$WORK/$1" rc=0 summary="$OUT/$1.txt"
  : >"$summary"
  log "$kind: sslyze --mozilla_config=intermediate $NAME:$GW_PORT"
  "$SSLYZE" --mozilla_config=intermediate --certinfo_ca_file "$ca" \
    "$NAME:$GW_PORT{127.0.0.1}" >"$dir/sslyze.txt" 2>&1 || true
  if grep -q "$NAME:$GW_PORT: OK - Compliant" "$dir/sslyze.txt"; then
    echo "PASS sslyze ($kind): compliant with Mozilla's intermediate configuration" | tee -a "$summary"
  else
    echo "FAIL sslyze ($kind):"; sed -n '/COMPLIANCE AGAINST/,$p' "$dir/sslyze.txt"; rc=1
  fi
  # What sslyze saw of the chain, for the summary.
  grep -E "Leaf Certificate|Subject Alternative|Not After|Key Size|Issuer|Signature Algorithm|Verified Chain|Certificate Chain Received|OK - Certificate|FAILED - Certificate|Received Chain" "$dir/sslyze.txt" \
    | sed 's/^ */  /' | sort -u >>"$summary" || true
  log "$kind: testssl.sh $NAME:$GW_PORT (about a minute)"
  testssl --quiet --warnings off --color 0 --add-ca "$ca" --ip 127.0.0.1 \
    --jsonfile "$dir/testssl.json" "$NAME:$GW_PORT" >"$dir/testssl.txt" 2>&1 || true
  python3 "$ROOT/scripts/tls-findings.py" "$dir/testssl.json" | tee -a "$summary" || rc=1
  [[ "${PIPESTATUS[0]}" == 0 ]] || rc=1
  return $rc
}

kinds=("$@")
((${#kinds[@]})) || kinds=(acme local-ca)
rc=0
for kind in "${kinds[@]}"; do
  read -r GW_PORT HTTP_PORT < <(free_ports 2)
  case "$kind" in
    acme)
      # 90-day certificates, as Let's Encrypt's.
      start_pebble "$WORK/pebble" "$HTTP_PORT" "$GW_PORT" 7776000
      gateway acme "tls:
  acme:
    email: it@clinic.test
    accept_terms: true
    directory: $PEBBLE_DIR_URL
    ca_file: $PEBBLE_CA"
      scan acme "$PEBBLE_ROOTS" || rc=1
      ;;
    local-ca)
      gateway local-ca "tls:
  local_ca: true"
      scan local-ca "$WORK/local-ca/state/ca/ca.crt" || rc=1
      ;;
    *) die "unknown kind $kind: acme or local-ca" ;;
  esac
done
log "summaries: $OUT/"
exit $rc
