#!/usr/bin/env python3
"""Commit-to-delivery latency of change events, measured by three subscribers at once:
an SSE stream (GET /api/v1/events), a webhook receiver, and a core NATS subscription on
the subjects JetStream captures. Each latency is the receive time minus the event's
commit_timestamp (milliseconds, the same machine clock; the timestamp is taken just
before COMMIT, so a latency includes the commit itself).

  events_latency.py BASE TOKEN WEBHOOK_PORT NATS_HOSTPORT SUBJECT_PREFIX SECONDS [EXPECT]

Prints one line per channel: "<channel> events=N p50=… p99=… max=… ms". With EXPECT, it
stops as soon as every channel has received EXPECT events (a backlog drain) and prints the
seconds each took, from its own start, instead of waiting SECONDS; start it before the
server (the SSE stream connects once the server answers; core NATS keeps nothing for a
subscriber that was not there).
"""

import http.client
import http.server
import json
import socket
import sys
import threading
import time
from datetime import datetime
from urllib.parse import urlparse

base, token, hook_port, nats_hostport, prefix, seconds = sys.argv[1:7]
expect = int(sys.argv[7]) if len(sys.argv) > 7 else None
seconds = float(seconds)
lock = threading.Lock()
latencies = {"sse": [], "webhook": [], "nats": []}
done_at = {}
started = time.time()


def commit_ms(event):
    ts = event["commit_timestamp"].replace("Z", "+00:00")
    return datetime.fromisoformat(ts).timestamp() * 1000


def record(channel, event):
    now = time.time() * 1000
    with lock:
        latencies[channel].append(now - commit_ms(event))
        if expect and len(latencies[channel]) == expect:
            done_at[channel] = time.time() - started


def sse():
    url = urlparse(base)
    query = "from=earliest" if expect else "from=latest"
    while True:  # the server may still be starting
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port)
            conn.request("GET", f"/api/v1/events?{query}",
                         headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            break
        except OSError:
            time.sleep(0.01)
    assert resp.status == 200, resp.status
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            record("sse", json.loads(line[6:]))


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        record("webhook", json.loads(body))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(hook_port)), Hook)
    server.daemon_threads = True
    server.serve_forever()


def nats():
    host, port = nats_hostport.split(":")
    sock = socket.create_connection((host, int(port)))
    reader = sock.makefile("rb")
    reader.readline()  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
    sock.sendall(f"SUB {prefix}.> 1\r\nPING\r\n".encode())
    while True:
        line = reader.readline()
        if not line:
            return
        parts = line.split()
        if not parts:
            continue
        if parts[0] == b"PING":
            sock.sendall(b"PONG\r\n")
        elif parts[0] == b"HMSG":
            total = int(parts[-1])
            header_len = int(parts[-2])
            data = reader.read(total + 2)
            record("nats", json.loads(data[header_len:total]))
        elif parts[0] == b"MSG":
            data = reader.read(int(parts[-1]) + 2)
            record("nats", json.loads(data[:-2]))


for target in (sse, webhook, nats):
    threading.Thread(target=target, daemon=True).start()
print("ready", flush=True)

deadline = started + seconds
while time.time() < deadline:
    time.sleep(0.1)
    with lock:
        if expect and len(done_at) == 3:
            break


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


with lock:
    for channel, values in latencies.items():
        if expect:
            took = done_at.get(channel)
            took = f"{took:.1f} s" if took is not None else f"not done after {seconds:.0f} s"
            print(f"{channel:8} drained {len(values)}/{expect} events in {took}")
        elif values:
            print(f"{channel:8} events={len(values)} p50={pct(values, 0.5):.1f} "
                  f"p99={pct(values, 0.99):.1f} max={max(values):.1f} ms")
        else:
            print(f"{channel:8} events=0")
