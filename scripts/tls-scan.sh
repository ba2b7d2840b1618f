#!/usr/bin/env bash
# Grades the gateway's TLS with two real scanners:
#   sslyze --mozilla_config=intermediate  must report "Compliant";
#   testssl.sh                             no finding of severity MEDIUM or worse, except the two
#                                          that only a public CA can fix (no OCSP/CRL URI in a
#                                          development certificate, no DNS CAA record): judged
#                                          by scripts/tls-findings.py.
# Starts its own gateway (debug build unless VIGIE_BIN is set) in front of a throw-away upstream.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
command -v testssl >/dev/null || die "testssl.sh missing (apt-get install testssl.sh)"
SSLYZE="$(py_tool sslyze sslyze)"
BIN="${VIGIE_BIN:-$ROOT/target/debug/vigie}"
[[ -x "$BIN" ]] || (cd "$ROOT" && cargo build -q) || die "build failed"

WORK="$(mktemp -d)"; PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" dev-cert --out "$WORK/certs" --name localhost >/dev/null
UP_PORT="$(free_port)"; GW_PORT="$(free_port)"
python3 -m http.server "$UP_PORT" --bind 127.0.0.1 --directory "$WORK" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$UP_PORT" || die "upstream did not start"
cat > "$WORK/vigie.yaml" <<YAML
server_name: localhost
listen:
  https: "127.0.0.1:$GW_PORT"
tls:
  cert_file: $WORK/certs/server.crt
  key_file: $WORK/certs/server.key
upstream:
  url: "http://127.0.0.1:$UP_PORT"
log:
  level: warn
YAML
"$BIN" serve --config "$WORK/vigie.yaml" >"$WORK/vigie.log" 2>&1 & PIDS+=($!)
wait_port "$GW_PORT" || { cat "$WORK/vigie.log" >&2; die "gateway did not start"; }

rc=0
log "sslyze --mozilla_config=intermediate localhost:$GW_PORT"
"$SSLYZE" --mozilla_config=intermediate --certinfo_ca_file "$WORK/certs/ca.crt" \
  "localhost:$GW_PORT" >"$WORK/sslyze.txt" 2>&1 || true
if grep -q "localhost:$GW_PORT: OK - Compliant" "$WORK/sslyze.txt"; then
  echo "PASS sslyze: compliant with Mozilla's intermediate configuration"
else
  echo "FAIL sslyze:"; sed -n '/COMPLIANCE AGAINST/,$p' "$WORK/sslyze.txt"; rc=1
fi

log "testssl.sh localhost:$GW_PORT (about a minute)"
testssl --quiet --warnings off --color 0 --add-ca "$WORK/certs/ca.crt" \
  --jsonfile "$WORK/testssl.json" "localhost:$GW_PORT" >"$WORK/testssl.txt" 2>&1 || true
python3 "$ROOT/scripts/tls-findings.py" "$WORK/testssl.json" || rc=1
exit $rc
