#!/usr/bin/env python3
"""Writes Orthanc's route table (method + path template, and where each one was seen) as JSON:
tests/e2e/orthanc-1.10-routes.json, which tests/e2e/routes.py tries route by route through Vigie.

Nothing in the table is written from memory. Each route comes from the installed Orthanc:

* core REST API: `Orthanc --openapi=FILE`. Orthanc documents a route by calling its handler, and
  some handlers fetch a sample answer from the internet: offline, those are left out of the
  OpenAPI file but named in its log ("Ignoring URI without API documentation: GET /patients"),
  so the table takes both. `--openapi` builds the REST API without plugins and without the
  Explorer (OrthancServer/Sources/main.cpp, 1.10.1), whatever the configuration file says;
* plugins: Orthanc started with the DICOMweb and Web Viewer plugins and `--verbose` logs each
  route a plugin registers ("Plugin has registered a REST callback ... on: /dicom-web/servers/
  ([^/]*)/stow"). A plugin route is a regular expression that takes every method and lets the
  plugin answer 405 to those it does not serve, so each route is sent GET, POST, PUT and DELETE
  (dummy identifiers, empty bodies, empty database) and the methods not answered 405 are kept,
  with the probe's status. A few handlers refuse a method with 400 instead of 405 (DICOMweb 1.7's
  /servers/{server}/retrieve and /wado: "Parameter out of range" for all but POST): those stay
  in the table, which is conservative (every method Orthanc hands to a handler is judged);
* the Explorer: `/`, `/favicon.ico` (registered only when the Explorer is on:
  OrthancRestSystem.cpp) and the static folder `/app/` (main.cpp), checked on the same Orthanc;
* Stone Web Viewer and OHIF are not packaged in Debian 12, so their URL prefixes come from their
  documentation, as the `source` of each of those entries says.

Run it when Orthanc or a plugin changes version (about 20 s):
    python3 tests/e2e/orthanc-routes.py [--out tests/e2e/orthanc-1.10-routes.json]
It needs target/e2e/loopback-bind.so (built by scripts/e2e.sh), so that the Orthanc it starts
listens on loopback only (Orthanc 1.10 always binds 0.0.0.0).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
METHODS = ("GET", "POST", "PUT", "DELETE")

# Viewers that Debian does not package: their routes as their documentation gives them.
STONE_DOC = "https://orthanc.uclouvain.be/book/plugins/authorization.html (redirect-url .../stone-webviewer/index.html?study=...)"
STONE_SRC = "orthanc-stone Applications/StoneWebViewer/Plugin/Plugin.cpp: STONE_WEB_VIEWER_ROOT = \"/stone-webviewer\""
OHIF_DOC = "https://orthanc.uclouvain.be/book/plugins/ohif.html (RouterBasename defaults to /ohif/; GET /studies/{id}/ohif-dicom-json)"
DOCUMENTED = [
    ("GET", "/stone-webviewer/index.html", f"docs: {STONE_DOC}"),
    ("GET", "/stone-webviewer/configuration.json", f"docs: {STONE_SRC}"),
    ("GET", "/ohif/", f"docs: {OHIF_DOC}"),
    ("GET", "/ohif/viewer", f"docs: {OHIF_DOC}"),
    ("GET", "/studies/{id}/ohif-dicom-json", f"docs: {OHIF_DOC}"),
]
EXPLORER = [
    ("GET", "/", "explorer: OrthancRestSystem.cpp registers / (redirect to app/explorer.html) when the Explorer is on"),
    ("GET", "/favicon.ico", "explorer: OrthancRestSystem.cpp registers /favicon.ico when the Explorer is on"),
    ("GET", "/app/{...}", "explorer: main.cpp serves the Explorer's static folder at /app"),
]


def die(msg):
    print(f"[orthanc-routes.py] error: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def core_routes(orthanc, work):
    """(method, path) pairs of Orthanc's own REST API, from --openapi and its log."""
    out = os.path.join(work, "openapi.json")
    run = subprocess.run([orthanc, f"--openapi={out}"], capture_output=True, text=True, timeout=300, cwd=work)
    if run.returncode != 0 or not os.path.exists(out):
        die(f"{orthanc} --openapi failed ({run.returncode}): {run.stderr[-2000:]}")
    with open(out) as f:
        doc = json.load(f)
    routes = {}
    for path, item in doc["paths"].items():
        for method in item:
            if method.upper() in METHODS:
                routes[(method.upper(), path)] = "openapi"
    for m in re.finditer(r"Ignoring URI without API documentation: (GET|POST|PUT|DELETE) (\S+)", run.stderr):
        routes.setdefault((m.group(1), m.group(2)), "openapi-log (undocumented)")
    total = re.search(r"contains (\d+) paths over a total of (\d+) paths", run.stderr)
    if not total or int(total.group(2)) != len(routes):
        die(f"Orthanc counts {total.group(2) if total else '?'} routes, {len(routes)} found in its OpenAPI file and log")
    return doc["info"]["version"], routes


