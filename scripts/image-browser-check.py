#!/usr/bin/env python3
"""A browser's view of the gateway run as the image runs it, for scripts/docker-check.sh: the
certificate verified against CA_FILE for SERVER_NAME (resolved to 127.0.0.1), TLS 1.3, a page
without a session sent to the sign-in page, plain HTTP redirected to HTTPS, then signing in
through the form (password + the TOTP code CODE) and a request that reaches the upstream, which
answers only with the credentials Vigie read from its secret.

Prints one line with what it saw; exit 0 when everything is as expected, 1 otherwise.

usage: image-browser-check.py HTTPS_PORT HTTP_PORT SERVER_NAME CA_FILE USER PASSWORD CODE
"""

import http.client
import re
import socket
import ssl
import sys
import urllib.parse


def set_cookies(response, name):
    return [v.split(";")[0] for k, v in response.getheaders()
            if k.lower() == "set-cookie" and v.startswith(name + "=")]


def main(https_port, http_port, name, ca, user, password, code):
    real = socket.getaddrinfo
    socket.getaddrinfo = lambda host, *a, **k: real("127.0.0.1" if host == name else host, *a, **k)
    ctx = ssl.create_default_context(cafile=ca)  # verifies the chain and the name

    def conn():
        return http.client.HTTPSConnection(name, int(https_port), context=ctx, timeout=10)

    seen = []
    problems = []

    c = conn()
    c.request("GET", "/app/explorer.html", headers={"Accept": "text/html"})
    r = c.getresponse()
    r.read()
    tls = c.sock.version()
    seen.append(tls)
    if tls != "TLSv1.3":
        problems.append(f"TLS version {tls}, expected TLSv1.3")
    gate = (r.status, r.getheader("Location"))
    seen.append(f"gate {gate[0]} {gate[1]}")
    if gate[0] not in (302, 303) or not (gate[1] or "").startswith("/_vigie/login"):
        problems.append("a page without a session was not sent to /_vigie/login")

    h = http.client.HTTPConnection("127.0.0.1", int(http_port), timeout=10)
    h.request("GET", "/app/explorer.html", headers={"Host": name})
    hr = h.getresponse()
    redirect = (hr.status, hr.getheader("Location"))
    seen.append(f"http {redirect[0]} {redirect[1]}")
    if redirect != (301, f"https://{name}/app/explorer.html"):
        problems.append(f"plain HTTP was not redirected (301) to https://{name}/app/explorer.html")

    c = conn()
    c.request("GET", "/_vigie/login")
    r = c.getresponse()
    page = r.read().decode()
    nonce = set_cookies(r, "__Host-vigie-csrf")
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    if not nonce or not token:
        problems.append(f"the sign-in page has no CSRF cookie or token ({r.status})")
        print(" | ".join(seen) + " | FAILED: " + "; ".join(problems))
        return 1
    body = urllib.parse.urlencode({"username": user, "password": password, "totp": code,
                                   "csrf": token.group(1), "next": "/"})
    c.request("POST", "/_vigie/login", body,
              {"Content-Type": "application/x-www-form-urlencoded", "Cookie": nonce[0]})
    r = c.getresponse()
    answer = r.read()
    session = set_cookies(r, "__Host-vigie")
    if not session:
        problems.append(f"sign-in refused: {r.status} {answer[:300]!r}")
        print(" | ".join(seen) + " | FAILED: " + "; ".join(problems))
        return 1
    seen.append("signed in")

    c.request("GET", "/system", headers={"Cookie": session[0]})
    r = c.getresponse()
    upstream = r.read()[:40]
    seen.append(f"/system {r.status} {upstream!r}")
    if r.status != 200:
        problems.append("the upstream refused Vigie's credentials (or was not reached)")

    print(" | ".join(seen) + (" | FAILED: " + "; ".join(problems) if problems else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
