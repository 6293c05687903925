"""Mints refresh tokens from a running gatehouse through the real flow: sign in once on
the login page, then authorization code -> token for a confidential, pre-authorized
client. Prints one refresh token per line.

usage: mint_refresh_tokens.py BASE_URL CLIENT_ID SECRET USERNAME PASSWORD COUNT
"""
import base64
import html
import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request

base, client_id, secret, username, password, count = sys.argv[1:7]
redirect = "https://rp.example/cb"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)


def call(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


status, _, page = call(f"{base}/login")
csrf = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": csrf}).encode()
status, _, _ = call(f"{base}/login", form)
assert status == 200, f"sign-in failed: {status}"
basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
for _ in range(int(count)):
    query = urllib.parse.urlencode({"response_type": "code", "client_id": client_id,
                                    "redirect_uri": redirect, "scope": "openid offline_access api"})
    status, headers, body = call(f"{base}/oauth2/authorize?{query}")
    location = headers.get("Location") or headers.get("location")
    assert status == 302 and location.startswith(redirect), f"authorize: {status} {body[:200]}"
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": redirect}).encode()
    status, _, body = call(f"{base}/oauth2/token", form, {"Authorization": basic})
    assert status == 200, f"token: {status} {body}"
    print(json.loads(body)["refresh_token"])
