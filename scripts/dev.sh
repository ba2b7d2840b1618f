#!/usr/bin/env bash
# Runs the gateway on the embedded development configuration (config/dev.yaml):
#   https://localhost:8443  ->  http://127.0.0.1:8042
# Creates a development certificate on first run (certs/dev/, trust certs/dev/ca.crt in your
# browser, or use curl --cacert). If nothing answers on 127.0.0.1:8042 (start your Orthanc there
# to see the real viewer), a small demo page is served there instead, on loopback only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --release --locked
BIN="$ROOT/target/release/vigie"
[[ -s certs/dev/server.crt ]] || "$BIN" dev-cert --out certs/dev --name localhost
if ! (exec 3<>/dev/tcp/127.0.0.1/8042) 2>/dev/null; then
  log "nothing on 127.0.0.1:8042: serving the demo page from scripts/dev-upstream/"
  python3 -m http.server 8042 --bind 127.0.0.1 --directory scripts/dev-upstream >/dev/null 2>&1 &
  UP=$!
  trap 'kill $UP 2>/dev/null || true' EXIT
  wait_port 8042 || die "the demo upstream did not start"
fi
log "open https://localhost:8443/ (CA: certs/dev/ca.crt); health: http://127.0.0.1:9901/readyz"
"$BIN" serve --config config/dev.yaml --log-format text
