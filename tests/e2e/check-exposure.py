#!/usr/bin/env python3
"""Judges one `vigie check --exposure --json` report against what scripts/e2e.sh expects of the
deployment it describes. One PASS/FAIL line per expectation, prefixed `exposure/NAME`; exit 1 when
any failed.

usage: check-exposure.py NAME REPORT.json EXIT_STATUS WANT_EXIT CHECKS...
  WANT_EXIT  the exit statuses accepted, separated by | ("0|3")
  CHECKS     "check=level[|level]": a finding of that check at one of those levels must exist;
             "check!=level[|level]": none may;
             "port:N": a high or critical viewer_ports finding names port N.
"""

import json
import sys


def main(argv):
    name, path, code, want, *checks = argv
    failed = 0

    def line(ok, text):
        nonlocal failed
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} exposure/{name}: {text}")

    try:
        with open(path) as f:
            findings = json.load(f)
    except (OSError, ValueError) as e:
        line(False, f"no JSON report ({e})")
        return 1
    line(code in want.split("|"), f"exit status {code} (want {want})")
    for c in checks:
        if c.startswith("port:"):
            port = c[5:]
            hit = [f for f in findings if f["check"] == "viewer_ports" and f["level"] in ("high", "critical")
                   and f"Port {port} " in f["message"]]
            line(bool(hit), f"Orthanc's port {port} reachable on a network address is flagged"
                 + (f": {hit[0]['message']}" if hit else ""))
            continue
        neg = "!=" in c
        check, levels = c.split("!=" if neg else "=")
        levels = levels.split("|")
        hit = [f for f in findings if f["check"] == check and f["level"] in levels]
        if neg:
            line(not hit, f"no {check} finding at {'/'.join(levels)}"
                 + (f" (got: {hit[0]['message']})" if hit else ""))
        else:
            line(bool(hit), f"{check} is {'/'.join(levels)}"
                 + (f": {hit[0]['message']}" if hit
                    else f" (report: {[(f['check'], f['level']) for f in findings]})"))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
