#!/usr/bin/env bash
# Real-browser end-to-end test of the sign-in flow: Debian's Chromium, driven by playwright-core,
# against a real `vigie serve` and a node upstream (tests/e2e/signin.mjs). Rewrites the
# screenshots docs/signin.png and docs/signin-en.png (VIGIE_E2E_SCREENSHOTS=off: none).
#   scripts/browser-test.sh
#   VIGIE_BIN=target/release/vigie scripts/browser-test.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || die "no Chromium at $CHROMIUM: apt-get install chromium (Debian's package; 'npx playwright install' is not used)"
missing=()
for tool in node npm; do command -v "$tool" >/dev/null || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (on Debian: apt-get install nodejs npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $(node --version) is too old: playwright-core needs node 20 or later"

E2E="$ROOT/tests/e2e"
if [[ ! -d "$E2E/node_modules/playwright-core" ]]; then
  log "installing playwright-core into tests/e2e/node_modules"
  if [[ -f "$E2E/package-lock.json" ]]; then
    (cd "$E2E" && npm ci --silent --no-audit --no-fund) || die "npm ci failed in tests/e2e"
  else
    (cd "$E2E" && npm install --silent --no-audit --no-fund) || die "npm install failed in tests/e2e"
  fi
fi

export VIGIE_BIN="${VIGIE_BIN:-$ROOT/target/debug/vigie}"
if [[ ! -x "$VIGIE_BIN" ]]; then
  [[ "$VIGIE_BIN" == "$ROOT/target/debug/vigie" ]] || die "VIGIE_BIN=$VIGIE_BIN is not an executable"
  log "building the debug binary (cargo build)"
  cargo build --locked --quiet
fi
# The codes the test types come from Vigie's own TOTP implementation (examples/totp.rs).
VIGIE_TOTP_BIN="$(totp_tool debug)" || exit 1
export VIGIE_TOTP_BIN CHROMIUM
exec node "$E2E/signin.mjs"
