#!/usr/bin/env bash
# End-to-end test against a real Orthanc: Orthanc 1.10 (Web Viewer + DICOMweb plugins) on
# loopback with its own credentials, loaded with real DICOM files (pydicom's CT_small and
# MR_small, plus a synthetic 24-slice CT series), a real `vigie serve` in front of it with the
# Orthanc access preset and three accounts (a doctor; a doctor who also has the preset's optional
# roles download and upload; an admin), and Debian's Chromium driven by playwright-core
# (tests/e2e/viewer.mjs, as the second doctor and the admin). Then every route of Orthanc's REST
# API tried through Vigie as each account (tests/e2e/routes.py). Then `vigie check --exposure` on
# this deployment (nothing serious) and on the CNIL cases recreated: an Orthanc without
# credentials listening on every address with a password-only sign-in, and a viewer on a public
# address (each flagged). Then the sign-in through two real OpenID providers (tests/idp/server.mjs,
# npm oidc-provider: a Pro Santé Connect look-alike and a clinic's own provider, configured in
# Vigie beside the local accounts) in Chromium, to the viewers, sign-out through the provider,
# and the provider down (tests/e2e/oidc.mjs).
# One PASS/FAIL line per check; exit 1 on any failure.
# Rewrites the screenshots docs/explorer.png, docs/viewer.png and docs/signin-oidc.png
# (VIGIE_E2E_SCREENSHOTS=off: none).
#   scripts/e2e.sh
#   VIGIE_BIN=target/release/vigie scripts/e2e.sh
#   VIGIE_E2E_KEEP=1 scripts/e2e.sh        keep the temporary folder (configs, logs, Orthanc DB)
# What it lacks it installs (as root): Debian packages orthanc, orthanc-dicomweb,
# orthanc-webviewer, jq, chromium (and gcc, node/npm, python3-venv when missing), playwright-core
# and oidc-provider from npm (tests/e2e, tests/idp), pydicom from PyPI into target/py-venv.
# Everything it starts listens on 127.0.0.1 only, on ports picked at run time, with its state in
# a temporary folder.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/orthanc.sh
. "$(dirname "$0")/orthanc.sh"
cd "$ROOT"
started=$SECONDS

E2E="$ROOT/tests/e2e"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
ORTHANC_BIN="${ORTHANC_BIN:-/usr/sbin/Orthanc}"
ORTHANC_PLUGINS=/usr/share/orthanc/plugins
VENV="$ROOT/target/py-venv"
export VIGIE_E2E_SCREENSHOTS="${VIGIE_E2E_SCREENSHOTS:-$ROOT/docs}"

# ---- 1. what the machine lacks ---------------------------------------------------------------

