"""Signs in on a running gatehouse's login page and prints the Cookie header value that
carries the session (for load scripts that drive the authorization endpoint).

usage: session_cookie.py BASE_URL USERNAME PASSWORD
"""
import html
import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request

base, username, password = sys.argv[1:4]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
with opener.open(f"{base}/login") as res:
    page = res.read().decode()
csrf = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": csrf}).encode()
with opener.open(urllib.request.Request(f"{base}/login", data=form)) as res:
    assert res.status == 200, f"sign-in failed: {res.status}"
print("; ".join(f"{c.name}={c.value}" for c in jar))
