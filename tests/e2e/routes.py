#!/usr/bin/env python3
"""Every route of Orthanc's REST API, tried through Vigie with the Orthanc access preset.

scripts/e2e.sh runs this after the browser test, against the same real Orthanc 1.10 (Web Viewer
and DICOMweb plugins) and the same `vigie serve`, whose access section is the one of
config/orthanc.example.yaml. It signs in through the real sign-in form (password + TOTP) and:

  a. as the doctor (role `doctor` only), sends every route of tests/e2e/orthanc-1.10-routes.json
     (written by tests/e2e/orthanc-routes.py from the installed Orthanc), each path parameter
     filled with an identifier of the loaded samples, or a dummy where none applies. A route
     listed in DOCTOR_MAY below must reach Orthanc (any answer that is not one of the gateway's
     own pages); every other route must get the gateway's own 403 page. The table is written
     out here on purpose, not read from the policy code: if the preset drifts, this fails;
  b. as a doctor who also has the optional roles `download` and `upload`: the archives and
     media reach Orthanc, the rest of the optional block stays exact (no export, no modify);
  c. as the admin: a few read routes and some admin-only routes that change nothing reach
     Orthanc (200), and Lua is refused to him too;
  d. Orthanc, asked directly, still has the study every request above was about.

Requests are sent reads first and with empty bodies, so that a route the gateway wrongly lets
through does as little as possible before it is reported. Output: a summary per account, one
FAIL line per wrong answer (PASS lines for the checks), then "N passed, N failed"; exit 1 on
any failure.

Input: VIGIE_E2E_RUN, the JSON file scripts/e2e.sh writes (addresses, accounts, samples).
"""

import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "orthanc-1.10-routes.json")
# Vigie's own refusal page (src/error_page.rs), in English and French: an Orthanc 403 has neither.
GATEWAY_403 = ("Access to this resource is refused.", "L'accès à cette ressource est refusé.")
# Any page of the gateway's own (error_page.rs): "<h1>403 · Forbidden</h1>" then a French line.
GATEWAY_PAGE = re.compile(r'<h1>(\d{3}) · [^<]*</h1><p>[^<]*</p><p lang="fr">')

