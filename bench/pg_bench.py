#!/usr/bin/env python3
"""The PostgreSQL store beside SQLite (issue #14), on one machine, in one run.

Ingest: the same daemon on an SQLite file and on a PostgreSQL database (scripts/pg.sh,
loopback, fsync on, the defaults otherwise), measured in turn round by round with
bench/loadgen at 16 and 64 keep-alive connections, a fresh order per request, every answer
a 202 (ingest_bench.py's method: median of --rounds rounds of --seconds s).

Delivery: --orders orders put in a PostgreSQL store with `orderbridge import` (no daemon
running), then one daemon, or two sharing the store, started with both sinks on fast
emulators (Roistat, and Bitrix24 at --b24-rate requests/s); the time until every delivery
is done, and orders/s. Two daemons split the roles (each sink is delivered by one server
at a time), so this shows what a second daemon adds: availability, not speed.

Usage: pg_bench.py [--bin build/orderbridge] [--loadgen build/bench/loadgen]
                   [--seconds 5] [--warmup 1] [--rounds 3] [--conns 16,64]
                   [--orders 2000] [--b24-rate 50]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import harness  # noqa: E402
import ingest_bench  # noqa: E402
import pg  # noqa: E402
from harness import Bitrix24, Daemon, Roistat, Workdir, order  # noqa: E402


def start(binary, label, tag, store=None):
    harness.BIN = binary
    wd = Workdir()
    d = Daemon(wd.path, sections=ingest_bench.SECTIONS, store=store)
    d.wd, d.label, d.tag = wd, label, tag
    d.start()
    return d


def ingest(args, server):
    conns = [int(c) for c in args.conns.split(",") if c.strip()]
    sq = start(args.bin, "sqlite", "s")
    pq = start(args.bin, "postgresql", "p", server.store())
    try:
        print(f"ingest: {args.rounds} round(s) of {args.seconds:g} s per phase after "
              f"{args.warmup:g} s warm-up (median of the rounds)")
        print(f"{'conns':>5} | {'sqlite/s':>8} {'p50 ms':>6} {'p99 ms':>6} | "
              f"{'pg/s':>8} {'min-max':>11} {'p50 ms':>6} {'p99 ms':>6} {'srv cpu':>7} | "
              f"{'pg/sqlite':>9}")
        est = {"s": 2000.0, "p": 2000.0}
        for c in conns:
            rounds = {"s": [], "p": []}
            for _ in range(args.rounds):
                for tag, d in (("s", sq), ("p", pq)):
                    out = ingest_bench.measure(args, d, c, est[tag])
                    est[tag] = max(est[tag], out["rps"])
                    rounds[tag].append(out)
            s = {k: ingest_bench.median(rounds["s"], k) for k in rounds["s"][0]}
            p = {k: ingest_bench.median(rounds["p"], k) for k in rounds["p"][0]}
            rates = [r["rps"] for r in rounds["p"]]
            print(f"{c:>5} | {s['rps']:>8.0f} {s['p50_ms']:>6.2f} {s['p99_ms']:>6.2f} | "
                  f"{p['rps']:>8.0f} {min(rates):>5.0f}-{max(rates):<5.0f} {p['p50_ms']:>6.2f} "
                  f"{p['p99_ms']:>6.2f} {p['srv_cpu']:>6.0f}% | "
                  f"{100 * p['rps'] / s['rps']:>8.0f}%", flush=True)
    finally:
        ingest_bench.stop(sq)
        ingest_bench.stop(pq)


def done(d, n):
    c = json.loads(d.cli("status", "--json", check=True).stdout)
    return all(c[s]["done"] == n for s in ("roistat", "bitrix24"))


def delivery(args, server, n_daemons):
    harness.BIN = args.bin
    wd = Workdir()
    roistat = Roistat(wd.path, rate=1000)
    b24 = Bitrix24(wd.path, rate=args.b24_rate, burst=50)
    store = server.store()
    ds = []
    try:
        sections = {"roistat": {"rate": "1000"},
                    "bitrix24": {"rate": str(args.b24_rate), "burst": "50"}}
        for k in range(n_daemons):
            ds.append(Daemon(os.path.join(wd.path, f"d{k}"), roistat=roistat, bitrix24=b24,
                             store=store, secret=ds[0].secret if ds else None,
                             sections=sections))
        path = os.path.join(wd.path, "orders.jsonl")
        with open(path, "w") as f:
            for i in range(args.orders):
                f.write(json.dumps(order(f"B{i}", price=f"{1000 + i}.00")) + "\n")
        ds[0].cli("import", path, check=True)
        t0 = time.monotonic()
        for d in ds:
            d.start()
        harness.wait_for(lambda: done(ds[0], args.orders), timeout=1800, interval=0.5,
                         what="every delivery done")
        took = time.monotonic() - t0
        roles = json.loads(ds[0].cli("status", "--json", check=True).stdout).get("roles", {})
        players = {r["owner"].split(":")[1] for n, r in roles.items()
                   if n in ("roistat", "bitrix24")}
        print(f"delivery: {n_daemons} daemon(s): {args.orders} orders to Roistat and Bitrix24 "
              f"in {took:.1f} s = {args.orders / took:.0f} orders/s; the two sinks were "
              f"delivered by {len(players)} process(es)", flush=True)
        return took
    finally:
        for d in ds:
            d.stop(check=False)
        roistat.stop()
        b24.stop()
        wd.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--loadgen")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", default="16,64")
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--b24-rate", type=int, default=50)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.loadgen = args.loadgen or os.path.join(os.path.dirname(args.bin), "bench", "loadgen")
    server = pg.Server()
    try:
        ingest(args, server)
        one = delivery(args, server, 1)
        two = delivery(args, server, 2)
        print(f"delivery: two daemons / one: {100 * one / two:.0f}% of the throughput")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
