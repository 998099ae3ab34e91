#!/usr/bin/env python3
"""Ingest throughput: signed POST /v1/orders against the real daemon (no sinks), with 1,
8 and 32 concurrent keep-alive clients (separate processes), each request a new order.
Every 202 means the snapshot was fsynced, so the figure is durable orders per second.
Figures are compared as ratios within one run (this machine is shared and noisy).

Usage: ingest_bench.py --bin build/orderbridge [--seconds 5]"""
import argparse
import http.client
import json
import multiprocessing
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Daemon, Workdir, obpost, order  # noqa: E402


def client(port, key, seconds, prefix, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    lat = []
    end = time.time() + seconds
    while time.time() < end:
        body = json.dumps(order(f"{prefix}-{n}")).encode()
        wid = f"msg_{prefix}_{n}"
        ts = int(time.time())
        t0 = time.perf_counter()
        conn.request("POST", "/v1/orders", body, {
            "Content-Type": "application/json", "webhook-id": wid,
            "webhook-timestamp": str(ts),
            "webhook-signature": obpost.sign(key, wid, ts, body)})
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t0)
        if resp.status != 202:
            raise SystemExit(f"unexpected {resp.status}")
        n += 1
    out.put((n, lat))


def run(daemon, clients, seconds, tag):
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(daemon.port, daemon.key, seconds,
                                                          f"{tag}{i}", q))
             for i in range(clients)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(n for n, _ in results)
    lat = sorted(x for _, l in results for x in l)
    return total / seconds, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)
    wd = Workdir()
    daemon = Daemon(wd.path, sections={"server": {"threads": "2"}})
    daemon.start()
    try:
        print(f"{'clients':>7} {'orders/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'vs 1 client':>11}")
        base = None
        for c in (1, 8, 32):
            rps, p50, p99 = run(daemon, c, args.seconds, f"c{c}_")
            base = base or rps
            print(f"{c:>7} {rps:>9.0f} {p50:>7.2f} {p99:>7.2f} {rps / base:>10.1f}x")
    finally:
        daemon.stop(check=False)
        wd.cleanup()


if __name__ == "__main__":
    main()