# What the doctor (role `doctor`, nothing else) may use of the route table. Every route of the
# table that is not here must be refused by the gateway.
DOCTOR_MAY = """
# Orthanc Explorer: the root (redirects to it), its files, the server's name it shows on every
# page, the plugins' additions to it.
GET  /
GET  /favicon.ico
GET  /app/{...}
GET  /system
GET  /plugins/explorer.js
# Searching (the Explorer's lookup page, Stone).
POST /tools/find
POST /tools/lookup
# Reading patients, studies, series and instances (not their archives or media: role download).
GET  /patients
GET  /patients/{id}
GET  /patients/{id}/attachments
GET  /patients/{id}/attachments/{name}
GET  /patients/{id}/attachments/{name}/compressed-data
GET  /patients/{id}/attachments/{name}/compressed-md5
GET  /patients/{id}/attachments/{name}/compressed-size
GET  /patients/{id}/attachments/{name}/data
GET  /patients/{id}/attachments/{name}/info
GET  /patients/{id}/attachments/{name}/is-compressed
GET  /patients/{id}/attachments/{name}/md5
GET  /patients/{id}/attachments/{name}/size
GET  /patients/{id}/instances
GET  /patients/{id}/instances-tags
GET  /patients/{id}/metadata
GET  /patients/{id}/metadata/{name}
GET  /patients/{id}/module
GET  /patients/{id}/protected
GET  /patients/{id}/series
GET  /patients/{id}/shared-tags
GET  /patients/{id}/statistics
GET  /patients/{id}/studies
GET  /studies
GET  /studies/{id}
GET  /studies/{id}/attachments
GET  /studies/{id}/attachments/{name}
GET  /studies/{id}/attachments/{name}/compressed-data
GET  /studies/{id}/attachments/{name}/compressed-md5
GET  /studies/{id}/attachments/{name}/compressed-size
GET  /studies/{id}/attachments/{name}/data
GET  /studies/{id}/attachments/{name}/info
GET  /studies/{id}/attachments/{name}/is-compressed
GET  /studies/{id}/attachments/{name}/md5
GET  /studies/{id}/attachments/{name}/size
GET  /studies/{id}/instances
GET  /studies/{id}/instances-tags
GET  /studies/{id}/metadata
GET  /studies/{id}/metadata/{name}
GET  /studies/{id}/module
GET  /studies/{id}/module-patient
GET  /studies/{id}/ohif-dicom-json
GET  /studies/{id}/patient
GET  /studies/{id}/series
GET  /studies/{id}/shared-tags
GET  /studies/{id}/statistics
GET  /series
GET  /series/{id}
GET  /series/{id}/attachments
GET  /series/{id}/attachments/{name}
GET  /series/{id}/attachments/{name}/compressed-data
GET  /series/{id}/attachments/{name}/compressed-md5
GET  /series/{id}/attachments/{name}/compressed-size
GET  /series/{id}/attachments/{name}/data
GET  /series/{id}/attachments/{name}/info
GET  /series/{id}/attachments/{name}/is-compressed
GET  /series/{id}/attachments/{name}/md5
GET  /series/{id}/attachments/{name}/size
GET  /series/{id}/instances
GET  /series/{id}/instances-tags
GET  /series/{id}/metadata
GET  /series/{id}/metadata/{name}
GET  /series/{id}/module
GET  /series/{id}/numpy
GET  /series/{id}/ordered-slices
GET  /series/{id}/patient
GET  /series/{id}/shared-tags
GET  /series/{id}/statistics
GET  /series/{id}/study
GET  /instances
GET  /instances/{id}
GET  /instances/{id}/attachments
GET  /instances/{id}/attachments/{name}
GET  /instances/{id}/attachments/{name}/compressed-data
GET  /instances/{id}/attachments/{name}/compressed-md5
GET  /instances/{id}/attachments/{name}/compressed-size
GET  /instances/{id}/attachments/{name}/data
GET  /instances/{id}/attachments/{name}/info
GET  /instances/{id}/attachments/{name}/is-compressed
GET  /instances/{id}/attachments/{name}/md5
GET  /instances/{id}/attachments/{name}/size
GET  /instances/{id}/content
GET  /instances/{id}/file
GET  /instances/{id}/frames
GET  /instances/{id}/frames/{frame}
GET  /instances/{id}/frames/{frame}/image-int16
GET  /instances/{id}/frames/{frame}/image-uint16
GET  /instances/{id}/frames/{frame}/image-uint8
GET  /instances/{id}/frames/{frame}/matlab
GET  /instances/{id}/frames/{frame}/numpy
GET  /instances/{id}/frames/{frame}/preview
GET  /instances/{id}/frames/{frame}/raw
GET  /instances/{id}/frames/{frame}/raw.gz
GET  /instances/{id}/frames/{frame}/rendered
GET  /instances/{id}/header
GET  /instances/{id}/image-int16
GET  /instances/{id}/image-uint16
GET  /instances/{id}/image-uint8
GET  /instances/{id}/matlab
GET  /instances/{id}/metadata
GET  /instances/{id}/metadata/{name}
GET  /instances/{id}/module
GET  /instances/{id}/numpy
GET  /instances/{id}/patient
GET  /instances/{id}/pdf
GET  /instances/{id}/preview
GET  /instances/{id}/rendered
GET  /instances/{id}/series
GET  /instances/{id}/simplified-tags
GET  /instances/{id}/statistics
GET  /instances/{id}/study
GET  /instances/{id}/tags
# DICOMweb reads: QIDO-RS, WADO-RS, WADO-URI (not STOW: role upload; not /dicom-web/servers/).
GET  /dicom-web/studies
GET  /dicom-web/series
GET  /dicom-web/instances
GET  /dicom-web/studies/{study}
GET  /dicom-web/studies/{study}/instances
GET  /dicom-web/studies/{study}/metadata
GET  /dicom-web/studies/{study}/rendered
GET  /dicom-web/studies/{study}/series
GET  /dicom-web/studies/{study}/series/{series}
GET  /dicom-web/studies/{study}/series/{series}/instances
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{...}
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata
GET  /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered
GET  /dicom-web/studies/{study}/series/{series}/metadata
GET  /dicom-web/studies/{study}/series/{series}/rendered
GET  /wado
# The Orthanc Web Viewer, Stone Web Viewer and OHIF pages.
GET  /web-viewer/app/{...}
GET  /web-viewer/libs/{...}
GET  /web-viewer/series/{...}
GET  /web-viewer/is-stable-series/{...}
GET  /web-viewer/instances/{...}
GET  /stone-webviewer/index.html
GET  /stone-webviewer/configuration.json
GET  /ohif/
GET  /ohif/viewer
"""

# What the optional roles add (the account also has `doctor`), and what they still do not.
DOWNLOADS = ["/patients/{id}/archive", "/studies/{id}/archive", "/series/{id}/archive",
             "/patients/{id}/media", "/studies/{id}/media", "/series/{id}/media"]
