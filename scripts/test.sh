#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests (real gateway, real upstream,
# real TLS clients), the sign-in flow in a real browser (headless Chromium), the end-to-end
# suite against a real Orthanc (scripts/e2e.sh), the container setup without a Docker engine
# (scripts/docker-check.sh), then the TLS scanners against a running gateway.
#   scripts/test.sh                   everything
#   SKIP_TLS_SCAN=1 scripts/test.sh   without the ~70 s scanner run
#   SKIP_E2E=1 scripts/test.sh        without the real-Orthanc suite (~25 s, installs Orthanc)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

missing=()
for tool in cargo python3 openssl testssl node npm chromium; do command -v "$tool" >/dev/null || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (on Debian: .ci/run installs them)"

step() { printf '\n== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
step "cargo test (unit + integration)"
# Tests measure memory and timeouts: two threads keep them from starving each other on small CI
# machines without serialising everything.
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-2}"
step "browser: sign-in and sign-out in headless Chromium"
scripts/browser-test.sh
if [[ "${SKIP_E2E:-0}" != 1 ]]; then
  step "end to end: Orthanc (Explorer, Web Viewer, DICOMweb) behind the gateway, in headless Chromium; exposure check"
  scripts/e2e.sh
fi
step "container setup (hadolint, compose rules, the binary run as the image runs it)"
scripts/docker-check.sh
if [[ "${SKIP_TLS_SCAN:-0}" != 1 ]]; then
  step "TLS scanners (sslyze, testssl.sh)"
  scripts/tls-scan.sh
fi
step "all tests passed"
