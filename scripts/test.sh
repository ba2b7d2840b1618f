#!/usr/bin/env bash
# Runs every test: formatting, shellcheck over the shell scripts, lints, unit and integration
# tests (real gateway, real upstream, real TLS clients), the sign-in flow in a real browser
# (headless Chromium), the end-to-end suite against a real Orthanc (scripts/e2e.sh), the
# container setup without a Docker engine (scripts/docker-check.sh), then the TLS scanners
# against a running gateway.
#   scripts/test.sh                   everything
#   SKIP_TLS_SCAN=1 scripts/test.sh   without the ~2 min scanner runs
#   SKIP_E2E=1 scripts/test.sh        without the real-Orthanc suite (~1 min, installs Orthanc)
# On a fresh Debian machine it first installs what it needs (apt-get, as root; npm and PyPI
# packages into the project's own folders): only the Rust toolchain must be there.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# What a fresh Debian machine lacks is installed first (as root, through apt-get, without
# letting any package's service start), so that this one command runs everything. Only the
# Rust toolchain must be there already.
command -v cargo >/dev/null || die "cargo is missing: install the Rust toolchain (https://rustup.rs)"
need=()
if command -v dpkg >/dev/null; then
  # pebble: the ACME test CA (and its DNS stand-in) of the certificate tests and the scan.
  for p in openssl ca-certificates curl pebble; do have_pkg "$p" || need+=("$p"); done
  command -v git >/dev/null || need+=(git)
  command -v shellcheck >/dev/null || need+=(shellcheck)
  command -v chromium >/dev/null || have_pkg chromium || need+=(chromium)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  command -v python3 >/dev/null || need+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  if [[ "${SKIP_TLS_SCAN:-0}" != 1 ]]; then have_pkg testssl.sh || need+=(testssl.sh); fi
  if [[ "${SKIP_E2E:-0}" != 1 ]]; then
    for p in orthanc orthanc-dicomweb orthanc-webviewer iproute2; do have_pkg "$p" || need+=("$p"); done
    command -v gcc >/dev/null || need+=(gcc)
    command -v jq >/dev/null || need+=(jq)
    [[ -f /usr/include/dlfcn.h ]] || need+=(libc6-dev)
  fi
fi
((${#need[@]} == 0)) || apt_install "${need[@]}"
missing=()
for tool in python3 openssl node npm chromium git shellcheck pebble pebble-challtestsrv; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[[ "${SKIP_TLS_SCAN:-0}" == 1 ]] || command -v testssl >/dev/null || missing+=(testssl)
((${#missing[@]} == 0)) || die "missing: ${missing[*]}: install them with this system's package manager"

step() { printf '\n== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "shellcheck (every tracked shell script)"
# Every file git tracks that is named *.sh or starts with a sh/bash shebang, so that a new script
# is checked without being listed here. -x follows the files they source (from this directory).
# safe.directory: a checkout owned by another user (a CI runner's) is still listed.
git_here=(git -c safe.directory="$ROOT")
"${git_here[@]}" rev-parse --git-dir >/dev/null ||
  die "the shellcheck step lists the scripts with git ls-files: run this in a git checkout (git's message above)"
shell_scripts=()
shebang_re='^#!.*[/[:space:]](ba|da|k)?sh([[:space:]]|$)'
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue
  first=""
  IFS= read -r first <"$f" || true
  if [[ "$f" == *.sh || "$first" =~ $shebang_re ]]; then shell_scripts+=("$f"); fi
done < <("${git_here[@]}" ls-files -z)
shellcheck -x "${shell_scripts[@]}"
step "module dependencies: no cycle between modules (scripts/module-cycles.py)"
python3 scripts/module-cycles.py
step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
step "cargo doc -D warnings (private items too: every intra-doc link must resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --locked --quiet
step "cargo deny (licences, bans, sources; advisories where the RustSec database is reachable)"
# Pinned, and installed into the project's own target/ when the machine has none (a few
# minutes of compiling on a fresh machine).
DENY_VERSION=0.20.2
if ! command -v cargo-deny >/dev/null; then
  export PATH="$ROOT/target/tools/bin:$PATH"
  [[ -x "$ROOT/target/tools/bin/cargo-deny" ]] ||
    cargo install --quiet --locked "cargo-deny@$DENY_VERSION" --root "$ROOT/target/tools"
fi
cargo deny --log-level error check licenses bans sources
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "SKIP advisories: the RustSec advisory database (github.com/RustSec/advisory-db) cannot be fetched from here"
fi
step "aiosmtpd, the SMTP server the alert tests start (target/py-venv)"
# tests/it/alerts.rs fails, saying so, without it; VIGIE_TEST_PYTHON may name another Python.
py_tool aiosmtpd aiosmtpd >/dev/null
step "the test OpenID provider's packages (tests/idp, npm ci)"
# tests/it/oidc starts it for every OpenID Connect test and fails, saying so, without them.
if [[ ! -f tests/idp/node_modules/oidc-provider/package.json ]]; then
  (cd tests/idp && npm ci --silent --no-audit --no-fund) ||
    die "npm ci failed in tests/idp: check the network or the npm registry setting (npm config get registry)"
fi
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
  step "TLS scanners (sslyze, testssl.sh) against an ACME (pebble) and a practice-CA chain"
  scripts/tls-scan.sh
fi
step "all tests passed"