TRUSTED_STILL_DENIED = [("POST", "/instances/{id}/export"), ("POST", "/instances/{id}/modify"),
                        ("POST", "/patients/{id}/archive"), ("POST", "/dicom-web/servers/{server}/stow"),
                        ("DELETE", "/studies/{id}")]

# Admin-only routes that change nothing (plus reads), for the admin: each must answer 200.
ADMIN_REACHES = [("GET", "/system"), ("GET", "/patients"), ("GET", "/studies/{id}"), ("GET", "/tools/log-level"),
                 ("GET", "/modalities"), ("GET", "/peers"), ("GET", "/jobs"), ("GET", "/dicom-web/servers"),
                 ("GET", "/statistics"), ("GET", "/plugins")]

# Dangerous routes go last, so that if the gateway let one through, the others are tried first.
LAST = {("POST", "/tools/reset"), ("POST", "/tools/shutdown")}
DUMMY = "vigie-e2e-dummy"

failed = 0
passed = 0


def check(name, ok, detail=""):
    global failed, passed
    if ok:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f" ({detail})" if detail else ""))
    return ok


# ---- the run ------------------------------------------------------------------------------

def load_run():
    path = os.environ.get("VIGIE_E2E_RUN")
    if not path or not os.path.exists(path):
        sys.exit("VIGIE_E2E_RUN is not set or missing: run this test through scripts/e2e.sh")
    with open(path) as f:
        run = json.load(f)
    with open(os.path.join(run["samples"], "manifest.json")) as f:
        manifest = json.load(f)
    for m in manifest:
        with open(os.path.join(run["samples"], m["file"] + ".upload.json")) as f:
            up = json.load(f)
        m.update(instance=up["ID"], series=up["ParentSeries"], study=up["ParentStudy"], patient=up["ParentPatient"])
    run["manifest"] = manifest
    with open(run["orthanc"]["passwordFile"]) as f:
        run["orthancPassword"] = f.read().strip()
    return run


def totp(secret_b32, step):
    """The code `step` steps of 30 s from now, from Vigie's own implementation: the cargo example
    examples/totp.rs (VIGIE_TOTP_BIN, built by scripts/e2e.sh). The secret goes through standard
    input, never on a command line."""
    tool = os.environ.get("VIGIE_TOTP_BIN") or os.path.join(HERE, "../../target/debug/examples/totp")
    out = subprocess.run([tool, str(step)], input=secret_b32 + "\n", capture_output=True, text=True,
                         timeout=10, check=False)
    if out.returncode != 0:
        sys.exit(f"the TOTP helper {tool} failed: {out.stderr.strip()} (cargo build --example totp)")
    return out.stdout.strip()


# ---- HTTP to the gateway --------------------------------------------------------------------

class Gateway(http.client.HTTPSConnection):
    """TLS to 127.0.0.1, verified against the development CA for the public name."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Client:
    def __init__(self, run):
        g = run["gateway"]
        self.host, self.port = g["host"], g["port"]
        self.ctx = ssl.create_default_context(cafile=g["caFile"])
        self.conn = None
        self.cookie = ""

    def send(self, method, target, body=b"", headers=None):
        """One request; the answer's (status, headers, body). Reconnects once if the gateway
        closed the connection in between."""
        h = {"accept": "*/*", "user-agent": "vigie-e2e-routes"}
        if self.cookie:
            h["cookie"] = self.cookie
        h.update(headers or {})
        if method in ("POST", "PUT"):
            h.setdefault("content-length", str(len(body)))
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = Gateway(self.host, self.port, context=self.ctx, timeout=60)
            try:
                self.conn.request(method, target, body=body or None, headers=h)
                res = self.conn.getresponse()
                data = res.read()
                if res.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return res.status, res, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def sign_in(self, account, step):
        """The sign-in form, as a browser fills it. `step` picks the TOTP time step: the browser
        test has just used each account's current code, which the gateway refuses a second
        time, so this takes the next one (the gateway accepts one step ahead)."""
        status, res, page = self.send("GET", "/_vigie/login")
        csrf_cookie = [c.split(";")[0] for c in res.headers.get_all("set-cookie") or [] if c.startswith("__Host-vigie-csrf=")]
        token = re.search(rb'name="csrf" value="([^"]+)"', page)
        if status != 200 or not csrf_cookie or not token:
            return f"GET /_vigie/login -> {status}, csrf cookie {bool(csrf_cookie)}, token {bool(token)}"
        self.cookie = csrf_cookie[0]
        form = urllib.parse.urlencode({
            "csrf": token.group(1).decode(), "next": "/", "lang": "en", "username": account["username"],
            "password": account["password"], "totp": totp(account["totp"], step),
        }).encode()
        status, res, _ = self.send("POST", "/_vigie/login", form, {"content-type": "application/x-www-form-urlencoded"})
        session = [c.split(";")[0] for c in res.headers.get_all("set-cookie") or [] if c.startswith("__Host-vigie=")]
        if status != 303 or not session:
            return f"POST /_vigie/login -> {status}, session cookie {bool(session)}"
        self.cookie = session[0]
        return None


def verdict(status, body):
    """'denied' for the gateway's own 403 page, 'gateway <status>' for another page of the
    gateway's, 'reached' for anything that came from Orthanc."""
    text = body.decode("utf-8", "replace")
    page = GATEWAY_PAGE.search(text)
    if status == 403 and page and all(s in text for s in GATEWAY_403):
        return "denied"
    if page and page.group(1) == str(status):
        return f"gateway {status}"
    return "reached"