need=()
if command -v dpkg >/dev/null; then
  for p in orthanc orthanc-dicomweb orthanc-webviewer curl iproute2 jq; do have_pkg "$p" || need+=("$p"); done
  [[ -x "$CHROMIUM" ]] || have_pkg chromium || need+=(chromium)
  command -v gcc >/dev/null || need+=(gcc)
  [[ -f /usr/include/dlfcn.h ]] || need+=(libc6-dev)
  # node/npm and python3 may come from elsewhere (NodeSource, pyenv): only ask apt when missing.
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  command -v python3 >/dev/null || need+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
fi
((${#need[@]} == 0)) || apt_install "${need[@]}"

for f in "$ORTHANC_BIN" "$ORTHANC_PLUGINS/libOrthancWebViewer.so" "$ORTHANC_PLUGINS/libOrthancDicomWeb.so"; do
  [[ -e "$f" ]] || die "$f is missing: apt-get install orthanc orthanc-dicomweb orthanc-webviewer (or set ORTHANC_BIN)"
done
[[ -x "$CHROMIUM" ]] || die "no Chromium at $CHROMIUM: apt-get install chromium (Debian's package; 'npx playwright install' is not used), or set CHROMIUM"
for tool in curl ss ip gcc node npm python3 jq; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install curl iproute2 gcc nodejs npm python3 jq"
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $(node --version) is too old: playwright-core needs node 20 or later (NodeSource or Debian 13)"

if [[ ! -d "$E2E/node_modules/playwright-core" ]]; then
  log "installing playwright-core into tests/e2e/node_modules"
  (cd "$E2E" && npm ci --silent --no-audit --no-fund) || die "npm ci failed in tests/e2e: check the network or the npm registry setting (npm config get registry)"
fi
IDP="$ROOT/tests/idp"
if [[ ! -f "$IDP/node_modules/oidc-provider/package.json" ]]; then
  log "installing oidc-provider into tests/idp/node_modules"
  (cd "$IDP" && npm ci --silent --no-audit --no-fund) || die "npm ci failed in tests/idp: check the network or the npm registry setting (npm config get registry)"
fi

if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import pydicom, aiosmtpd' 2>/dev/null; }; then
  log "installing pydicom and aiosmtpd into $VENV"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || die "python3 -m venv $VENV failed: apt-get install python3-venv"
  "$VENV/bin/pip" install -q 'pydicom>=3,<4' aiosmtpd || die "pip install pydicom aiosmtpd failed: check the network or pip's index (pip config list)"
fi

orthanc_shim || die "cannot build $ORTHANC_SHIM from $ORTHANC_SHIM_SRC: apt-get install gcc libc6-dev"

export VIGIE_BIN="${VIGIE_BIN:-$ROOT/target/debug/vigie}"
if [[ ! -x "$VIGIE_BIN" ]]; then
  [[ "$VIGIE_BIN" == "$ROOT/target/debug/vigie" ]] || die "VIGIE_BIN=$VIGIE_BIN is not an executable"
  log "building the debug binary (cargo build)"
  cargo build --locked --quiet || die "cargo build failed: fix the build, or point VIGIE_BIN at a built vigie"
fi
# The TOTP codes viewer.mjs and routes.py type come from Vigie's own implementation.
VIGIE_TOTP_BIN="$(totp_tool debug)" || exit 1
export VIGIE_TOTP_BIN

# ---- 2. a temporary folder, and whatever runs is stopped on exit ----------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vigie-e2e.XXXXXX")"
chmod 700 "$WORK"
PIDS=()
cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for i in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ "${VIGIE_E2E_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Shows the end of the logs, for a failure.
show_logs() {
  local f
  for f in "$WORK/vigie.log" "$WORK/orthanc/orthanc.log" "$WORK"/idp-*/idp.log; do
    [[ -s "$f" ]] || continue
    printf -- '--- %s (last 25 lines) ---\n' "${f#"$WORK"/}" >&2
    tail -25 "$f" >&2
  done
}

# ---- 3. Orthanc -------------------------------------------------------------------------------

ORTHANC_USER=vigie
ORTHANC_PORT="$(free_port)"
mkdir -p "$WORK/orthanc/db" "$WORK/orthanc/webviewer-cache"
PASSWORD_FILE="$WORK/orthanc/password"
(
  umask 077
  # 144 random bits, letters and digits only (safe inside JSON and curl's config).
  head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$PASSWORD_FILE"
  # The password is put in by bash itself ($(<file), parameter expansion, printf are
  # builtins), and curl reads it from a file: it never appears in a command line.
  password="$(<"$PASSWORD_FILE")"
  template="$(sed -e "s#@WORK@#$WORK#g" -e "s#@HTTP_PORT@#$ORTHANC_PORT#g" \
    -e "s#@USER@#$ORTHANC_USER#g" "$E2E/orthanc.json.in")"
  printf '%s\n' "${template//@PASSWORD@/$password}" >"$WORK/orthanc/orthanc.json"
  printf 'user = "%s:%s"\n' "$ORTHANC_USER" "$password" >"$WORK/orthanc/curl.conf"
)
ORTHANC_URL="http://127.0.0.1:$ORTHANC_PORT"
ocurl() { curl -sS --max-time 30 -K "$WORK/orthanc/curl.conf" "$@"; }

orthanc_start "$WORK/orthanc/orthanc.json" "$WORK/orthanc/orthanc.log" "$WORK/orthanc/stdout.log"
PIDS+=("$ORTHANC_PID")
waited=0
orthanc_wait "$ORTHANC_URL/system" 600 -K "$WORK/orthanc/curl.conf" || waited=$?
((waited != 1)) || { cat "$WORK/orthanc/stdout.log" >&2; show_logs; die "Orthanc exited at start (log above): is $ORTHANC_BIN the Debian 1.10 package, are the plugins in $ORTHANC_PLUGINS?"; }
((waited == 0)) || { show_logs; die "Orthanc did not answer on $ORTHANC_URL/system within 60 s (log above)"; }
log "Orthanc $(ocurl "$ORTHANC_URL/system" | jq -r .Version) on $ORTHANC_URL (pid $ORTHANC_PID)"

# ---- 4. DICOM files ---------------------------------------------------------------------------

SAMPLES="$WORK/dicom"
"$VENV/bin/python" "$E2E/make-samples.py" "$SAMPLES" >/dev/null ||
  die "tests/e2e/make-samples.py failed: reinstall pydicom ($VENV/bin/pip install --force-reinstall 'pydicom>=3,<4')"
n=0
for f in "$SAMPLES"/*.dcm; do
  answer="$(ocurl -f -H 'Content-Type: application/dicom' --data-binary @"$f" "$ORTHANC_URL/instances")" ||
    { show_logs; die "uploading $(basename "$f") to Orthanc failed (log above)"; }
  printf '%s\n' "$answer" >"$f.upload.json"
  grep -q '"Status" *: *"Success"' "$f.upload.json" ||
    die "Orthanc did not store $(basename "$f"): $(tr -d '\n' <"$f.upload.json")"
  n=$((n + 1))
done
stable=0
for ((i = 0; i < 100; i++)); do
  ocurl "$ORTHANC_URL/series?expand" | jq -e 'all(.[]; .IsStable)' >/dev/null &&
    { stable=1; break; }
  sleep 0.2
done
((stable)) || die "Orthanc did not mark the uploaded series stable within 20 s (StableAge is 2 s in tests/e2e/orthanc.json.in)"
log "loaded $n DICOM instances"

# ---- 5. Vigie ---------------------------------------------------------------------------------

HOST=viewer.test
GW_PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
"$VIGIE_BIN" dev-cert --out "$WORK/certs" --name "$HOST" >/dev/null || die "vigie dev-cert failed"
DOCTOR_USER=dr.martin DOCTOR_PASSWORD='Radio-Thorax-2026'
TRUSTED_USER=dr.bernard TRUSTED_PASSWORD='Scanner-Genou-2026'
ADMIN_USER=admin.durand ADMIN_PASSWORD='Console-Admin-2026!'
# A doctor who signs in only while the OpenID provider is down (section 9): a code of their
# own, never one the other accounts' sign-ins have just used.
STANDBY_USER=dr.lefevre STANDBY_PASSWORD='Irm-Cerveau-2026'
# Someone tries passwords on this account (section 6c): the alert goes to the SMTP sink.
TARGET_USER=dr.petit TARGET_PASSWORD='Echo-Coeur-2026'
totp_secret() { head -c 20 /dev/urandom | base32; } # 160 bits, 32 characters, no padding
# Prints the argon2id hash of $1 (vigie hash-password reads one line from standard input).
hash_password() {
  local out
  out="$(printf '%s\n' "$1" | "$VIGIE_BIN" hash-password 2>&1)" ||
    die "vigie hash-password refused the test password: $out"
  grep -m1 '^[$]argon2id[$]' <<<"$out" || die "vigie hash-password printed no argon2id hash: $out"
}
DOCTOR_TOTP="$(totp_secret)" TRUSTED_TOTP="$(totp_secret)" ADMIN_TOTP="$(totp_secret)" STANDBY_TOTP="$(totp_secret)"
DOCTOR_HASH="$(hash_password "$DOCTOR_PASSWORD")" || exit 1
TRUSTED_HASH="$(hash_password "$TRUSTED_PASSWORD")" || exit 1
ADMIN_HASH="$(hash_password "$ADMIN_PASSWORD")" || exit 1
TARGET_HASH="$(hash_password "$TARGET_PASSWORD")" || exit 1
STANDBY_HASH="$(hash_password "$STANDBY_PASSWORD")" || exit 1

# The alerts' mail server: a real SMTP server (aiosmtpd) on loopback, each message in a file.
mkdir -p "$WORK/mail"
"$VENV/bin/python" "$ROOT/tests/it/smtp_sink.py" "$WORK/mail" >"$WORK/smtp.port" 2>"$WORK/smtp.log" &
PIDS+=("$!")
for ((i = 0; i < 100; i++)); do [[ -s "$WORK/smtp.port" ]] && break; sleep 0.1; done
SMTP_PORT="$(head -n1 "$WORK/smtp.port")"
[[ "$SMTP_PORT" =~ ^[0-9]+$ ]] || die "the SMTP sink did not start: $(cat "$WORK/smtp.log")"

# The OpenID providers: tests/idp/server.mjs (npm oidc-provider), each with its client
# registered for the gateway's redirect and post-logout URIs, signing its default user in by
# itself (LOGIN_MODE=auto): psc (Pro Santé Connect look-alike: 810000000001, a doctor, profession
# code 10) and clinic (a clinic's own provider, generic profile: dr.house, group radiology).
# start_idp NAME PROFILE: starts one on a free port; sets IDP_PID and IDP_ISSUER.
start_idp() {
  local attempt
  # Node has been seen, rarely, to stall before listening (only its start-up warning in the
  # log): a provider that does not serve within 15 s is stopped and started again elsewhere.
  for attempt in 1 2 3; do
    start_idp_once "$@" && return 0
    log "the test OpenID provider $1 did not serve within 15 s (attempt $attempt); starting it again"
  done
  die "the test OpenID provider $1 ($2) did not serve $IDP_DISCOVERY after 3 attempts (its log above)"
}
start_idp_once() {
  local name=$1 profile=$2 dir="$WORK/idp-$1" base="https://$HOST:$GW_PORT/_vigie/oidc/$1" port i
  port="$(free_port)"
  rm -rf "$dir"
  mkdir -p "$dir"
  (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$dir/client-secret")
  if [[ "$profile" == psc ]]; then
    IDP_ISSUER="http://127.0.0.1:$port/auth/realms/esante-wallet"
    IDP_DISCOVERY="$IDP_ISSUER/.well-known/wallet-openid-configuration"
  else
    IDP_ISSUER="http://127.0.0.1:$port/realms/clinic"
    IDP_DISCOVERY="$IDP_ISSUER/.well-known/openid-configuration"
  fi
  PROFILE="$profile" PORT="$port" RUN_DIR="$dir" LOGIN_MODE=auto CLIENT_ID="vigie-e2e-$name" \
    CLIENT_SECRET="$(<"$dir/client-secret")" REDIRECT_URIS="$base/callback" POST_LOGOUT_REDIRECT_URIS="$base/signed-out" \
    node "$IDP/server.mjs" >"$dir/idp.log" 2>&1 &
  IDP_PID=$!
  PIDS+=("$IDP_PID")
  for ((i = 0; i < 75; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$IDP_DISCOVERY")" == 200 ]] && return 0
    kill -0 "$IDP_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$IDP_PID" 2>/dev/null; then echo "(still running, pid $IDP_PID: stopped)" >>"$dir/idp.log"; else echo "(exited)" >>"$dir/idp.log"; fi
  kill "$IDP_PID" 2>/dev/null || true
  tail -20 "$dir/idp.log" >&2
  return 1
}
start_idp psc psc
PSC_PID=$IDP_PID PSC_ISSUER=$IDP_ISSUER
start_idp clinic generic
CLINIC_PID=$IDP_PID CLINIC_ISSUER=$IDP_ISSUER
CLINIC_LABEL="Clinique du Parc" CLINIC_USER=dr.house
log "OpenID providers: psc $PSC_ISSUER (pid $PSC_PID), clinic $CLINIC_ISSUER (pid $CLINIC_PID)"

CONFIG="$WORK/vigie.yaml"
{
  cat <<YAML
# Generated by scripts/e2e.sh.
state_dir: "$WORK/state"
server_name: $HOST
listen:
  https: "127.0.0.1:$GW_PORT"
  admin: "127.0.0.1:$ADMIN_PORT"
tls:
  cert_file: "$WORK/certs/server.crt"
  key_file: "$WORK/certs/server.key"
upstream:
  url: "$ORTHANC_URL"
  health_path: /system
  credentials:
    username: $ORTHANC_USER
    password_file: "$PASSWORD_FILE"
auth:
  users:
    - username: $DOCTOR_USER
      password_hash: "$DOCTOR_HASH"
      totp_secret: $DOCTOR_TOTP
      roles: [doctor]
    # The preset's optional roles, as a clinic that allows downloads and uploads gives them.
    - username: $TRUSTED_USER
      password_hash: "$TRUSTED_HASH"
      totp_secret: $TRUSTED_TOTP
      roles: [doctor, download, upload]
    - username: $ADMIN_USER
      password_hash: "$ADMIN_HASH"
      totp_secret: $ADMIN_TOTP
      roles: [admin]
    - username: $TARGET_USER
      password_hash: "$TARGET_HASH"
      totp_secret: $(totp_secret)
      roles: [doctor]
    - username: $STANDBY_USER
      password_hash: "$STANDBY_HASH"
      totp_secret: $STANDBY_TOTP
      roles: [doctor]
  # Beside the local accounts: doctors of Pro Santé Connect (profession code 10), and the
  # clinic's radiologists.
  oidc:
    - name: psc
      provider: pro-sante-connect
      issuer: "$PSC_ISSUER"
      client_id: vigie-e2e-psc
      client_secret_file: "$WORK/idp-psc/client-secret"
      roles:
        - claim: SubjectRefPro.exercices[].codeProfession
          values: ["10"]
          roles: [doctor]
    - name: clinic
      provider: generic
      label: "$CLINIC_LABEL"
      issuer: "$CLINIC_ISSUER"
      client_id: vigie-e2e-clinic
      client_secret_file: "$WORK/idp-clinic/client-secret"
      roles:
        - claim: groups
          values: [radiology]
          roles: [doctor]
log:
  level: info
# Short, so that the viewings of the browser test are recorded before they are checked.
audit:
  viewing_idle: 3s
alerts:
  lang: en
  email:
    smtp: "127.0.0.1:$SMTP_PORT"
    security: none
    from: "Vigie <vigie@viewer.test>"
    to: [dpo@viewer.test]
YAML
  # The access policy exactly as the Orthanc preset has it.
  sed -n '/^access:/,$p' "$ROOT/config/orthanc.example.yaml"
} >"$CONFIG"
chmod 600 "$CONFIG"
grep -q '^access:' "$CONFIG" || die "no access: section found in config/orthanc.example.yaml"

check_rc=0
"$VIGIE_BIN" check --config "$CONFIG" >"$WORK/check.txt" 2>&1 || check_rc=$?
if ((check_rc == 1 || check_rc > 3)); then
  cat "$WORK/check.txt" >&2
  die "vigie check refused the generated configuration $CONFIG (above): fix scripts/e2e.sh's template or config/orthanc.example.yaml"
fi
((check_rc == 3)) && { log "vigie check warnings:"; cat "$WORK/check.txt" >&2; }

"$VIGIE_BIN" serve --config "$CONFIG" --log-format json >"$WORK/vigie.log" 2>&1 &
VIGIE_PID=$!
PIDS+=("$VIGIE_PID")
wait_port "$GW_PORT" 30 || { show_logs; die "vigie serve did not listen on 127.0.0.1:$GW_PORT within 30 s (log above)"; }
ready=0
for ((i = 0; i < 100; i++)); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz")" == 200 ]] && { ready=1; break; }
  sleep 0.2
done
((ready)) || { show_logs; die "Vigie's /readyz did not turn 200 within 20 s: Vigie cannot reach Orthanc with its credentials (log above)"; }
log "Vigie on https://$HOST:$GW_PORT (pid $VIGIE_PID), ready after $((SECONDS - started)) s of setup"

# ---- 6. the browser test ----------------------------------------------------------------------

export VIGIE_E2E_RUN="$WORK/run.json"
WORK="$WORK" HOST="$HOST" GW_PORT="$GW_PORT" ADMIN_PORT="$ADMIN_PORT" ORTHANC_PORT="$ORTHANC_PORT" \
  ORTHANC_PID="$ORTHANC_PID" ORTHANC_USER="$ORTHANC_USER" PASSWORD_FILE="$PASSWORD_FILE" SAMPLES="$SAMPLES" \
  DOCTOR_USER="$DOCTOR_USER" DOCTOR_PASSWORD="$DOCTOR_PASSWORD" DOCTOR_TOTP="$DOCTOR_TOTP" \
  TRUSTED_USER="$TRUSTED_USER" TRUSTED_PASSWORD="$TRUSTED_PASSWORD" TRUSTED_TOTP="$TRUSTED_TOTP" \
  ADMIN_USER="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" ADMIN_TOTP="$ADMIN_TOTP" \
  STANDBY_USER="$STANDBY_USER" STANDBY_PASSWORD="$STANDBY_PASSWORD" STANDBY_TOTP="$STANDBY_TOTP" \
  PSC_ISSUER="$PSC_ISSUER" PSC_PID="$PSC_PID" CLINIC_ISSUER="$CLINIC_ISSUER" CLINIC_PID="$CLINIC_PID" \
  CLINIC_LABEL="$CLINIC_LABEL" CLINIC_USER="$CLINIC_USER" \
  jq -n '{
    gateway: {host: env.HOST, port: (env.GW_PORT | tonumber), adminPort: (env.ADMIN_PORT | tonumber),
              caFile: "\(env.WORK)/certs/ca.crt", certFile: "\(env.WORK)/certs/server.crt"},
    orthanc: {port: (env.ORTHANC_PORT | tonumber), pid: (env.ORTHANC_PID | tonumber), user: env.ORTHANC_USER,
              passwordFile: env.PASSWORD_FILE},
    accounts: {
      doctor: {username: env.DOCTOR_USER, password: env.DOCTOR_PASSWORD, totp: env.DOCTOR_TOTP},
      trusted: {username: env.TRUSTED_USER, password: env.TRUSTED_PASSWORD, totp: env.TRUSTED_TOTP},
      admin: {username: env.ADMIN_USER, password: env.ADMIN_PASSWORD, totp: env.ADMIN_TOTP},
      standby: {username: env.STANDBY_USER, password: env.STANDBY_PASSWORD, totp: env.STANDBY_TOTP}
    },
    samples: env.SAMPLES,
    profile: "\(env.WORK)/chromium-profile",
    work: env.WORK,
    oidc: {
      psc: {issuer: env.PSC_ISSUER, origin: (env.PSC_ISSUER | sub("/auth/realms/.*"; "")), clientId: "vigie-e2e-psc",
            pid: (env.PSC_PID | tonumber), log: "\(env.WORK)/idp-psc/idp.log"},
      clinic: {issuer: env.CLINIC_ISSUER, origin: (env.CLINIC_ISSUER | sub("/realms/.*"; "")), clientId: "vigie-e2e-clinic",
               pid: (env.CLINIC_PID | tonumber), log: "\(env.WORK)/idp-clinic/idp.log", label: env.CLINIC_LABEL, user: env.CLINIC_USER}
    }
  }' >"$VIGIE_E2E_RUN" || die "cannot write $VIGIE_E2E_RUN"
chmod 600 "$VIGIE_E2E_RUN"

export CHROMIUM
rc=0
timeout --kill-after=10 300 node "$E2E/viewer.mjs" || rc=$?
if ((rc == 124 || rc == 137)); then
  echo "FAIL the browser test was stopped after 300 s (Chromium hung?): run again; if it persists, run with VIGIE_E2E_KEEP=1 and read the logs"
fi

# ---- 6b. `vigie audit report` names the doctor, the patient and the study viewed, once --------
# The Web Viewer scrolled the synthetic CT as $DOCTOR_USER in one session (viewer.mjs, c); its
# viewing closes after audit.viewing_idle (3 s) without a request.
# viewed_once USER: one line saying whether `vigie audit report` has USER's one viewing of
# patient VIGIE-E2E-001 counting the 24 slices; the report stays in $WORK/report-USER.json.
# Returns 1 when the report itself failed.
viewed_once() {
  local user=$1 report="$WORK/report-$1.json" viewed
  if ! "$VIGIE_BIN" audit report --config "$CONFIG" --user "$user" --patient VIGIE-E2E-001 \
    --format json >"$report" 2>"$WORK/report.err"; then
    echo "FAIL audit report: vigie audit report failed: $(cat "$WORK/report.err")"; rc=1
    return 1
  fi
  viewed="$(jq -c --arg u "$user" '[.patients[] | select(.patient.id == "VIGIE-E2E-001") | .studies[]
      | {uid: .study.uid, description: .study.description}
        + (.accesses[] | select(.kind == "viewing" and .operation == "view" and .user == $u) | {requests, bytes})]' "$report")"
  if [[ "$(jq length <<<"$viewed")" == 1 ]] && (($(jq '.[0].requests' <<<"$viewed") >= 24)); then
    echo "PASS audit report: $user viewed patient VIGIE-E2E-001 once: $(jq -r '.[0] | "study \(.uid) (\(.description)), \(.requests) requests, \(.bytes) bytes"' <<<"$viewed")"
  else
    echo "FAIL audit report: want one viewing of VIGIE-E2E-001 by $user counting the 24 slices, got $viewed"; rc=1
  fi
}
sleep 5
if viewed_once "$DOCTOR_USER"; then
  if jq -e '.trail.intact == true' "$WORK/report-$DOCTOR_USER.json" >/dev/null; then
    echo "PASS audit report: it says the chain is intact"
  else
    echo "FAIL audit report: trail $(jq -c .trail "$WORK/report-$DOCTOR_USER.json")"; rc=1
  fi
fi
if patient_out="$("$VIGIE_BIN" audit patient VIGIE-E2E-001 --config "$CONFIG" --lang fr 2>&1)" &&
  grep -q "$DOCTOR_USER" <<<"$patient_out"; then
  echo "PASS audit patient: the history of VIGIE-E2E-001 names $DOCTOR_USER (French)"
else
  echo "FAIL audit patient: $patient_out"; rc=1
fi

# ---- 6c. three wrong passwords: the alert reaches the mail server; the breach draft lists it ---
# wrong_sign_in USER: one sign-in with a wrong password, as a browser posts it (CSRF cookie and
# token from the sign-in page); prints the HTTP status.
wrong_sign_in() {
  local jar page token
  jar="$(mktemp -p "$WORK")"
  page="$(curl -s --cacert "$WORK/certs/ca.crt" --resolve "$HOST:$GW_PORT:127.0.0.1" -c "$jar" \
    "https://$HOST:$GW_PORT/_vigie/login")"
  token="$(grep -o 'name="csrf" value="[^"]*"' <<<"$page" | head -n1 | sed 's/.*value="//; s/"$//')"
  curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/certs/ca.crt" --resolve "$HOST:$GW_PORT:127.0.0.1" \
    -b "$jar" -H "Origin: https://$HOST:$GW_PORT" \
    --data-urlencode "csrf=$token" --data-urlencode "next=/" --data-urlencode "lang=en" \
    --data-urlencode "username=$1" --data-urlencode "password=Not-The-Password-1" \
    --data-urlencode "totp=000000" "https://$HOST:$GW_PORT/_vigie/login"
}
statuses=""
for _ in 1 2 3; do statuses+="$(wrong_sign_in "$TARGET_USER") "; done
mail=""
for ((i = 0; i < 100; i++)); do
  mail="$(grep -l "$TARGET_USER" "$WORK"/mail/*.eml 2>/dev/null | head -n1)" && [[ -n "$mail" ]] && break
  sleep 0.2
done
if [[ -n "$mail" ]]; then
  echo "PASS alert: three wrong passwords for $TARGET_USER (HTTP $statuses) -> mail at the SMTP sink: $(grep -m1 '^Subject:' "$mail")"
else
  echo "FAIL alert: no mail naming $TARGET_USER at the SMTP sink after three wrong passwords (HTTP $statuses): $(ls "$WORK/mail")"; rc=1
fi
sleep 2 # the alert's own record (alert_raised) reaches the trail
today="$(date -u +%F)"
if breach="$("$VIGIE_BIN" breach report --config "$CONFIG" --from "$today" --to "$today" --lang fr 2>&1)" &&
  grep -q "$TARGET_USER" <<<"$breach" && grep -q "72" <<<"$breach"; then
  echo "PASS breach report: the draft (French) names $TARGET_USER and the 72-hour deadline"
else
  echo "FAIL breach report: the draft does not name $TARGET_USER and the deadline: $breach"; rc=1
fi

# ---- 7. every route of Orthanc's REST API, as each account ------------------------------------

routes_rc=0
timeout --kill-after=10 300 python3 "$E2E/routes.py" || routes_rc=$?
if ((routes_rc == 124 || routes_rc == 137)); then
  echo "FAIL the route test was stopped after 300 s (a request hung?): run with VIGIE_E2E_KEEP=1 and read the logs"
fi
((routes_rc == 0)) || rc=1

# ---- 8. vigie check --exposure: this deployment, then the CNIL cases recreated ---------------

# expose NAME CONFIG WANT_EXIT CHECKS...: runs the exposure check on CONFIG and prints one line
# per expectation (tests/e2e/check-exposure.py judges the report). CHECKS are "check=level[|level]" (a finding of that check at one of those
# levels must exist), "check!=level[|level]" (none may), or "port:N" (a high or critical
# viewer_ports finding names port N).
expose() {
  local name="$1" config="$2" want="$3" code=0
  shift 3
  "$VIGIE_BIN" check --exposure --json --lang en --config "$config" >"$WORK/exposure-$name.json" 2>"$WORK/exposure-$name.err" || code=$?
  python3 "$E2E/check-exposure.py" "$name" "$WORK/exposure-$name.json" "$code" "$want" "$@" || rc=1
}

# This deployment: nothing high or critical (the dev certificate is only a warning; so is the
# clinic's provider, which asks for no assurance level, while Pro Santé Connect's eidas1 is ok).
expose careful "$CONFIG" "0|3" upstream=ok upstream_address=ok upstream_credentials=ok second_factor=ok \
  policy=ok "viewer_ports=ok|info" tls=ok "certificate!=high|critical" "gateway!=high|critical" \
  oidc_assurance=ok oidc_assurance=warning "oidc_assurance!=high|critical"

# CNIL case 1: an Orthanc with no credentials, listening on every address (no loopback shim,
# remote access on), and a password alone at sign-in.
CARELESS_PORT="$(free_port)"
mkdir -p "$WORK/careless/orthanc/db" "$WORK/careless/orthanc/webviewer-cache"
sed -e "s#@WORK@#$WORK/careless#g" -e "s#@HTTP_PORT@#$CARELESS_PORT#g" -e "s#@USER@#nobody#g" \
  -e "s#@PASSWORD@#unused#g" -e 's#"AuthenticationEnabled" : true#"AuthenticationEnabled" : false#' \
  -e 's#"RemoteAccessAllowed" : false#"RemoteAccessAllowed" : true#' \
  "$E2E/orthanc.json.in" >"$WORK/careless/orthanc.json"
"$ORTHANC_BIN" --logfile="$WORK/careless/orthanc.log" "$WORK/careless/orthanc.json" >/dev/null 2>&1 &
PIDS+=("$!")
for ((i = 0; i < 300; i++)); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$CARELESS_PORT/system")" == 200 ]] && break
  sleep 0.1
done
((i < 300)) || { echo "FAIL exposure/cnil: the careless Orthanc did not start"; rc=1; }
sed -e "s#^  url: .*#  url: \"http://127.0.0.1:$CARELESS_PORT\"#" \
  -e '/^  credentials:/,/^    password_file:/d' -e 's#^auth:#auth:\n  second_factor: off#' \
  "$CONFIG" >"$WORK/careless.yaml"
careless=(upstream_credentials=high second_factor=high)
# The port check needs an address besides loopback (containers and CI machines have one).
if ip -o addr show scope global | grep -q .; then careless+=("port:$CARELESS_PORT"); fi
expose cnil-open-orthanc "$WORK/careless.yaml" 1 "${careless[@]}"

# CNIL case 2: the viewer on a public address (203.0.113.10 is a documentation range, globally
# routable in form; nothing answers there).
sed -e 's#^  url: .*#  url: "http://203.0.113.10:8042"#' "$CONFIG" >"$WORK/public.yaml"
expose cnil-public-viewer "$WORK/public.yaml" 1 upstream_address=critical

# ---- 9. sign-in through the OpenID providers, in the browser ---------------------------------
# tests/e2e/oidc.mjs: Pro Santé Connect to the viewers and sign-out through it; then it stops
# that provider (it stays down) and tries again; then the clinic's provider.
oidc_rc=0
timeout --kill-after=10 300 node "$E2E/oidc.mjs" || oidc_rc=$?
if ((oidc_rc == 124 || oidc_rc == 137)); then
  echo "FAIL the OpenID browser test was stopped after 300 s (Chromium hung?): run with VIGIE_E2E_KEEP=1 and read the logs"
fi
((oidc_rc == 0)) || rc=1

# ---- 9b. the trail and the log name the OpenID users; the provider down is logged at WARN --
# The Web Viewer scrolled the synthetic CT as 810000000001 (oidc.mjs, a), a session of psc.
sleep 5
viewed_once 810000000001 || true
for who in "810000000001 psc" "$CLINIC_USER clinic"; do
  read -r user provider <<<"$who"
  if jq -se --arg u "$user" --arg p "$provider" \
    'any(.[]; .event.type == "signed_in" and .event.user == $u and .event.method == "oidc" and .event.provider == $p)' \
    "$WORK"/state/audit/audit-*.jsonl >/dev/null 2>&1; then
    echo "PASS audit: the trail has $user's sign-in through $provider (signed_in, method oidc)"
  else
    echo "FAIL audit: no signed_in record of $user with method oidc and provider $provider in $WORK/state/audit"; rc=1
  fi
  if jq -ne --arg u "$user" --arg p "$provider" \
    'any(inputs; .level == "INFO" and .message == "signed in" and .user == $u and .provider == $p)' \
    "$WORK/vigie.log" >/dev/null 2>&1; then
    echo "PASS log: \"signed in\" (INFO) names $user and provider $provider"
  else
    echo "FAIL log: no INFO \"signed in\" line naming $user and provider $provider in $WORK/vigie.log"; rc=1
  fi
done
down="$(jq -c 'select(.message == "OpenID sign-in refused" and .provider == "psc")' "$WORK/vigie.log" 2>/dev/null)"
if [[ -n "$down" ]] && jq -se 'all(.[]; .level == "WARN" and .reason == "provider_unavailable" and (.client | length > 0))' <<<"$down" >/dev/null; then
  echo "PASS log: the provider down is WARN \"OpenID sign-in refused\", reason provider_unavailable, with the client ($(wc -l <<<"$down") lines)"
else
  echo "FAIL log: want WARN \"OpenID sign-in refused\" lines for psc, all provider_unavailable, got: ${down:-none}"; rc=1
fi
leak='eyJ[A-Za-z0-9_-]{10,}\.|[?&]code=|__Host-vigie(-oidc)?='
if grep -Eq "$leak" "$WORK/vigie.log"; then
  echo "FAIL log: a token, code or cookie is in $WORK/vigie.log: $(grep -Eo ".{0,40}($leak).{0,20}" "$WORK/vigie.log" | head -n1)"; rc=1
else
  echo "PASS log: no token, code or session cookie in Vigie's log"
fi

# ---- 10. the audit trail after the real sessions above: intact, and it names the sign-ins -----
# The running gateway has not sealed its newest lines yet: verify says so and still checks them.
if audit_out=$("$VIGIE_BIN" audit verify --config "$CONFIG" 2>&1); then
  echo "PASS audit: $audit_out"
else
  echo "FAIL audit: vigie audit verify: $audit_out"; rc=1
fi
if grep -qs '"type":"signed_in"' "$WORK"/state/audit/audit-*.jsonl; then
  echo "PASS audit: the browsers' sign-ins are in the trail"
else
  echo "FAIL audit: no signed_in record in $WORK/state/audit"; rc=1
fi

kill -0 "$VIGIE_PID" 2>/dev/null || { echo "FAIL vigie serve is no longer running (crash?): see its log below"; rc=1; }
kill -0 "$ORTHANC_PID" 2>/dev/null || { echo "FAIL Orthanc is no longer running: see its log below"; rc=1; }
if ((rc != 0)); then
  show_logs
  log "end-to-end test FAILED after $((SECONDS - started)) s (VIGIE_E2E_KEEP=1 keeps the configs, logs and database)"
  exit 1
fi
log "end-to-end test passed in $((SECONDS - started)) s"
