#!/usr/bin/env python3
"""Sign and post one order snapshot to orderbridge (Standard Webhooks, HMAC-SHA256).

Usage: obpost.py URL SECRET_FILE [BODY_FILE|-] [--id WEBHOOK_ID] [--timestamp UNIX]

Used by the demo and the tests, and a reference for site developers: the signed content
is "<webhook-id>.<webhook-timestamp>.<body>", the key is the base64 after "whsec_".
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid


def load_secret(path):
    with open(path) as f:
        text = f.read().strip()
    if not text.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    return base64.b64decode(text[len("whsec_"):])


def sign(key, webhook_id, timestamp, body):
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def post(url, key, body, webhook_id=None, timestamp=None, headers=None, timeout=30):
    """Returns (status, parsed JSON answer or text)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    webhook_id = webhook_id or "msg_" + uuid.uuid4().hex
    timestamp = int(time.time()) if timestamp is None else timestamp
    h = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
    }
    h.update(headers or {})
    req = urllib.request.Request(url, data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode(errors="replace")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, secret_file = argv[1], argv[2]
    rest = argv[3:]
    opts = {}
    while "--id" in rest or "--timestamp" in rest:
        i = rest.index("--id") if "--id" in rest else rest.index("--timestamp")
        opts[rest[i][2:]] = rest[i + 1]
        del rest[i:i + 2]
    src = rest[0] if rest else "-"
    body = sys.stdin.buffer.read() if src == "-" else open(src, "rb").read()
    ts = int(opts["timestamp"]) if "timestamp" in opts else None
    status, answer = post(url, load_secret(secret_file), body, opts.get("id"), ts)
    print(status, json.dumps(answer) if not isinstance(answer, str) else answer)
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