def template(regex):
    """/dicom-web/studies/([^/]*)/series/([^/]*) -> /dicom-web/studies/{study}/series/{series}."""
    names = {"studies": "{study}", "series": "{series}", "instances": "{instance}", "frames": "{frames}", "servers": "{server}"}
    parts = regex.replace("([^/]*)", "\0").split("/")
    out = []
    for i, part in enumerate(parts):
        if part == "\0":
            out.append(names.get(parts[i - 1], "{id}"))
        elif part == "(.*)":
            out.append("{...}")
        elif re.search(r"[()\[\]*+?\\|^$]", part):
            die(f"unexpected regular expression in plugin route {regex}")
        else:
            out.append(part)
    return "/".join(out)


def probe_path(tmpl):
    """Some handlers check their parameters before the method (a frame list must be numbers, a
    server must be declared), so the probe gives well-formed ones."""
    return re.sub(r"\{[^}]*\}", "dummy", tmpl.replace("{frames}", "1"))


def request(port, method, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def running_routes(orthanc, plugins, shim, work):
    """Plugin routes (with the methods their handlers serve) and the Explorer's, from a running Orthanc."""
    port = free_port()
    config = {
        "Name": "route-table",
        "StorageDirectory": f"{work}/db",
        "IndexDirectory": f"{work}/db",
        "Plugins": [f"{plugins}/libOrthancWebViewer.so", f"{plugins}/libOrthancDicomWeb.so"],
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "WebDavEnabled": False,
        "ExecuteLuaEnabled": False,
        "OrthancExplorerEnabled": True,
        "WebViewer": {"CachePath": f"{work}/webviewer-cache"},
        # A declared server (nothing listens on port 9, and no probe makes the plugin call it).
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado",
                     "Servers": {"dummy": ["http://127.0.0.1:9/dicom-web/"]}},
    }
    with open(f"{work}/orthanc.json", "w") as f:
        json.dump(config, f)
    log = f"{work}/orthanc.log"
    env = dict(os.environ, LD_PRELOAD=shim)
    proc = subprocess.Popen([orthanc, "--verbose", f"--logfile={log}", f"{work}/orthanc.json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                die(f"Orthanc exited at start; see {log}")
            try:
                if request(port, "GET", "/system")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            die("Orthanc did not answer /system within 60 s")
        with open(f"{work}/orthanc.log") as f:
            text = f.read()
        regexes = re.findall(r"Plugin has registered a REST callback .*? on: (\S+)", text)
        if not regexes:
            die("no plugin route in Orthanc's log: were the plugins loaded?")
        routes = {}
        # Method by method, DELETE last: deleting the declared server must not change what
        # the other probes see.
        for method in METHODS:
            for regex in regexes:
                tmpl = template(regex)
                status, _ = request(port, method, probe_path(tmpl))
                if status != 405:
                    routes[(method, tmpl)] = f"plugin: {regex} (probe: {status})"
        for regex in regexes:
            if not any(path == template(regex) for _, path in routes):
                die(f"{regex}: every method answered 405")
        for method, path, source in EXPLORER:
            status, _ = request(port, method, path.replace("{...}", "explorer.html"))
            if status >= 400:
                die(f"{method} {path} answered {status}: is the Explorer on?")
            routes[(method, path)] = source
        versions = {}
        for name in ("dicom-web", "web-viewer"):
            req = urllib.request.urlopen(f"http://127.0.0.1:{port}/plugins/{name}", timeout=10)
            versions[name] = json.load(req)["Version"]
        return routes, versions
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orthanc", default="/usr/sbin/Orthanc")
    ap.add_argument("--plugins", default="/usr/share/orthanc/plugins")
    ap.add_argument("--shim", default=os.path.join(ROOT, "target/e2e/loopback-bind.so"))
    ap.add_argument("--out", default=os.path.join(HERE, "orthanc-1.10-routes.json"))
    args = ap.parse_args()
    if not os.path.exists(args.shim):
        die(f"{args.shim} is missing: run scripts/e2e.sh once (it builds it), or pass --shim")
    work = tempfile.mkdtemp(prefix="orthanc-routes.")
    try:
        version, routes = core_routes(args.orthanc, work)
        plugin_routes, plugins = running_routes(args.orthanc, args.plugins, args.shim, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    core = len(routes)
    for key, source in plugin_routes.items():
        routes.setdefault(key, source)
    for method, path, source in DOCUMENTED:
        routes.setdefault((method, path), source)
    rows = sorted(routes.items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0])))
    lines = [json.dumps({"method": m, "path": p, "source": s}) for (m, p), s in rows]
    header = {
        "orthanc": version,
        "plugins": plugins,
        "generated_by": "python3 tests/e2e/orthanc-routes.py (see its docstring for where each route comes from)",
        "counts": {"core": core, "total": len(rows)},
    }
    with open(args.out, "w") as f:
        f.write("{\n")
        for k, v in header.items():
            f.write(f" {json.dumps(k)}: {json.dumps(v)},\n")
        f.write(' "routes": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
    print(f"{args.out}: Orthanc {version} ({core} core routes), plugins {plugins}, {len(rows)} routes in all")


if __name__ == "__main__":
    main()
