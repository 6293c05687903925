"""Polls the token endpoint for N pending devices, each every `interval` seconds as RFC 8628
asks, spread evenly over the interval, for SECONDS; prints the answers it got.
Usage: device_poll.py BASE_URL CLIENT_ID DEVICES SECONDS"""
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse

base, client_id, devices, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
host = urllib.parse.urlsplit(base).netloc
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def post(conn, path, form):
    conn.request("POST", path, urllib.parse.urlencode(form),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


conn = http.client.HTTPConnection(host)
codes = []
interval = None
for _ in range(devices):
    status, body = post(conn, "/oauth2/device_authorization", {"client_id": client_id, "scope": "api"})
    assert status == 200, body
    codes.append(body["device_code"])
    interval = body["interval"]

jobs = queue.Queue()
answers = {}
lock = threading.Lock()


def worker():
    c = http.client.HTTPConnection(host)
    while True:
        code = jobs.get()
        if code is None:
            return
        _, body = post(c, "/oauth2/token", {"grant_type": GRANT, "client_id": client_id, "device_code": code})
        with lock:
            answers[body.get("error", "tokens")] = answers.get(body.get("error", "tokens"), 0) + 1


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.readline()  # the caller starts measuring, then says go
start = time.monotonic()
step = interval / devices
k = 0
while True:
    due = start + k * step
    if due - start >= seconds:
        break
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    jobs.put(codes[k % devices])
    k += 1
for _ in threads:
    jobs.put(None)
for t in threads:
    t.join()
print(json.dumps({"polls": k, "answers": answers}), flush=True)
