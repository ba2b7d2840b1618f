"""Signs in to Vigie through its form (GET the page, POST with the CSRF token and a TOTP code)
and prints the session cookie (`__Host-vigie=...`). Used by scripts/bench.sh, which takes the code
from Vigie's own TOTP implementation (examples/totp.rs).
usage: signin.py HOST PORT USER PASSWORD CODE"""
import sys, ssl, http.client, urllib.parse, re
host, port, user, pw, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection(host, port, context=ctx)
c.request("GET", "/_vigie/login"); r = c.getresponse(); page = r.read().decode()
nonce = [v.split(";")[0].split("=",1)[1] for k, v in r.getheaders() if k.lower()=="set-cookie" and v.startswith("__Host-vigie-csrf=")][0]
tok = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"username": user, "password": pw, "totp": code, "csrf": tok, "next": "/"})
c.request("POST", "/_vigie/login", body, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "__Host-vigie-csrf=" + nonce})
r = c.getresponse(); r.read()
ck = [v.split(";")[0] for k, v in r.getheaders() if k.lower()=="set-cookie" and v.startswith("__Host-vigie=")]
if r.status != 303 or not ck: sys.exit("login failed: %d" % r.status)
print(ck[0])
