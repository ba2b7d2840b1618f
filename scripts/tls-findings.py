#!/usr/bin/env python3
"""Judges a testssl.sh JSON report (--jsonfile) for scripts/tls-scan.sh: prints the protocols
offered, then PASS when no finding is of severity MEDIUM or worse, except the two that only a
public CA can fix (no OCSP/CRL URI in a development certificate, no DNS CAA record); otherwise
FAIL with each such finding, and exit 1.

usage: tls-findings.py TESTSSL.json
"""

import json
import sys

# A development CA has no OCSP/CRL endpoint and localhost no CAA record.
EXPECTED = {"cert_revocation", "DNS_CAArecord"}
SERIOUS = ("MEDIUM", "HIGH", "CRITICAL")
PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")


def main(path):
    try:
        with open(path) as f:
            findings = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL testssl.sh: no JSON report ({e}); see testssl's output")
        return 1
    bad = [f for f in findings if f["severity"] in SERIOUS and f["id"] not in EXPECTED]
    protocols = {f["id"]: f["finding"] for f in findings if f["id"] in PROTOCOLS}
    print("testssl protocols: " + ", ".join(f"{k}: {v}" for k, v in protocols.items()))
    if bad:
        print("FAIL testssl.sh:")
        for f in bad:
            print(f"  {f['severity']} {f['id']}: {f['finding']}")
        return 1
    print(f"PASS testssl.sh: {len(findings)} findings, none MEDIUM or worse "
          f"(expected for a development CA: {', '.join(sorted(EXPECTED))})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