# ---- filling the route templates --------------------------------------------------------------

def fill(method, template, s):
    """A request target for a route template, with the sample `s`'s identifiers."""
    level = template.split("/")[1]
    ids = {"patients": s["patient"], "studies": s["study"], "series": s["series"], "instances": s["instance"],
           "plugins": "dicom-web"}
    names = {"attachments": "dicom", "metadata": "ReceptionDate" if level == "instances" else "LastUpdate"}
    out = []
    parts = template.split("/")
    for i, part in enumerate(parts):
        before = parts[i - 1] if i else ""
        if part == "{id}":
            out.append(ids.get(level, DUMMY))
        elif part == "{name}":
            out.append(names.get(before, DUMMY))
        elif part in ("{frame}", "{index}"):
            out.append("0")
        elif part == "{key}":
            out.append("archive")
        elif part == "{study}":
            out.append(s["studyUid"])
        elif part == "{series}":
            out.append(s["seriesUid"])
        elif part == "{instance}":
            out.append(s["sopUid"])
        elif part == "{frames}":
            out.append("1")
        elif part == "{server}":
            out.append(DUMMY)
        elif part == "{...}":
            out.append({
                "/app/{...}": "explorer.html",
                "/web-viewer/app/{...}": "viewer.html",
                "/web-viewer/libs/{...}": "jquery.js",
                "/web-viewer/series/{...}": s["series"],
                "/web-viewer/is-stable-series/{...}": s["series"],
                "/web-viewer/instances/{...}": f"jpeg95-{s['instance']}_0",
                "/dicom-web/app/client/{...}": "index.html",
                "/dicom-web/app/libs/{...}": "js/polyfill.min.js",
            }.get(template) or {"bulk": "7fe00010"}.get(before, DUMMY))
        elif part.startswith("{"):
            raise ValueError(f"no value for {part} in {template}")
        else:
            out.append(part)
    target = "/".join(out)
    if template == "/wado":
        # Orthanc does not decode %2F in a query: the / of the content type stays as it is.
        target += "?" + urllib.parse.urlencode({"requestType": "WADO", "studyUID": s["studyUid"],
                                                "seriesUID": s["seriesUid"], "objectUID": s["sopUid"],
                                                "contentType": "application/dicom"}, safe="/")
    return target


def body_for(method, template, s):
    """The doctor's two searches get a real body; every other request an empty one, which
    changes nothing even where Orthanc would accept the route."""
    if (method, template) == ("POST", "/tools/find"):
        return json.dumps({"Level": "Study", "Query": {}, "Limit": 1}).encode(), {"content-type": "application/json"}
    if (method, template) == ("POST", "/tools/lookup"):
        return s["studyUid"].encode(), {"content-type": "text/plain"}
    return b"", {}


def order(route):
    method, path = route
    return (route in LAST, ("GET", "POST", "PUT", "DELETE").index(method), path)


# ---- main -------------------------------------------------------------------------------------

