#!/usr/bin/env python3
"""ThreadSanitizer check of the HTTP + intake path (issue #8, defect 5: /healthz read the
committer's health flag without synchronisation).

Starts a ThreadSanitizer build of the daemon with the Roistat emulator as its sink (so the
commit hook wakes a dispatcher), and for a few seconds keeps it busy from several keep-alive
clients at once: new orders (202), repeats of a webhook-id (duplicate), older versions
(200 stale), a reused webhook-id with another body (409), invalid bodies and signatures
(400, 401), while other clients poll GET /healthz and GET /v1/orders/{id}. It then
imports a JSON Lines file with `orderbridge import` (the file source and its own intake)
and stops the daemon with SIGTERM. Every line ThreadSanitizer wrote is searched for
"WARNING: ThreadSanitizer"; the script fails if there is one, or if the load did not
reach the paths it is meant to reach.

Not part of run.py (it needs its own build):
  meson setup build-tsan -Db_sanitize=thread --buildtype=debug && ninja -C build-tsan
  python3 tests/integration/tsan_http_load.py --bin build-tsan/orderbridge [--seconds 10]
"""
import argparse
import collections
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import Daemon, Roistat, Workdir, obpost, order  # noqa: E402

MARK = "WARNING: ThreadSanitizer"


class Client:
    """One keep-alive connection; counts answers by (kind, status)."""

    def __init__(self, daemon, counts, lock):
        self.daemon, self.counts, self.lock = daemon, counts, lock
        self.conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)

    def send(self, kind, method, path, body=None, headers=None):
        try:
            self.conn.request(method, path, body, headers or {})
            resp = self.conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
            status = 0
        with self.lock:
            self.counts[(kind, status)] += 1
        return status

    def post(self, kind, snapshot, webhook_id=None, key=None):
        body = json.dumps(snapshot).encode() if not isinstance(snapshot, bytes) else snapshot
        webhook_id = webhook_id or "msg_" + uuid.uuid4().hex
        ts = int(time.time())
        return self.send(kind, "POST", "/v1/orders", body, {
            "Content-Type": "application/json", "webhook-id": webhook_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": obpost.sign(key or self.daemon.key, webhook_id, ts, body)})


def poster(daemon, n, stop, counts, lock):
    c = Client(daemon, counts, lock)
    i = 0
    while not stop.is_set():
        oid = f"t{n}-{i}"
        wid = f"msg_{n}_{i}"
        snap = json.dumps(order(oid, version=2)).encode()
        c.post("new", snap, webhook_id=wid)
        step = i % 6
        if step == 1:
            c.post("duplicate", snap, webhook_id=wid)
        elif step == 2:
            c.post("stale", order(oid, version=1))
        elif step == 3:
            c.post("conflict", order(oid, version=3), webhook_id=wid)
        elif step == 4:
            c.post("invalid", order(oid, price="1.999"))
        elif step == 5:
            c.post("unsigned", order(oid), key=b"not the key at all, not at all!!")
        i += 1


def poller(daemon, stop, counts, lock):
    c = Client(daemon, counts, lock)
    auth = {"Authorization": "Bearer " + daemon.admin_token}
    while not stop.is_set():
        c.send("healthz", "GET", "/healthz")
        c.send("report", "GET", "/v1/orders/t0-0", headers=auth)


def tsan_reports(text):
    return [line for line in text.splitlines() if MARK in line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--posters", type=int, default=8)
    ap.add_argument("--pollers", type=int, default=3)
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)
    # report every race (not only the first), and keep going after one
    env = {"TSAN_OPTIONS": "halt_on_error=0:second_deadlock_stack=1:history_size=4"}
    wd = Workdir()
    roistat = Roistat(wd.path, rate=1000)
    daemon = Daemon(wd.path, roistat=roistat, env=env,
                    sections={"server": {"threads": "4", "max_connections": "64"}})
    counts, lock, stop = collections.Counter(), threading.Lock(), threading.Event()
    failures = []
    try:
        daemon.start()
        threads = [threading.Thread(target=poster, args=(daemon, n, stop, counts, lock))
                   for n in range(args.posters)]
        threads += [threading.Thread(target=poller, args=(daemon, stop, counts, lock))
                    for _ in range(args.pollers)]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()

        path = os.path.join(wd.path, "backfill.jsonl")
        with open(path, "w") as f:
            for i in range(3000):
                f.write(json.dumps(order(f"imp{i}", status="F")) + "\n")
            f.write("{not json}\n")
        r = subprocess.run([harness.BIN, "import", "-c", daemon.conf, path],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, **env))
        import_reports = tsan_reports(r.stderr)
        if r.returncode != 1 or "import.done lines=3001 accepted=3000" not in r.stderr:
            failures.append(f"import: exit {r.returncode}: {r.stderr[-2000:]}")
        daemon.stop(check=False)
        log = daemon.read_log()
        reports = tsan_reports(log)
    finally:
        daemon.stop(check=False)
        roistat.stop()

    for (kind, status), n in sorted(counts.items()):
        print(f"  {kind:<10} {status:>3} x{n}")
    want = {("new", 202), ("duplicate", 202), ("stale", 200), ("conflict", 409),
            ("invalid", 400), ("unsigned", 401), ("healthz", 200), ("report", 200)}
    missing = sorted(k for k in want if counts[k] == 0)
    want.add(("report", 404))  # polled before the first order is stored
    if missing:
        failures.append(f"paths never reached: {missing}")
    unexpected = sorted(k for k in counts if k not in want)
    if unexpected:
        failures.append(f"unexpected answers: {[(k, counts[k]) for k in unexpected]}")
    print(f"daemon: {sum(counts.values())} requests in {args.seconds:.0f}s, "
          f"{len(reports)} ThreadSanitizer warnings")
    print(f"import: {len(import_reports)} ThreadSanitizer warnings")
    if reports or import_reports:
        text = log if reports else r.stderr
        start = text.find(MARK)
        end = text.find("==================", start)
        print(text[start:end if end > 0 else start + 6000])
        failures.append("ThreadSanitizer reported")
    for f in failures:
        print("FAIL:", f)
    if not failures:
        wd.cleanup()
    else:
        print("work directory kept:", wd.path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
