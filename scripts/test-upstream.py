#!/usr/bin/env python3
"""A stand-in for Orthanc with authentication, for scripts/docker-check.sh: answers every GET on
127.0.0.1:PORT with 200 and a small JSON body when it carries HTTP Basic credentials for the user
"Vigie" with the password in PASSWORD_FILE (what docker/vigie.yaml sends), 401 otherwise. Runs
until killed.

usage: test-upstream.py PORT PASSWORD_FILE
"""

import base64
import http.server
import sys


def main(port, password_file):
    with open(password_file) as f:
        password = f.read().rstrip("\r\n")
    good = "Basic " + base64.b64encode(f"Vigie:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == good
            body = b'{"Name": "test upstream"}' if ok else b"credentials required"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), sys.argv[2])