def main():
    run = load_run()
    with open(TABLE) as f:
        table = json.load(f)
    routes = sorted({(r["method"], r["path"]) for r in table["routes"]}, key=order)
    may = set()
    for line in DOCTOR_MAY.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            method, path = line.split()
            may.add((method, path))
    unknown = sorted(may - set(routes))
    check("every route of the doctor's expected table is in Orthanc's route table", not unknown,
          ", ".join(f"{m} {p}" for m, p in unknown))
    # The CT sample: viewer.mjs leaves it in place (it deletes the MR study as the admin).
    s = next(m for m in run["manifest"] if m["file"] == "CT_small.dcm")
    print(f"# {len(routes)} routes of Orthanc {table['orthanc']} (plugins {table['plugins']}) from {os.path.basename(TABLE)};"
          f" sample study {s['study']}")

    # ---- a. the doctor ----
    doctor = Client(run)
    why = doctor.sign_in(run["accounts"]["doctor"], 1)
    if not check("a: the doctor signs in through the form (password + TOTP)", why is None, why):
        return
    started = time.monotonic()
    wrong = []
    statuses = {}
    errors = []  # allowed routes Orthanc answered with an error (a dummy value, a missing plugin)
    counts = {"allowed": 0, "denied": 0}
    for method, template in routes:
        target = fill(method, template, s)
        body, headers = body_for(method, template, s)
        status, _, data = doctor.send(method, target, body, headers)
        got = verdict(status, data)
        want = "reached" if (method, template) in may else "denied"
        counts["allowed" if want == "reached" else "denied"] += 1
        if got == want == "reached":
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400:
                errors.append(f"{method} {template} {status}")
        if got != want:
            wrong.append((method, template, target, status, got, want))
    # One FAIL line per wrong answer (each counts as a failed check).
    for method, template, target, status, got, want in wrong:
        what = "reached Orthanc" if got == "reached" else ("refused by the gateway (403)" if got == "denied" else got)
        print(f"FAIL a: doctor {method} {template}: {what}, answer {status}; want "
              f"{'Orthanc' if want == 'reached' else 'the gateway 403'} ({method} {target})")
    global failed
    failed += len(wrong)
    print(f"# a: doctor: {len(routes)} routes, {counts['allowed']} allowed, {counts['denied']} denied;"
          f" {len(wrong)} wrong; {time.monotonic() - started:.1f} s;"
          f" Orthanc's answers to the allowed ones: {dict(sorted(statuses.items()))}")
    print(f"# a: allowed routes Orthanc answered with an error: {'; '.join(errors) or 'none'}")
    if not wrong:
        check(f"a: the doctor gets the expected answer on every route ({len(routes)} routes:"
              f" {counts['allowed']} reach Orthanc, {counts['denied']} refused by the gateway)", True)
    for method, path in (("HEAD", "/app/explorer.html"), ("HEAD", "/system")):
        status, _, data = doctor.send(method, path)
        check(f"a: {method} {path} is refused (GET rules do not cover HEAD; Orthanc 1.10 answers 404 to every HEAD)",
              status == 403, f"{status}")

    # ---- b. a doctor with the optional roles ----
    trusted = Client(run)
    why = trusted.sign_in(run["accounts"]["trusted"], 1)
    if check("b: the doctor with the roles download and upload signs in", why is None, why):
        for template in DOWNLOADS:
            status, _, data = trusted.send("GET", fill("GET", template, s))
            check(f"b: download: GET {template} reaches Orthanc (200)", verdict(status, data) == "reached" and status == 200,
                  f"{status} {verdict(status, data)}")
        for method, template in TRUSTED_STILL_DENIED:
            status, _, data = trusted.send(method, fill(method, template, s))
            check(f"b: still refused: {method} {template}", verdict(status, data) == "denied", f"{status} {verdict(status, data)}")

    # ---- c. the admin ----
    admin = Client(run)
    why = admin.sign_in(run["accounts"]["admin"], 1)
    if check("c: the admin signs in", why is None, why):
        for method, template in ADMIN_REACHES:
            status, _, data = admin.send(method, fill(method, template, s))
            check(f"c: admin: {method} {template} reaches Orthanc (200)", verdict(status, data) == "reached" and status == 200,
                  f"{status} {verdict(status, data)}")
        status, _, data = admin.send("POST", "/tools/execute-script", b"", {"content-type": "text/plain"})
        check("c: admin: POST /tools/execute-script is refused by the gateway", verdict(status, data) == "denied", f"{status}")

    # ---- d. Orthanc, directly ----
    auth = base64.b64encode(f"{run['orthanc']['user']}:{run['orthancPassword']}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", run["orthanc"]["port"], timeout=30)
    conn.request("GET", f"/studies/{s['study']}", headers={"authorization": f"Basic {auth}"})
    res = conn.getresponse()
    res.read()
    check("d: Orthanc still has the sample study (nothing the doctor sent deleted it)", res.status == 200, f"{res.status}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, with its cause
        check("the route test ran to its end", False, f"{type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)
