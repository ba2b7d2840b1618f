"""Signs in to Vigie through its form (GET the page, POST with the CSRF token and a TOTP code)
and prints the session cookie (`__Host-vigie=...`). Used by scripts/bench.sh.
usage: signin.py HOST PORT USER PASSWORD TOTP_BASE32"""
import sys, ssl, http.client, urllib.parse, hmac, hashlib, struct, time, base64, re
host, port, user, pw, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def totp(b32):
    key = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    msg = struct.pack(">Q", int(time.time()) // 30)
    h = hmac.new(key, msg, hashlib.sha1).digest()
    o = h[-1] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o+4])[0] & 0x7fffffff) % 1000000)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection(host, port, context=ctx)
c.request("GET", "/_vigie/login"); r = c.getresponse(); page = r.read().decode()
nonce = [v.split(";")[0].split("=",1)[1] for k, v in r.getheaders() if k.lower()=="set-cookie" and v.startswith("__Host-vigie-csrf=")][0]
tok = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"username": user, "password": pw, "totp": totp(secret), "csrf": tok, "next": "/"})
c.request("POST", "/_vigie/login", body, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "__Host-vigie-csrf=" + nonce})
r = c.getresponse(); r.read()
ck = [v.split(";")[0] for k, v in r.getheaders() if k.lower()=="set-cookie" and v.startswith("__Host-vigie=")]
if r.status != 303 or not ck: sys.exit("login failed: %d" % r.status)
print(ck[0])
