#!/usr/bin/env python3
"""The authorization-code flow with PKCE, as a browser and a public app walk it.

    python3 code-flow.py BASE_URL CLIENT_ID REDIRECT_URI USERNAME < password

It asks for a code (with a PKCE challenge and a state), signs USERNAME in on the sign-in
page, approves the consent page, takes the code from the redirect to REDIRECT_URI (which
need not be listening: the redirect is read, not followed) and redeems it with the
verifier. It prints each hop, then the token response. Python's standard library only.
"""

import base64
import hashlib
import html.parser
import http.cookiejar
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request


class Form(html.parser.HTMLParser):
    """The first form of a page: its action and its hidden fields."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.done = None, {}, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.done:
            return
        if tag == "form" and self.action is None:
            self.action = attrs.get("action", "")
        elif tag == "input" and self.action is not None and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form" and self.action is not None:
            self.done = True


class StopAtApp(urllib.request.HTTPRedirectHandler):
    """Follows redirects within the server; a redirect to the app ends the walk."""

    def __init__(self, redirect_uri):
        self.redirect_uri = redirect_uri

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if newurl.startswith(self.redirect_uri):
            raise AtApp(newurl)
        print(f"  {code} -> {urllib.parse.urlsplit(newurl).path}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class AtApp(Exception):
    """The browser arrived at the app's redirect URI."""

    def __init__(self, url):
        super().__init__(url)
        self.url = url


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    base, client_id, redirect_uri, username = sys.argv[1:]
    password = sys.stdin.readline().rstrip("\n")
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        StopAtApp(redirect_uri),
    )

    verifier = b64url(secrets.token_bytes(48))
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile api",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })

    def submit(page, extra):
        form = Form()
        form.feed(page.read().decode())
        url = urllib.parse.urljoin(page.url, form.action)
        print(f"POST {urllib.parse.urlsplit(url).path}")
        body = urllib.parse.urlencode({**form.fields, **extra}).encode()
        return browser.open(url, body)

    try:
        print("GET  /oauth2/authorize")
        page = browser.open(f"{base}/oauth2/authorize?{query}")  # the sign-in page
        page = submit(page, {"username": username, "password": password})  # consent
        submit(page, {"decision": "approve"})
        sys.exit("the server never redirected to the app")
    except AtApp as arrived:
        answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(arrived.url).query))
    print(f"  303 -> {redirect_uri}?code=…&state=…")
    if answer.get("state") != state:
        sys.exit(f"the state came back wrong: {answer}")
    if "code" not in answer:
        sys.exit(f"no code: {answer}")

    print("POST /oauth2/token (the code and the PKCE verifier)")
    redeem = urllib.parse.urlencode({
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": answer["code"],
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }).encode()
    try:
        tokens = json.load(urllib.request.urlopen(f"{base}/oauth2/token", redeem))
    except urllib.error.HTTPError as refused:
        sys.exit(f"the token endpoint refused: {refused.code} {refused.read().decode()}")
    print(json.dumps(tokens, indent=2))


if __name__ == "__main__":
    main()
