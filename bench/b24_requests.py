#!/usr/bin/env python3
"""HTTP requests to Bitrix24 per 100 orders, as the portal emulator counts them
(counts.http_requests: every request that reached /rest/, counts.commands: every CRM
method run, batch commands included), against the one-call-per-step approach of the
source document (find contact, add contact, add deal, set product rows: 400 calls per 100
new orders; one crm.deal.update each: 100 calls per 100 status changes).

Two shapes of traffic, each with a fresh emulator and daemon (release build, no Roistat):
  at once   100 orders posted by 16 concurrent clients (a sale, a backfill, a busy hour)
  one by one  each order posted only after the previous one reached the portal (a quiet
              shop: batching has nothing to batch, the worst case)
The 100 orders are mixed: 50 new buyers, 30 orders of 10 returning buyers whom the portal
already knows (created by a manager, so they are found with crm.duplicate.findbycomm),
20 orders of 10 legal entities (company + contact). Then each order moves to status P.

Usage: b24_requests.py [--bin build/orderbridge]"""
import argparse
import concurrent.futures
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Bitrix24, Daemon, Workdir, order, wait_for  # noqa: E402

N = 100


def buyers():
    out = []
    for i in range(50):
        out.append({"type": "individual", "name": f"New {i}", "phone": f"+7 910 {i:03d} 00 00",
                    "email": f"new{i}@example.ru", "company": None, "inn": None})
    for i in range(30):
        k = i % 10
        out.append({"type": "individual", "name": f"Returning {k}",
                    "phone": f"8 (920) {k:03d}-00-00", "email": f"back{k}@example.ru",
                    "company": None, "inn": None})
    for i in range(20):
        k = i % 10
        out.append({"type": "legal", "name": f"Buyer {i}", "phone": f"+7 930 {i:03d} 00 00",
                    "email": f"buyer{i}@firm{k}.ru", "company": f"ООО Фирма {k}",
                    "inn": f"77{k:08d}"})
    return out


def known_to_the_portal(b24):
    for k in range(10):
        b24.control("contact", {"fields": {
            "NAME": f"Returning {k}",
            "PHONE": [{"VALUE": f"+7 920 {k:03d} 00 00", "VALUE_TYPE": "MOBILE"}]}})


def counts(b24):
    return b24.state()["counts"]


def settled(daemon):
    c = daemon.counts()["bitrix24"]
    return c["done"] == N and c["pending"] + c["inflight"] + c["retrying"] + c["waiting"] == 0


def post(daemon, snap):
    status, answer = daemon.post(snap)
    if status != 202:
        raise SystemExit(f"POST {snap['order']['id']}: {status} {answer}")


def delivered(daemon, oid):
    d = daemon.delivery(oid, sink="bitrix24") or {}
    return d.get("state") == "done" and d["done_rev"] == d["want_rev"]


def run(bin_path, shape):
    """Returns [(what, requests, commands, seconds)] for new orders and status changes."""
    wd = Workdir()
    # one by one waits for each order anyway: let the limit not be the clock
    rate, burst = (2, 50) if shape == "at once" else (50, 50)
    b24 = Bitrix24(wd.path, rate=rate, burst=burst)
    daemon = Daemon(wd.path, bitrix24=b24,
                    sections={"bitrix24": {"rate": str(rate), "burst": str(burst)}})
    rows = []
    try:
        daemon.start()
        known_to_the_portal(b24)
        people = buyers()
        for what, snaps in (
                ("new orders", [order(f"o{i}", buyer=b) for i, b in enumerate(people)]),
                ("status changes", [order(f"o{i}", version=2, status="P", buyer=b)
                                    for i, b in enumerate(people)])):
            before = counts(b24)
            t0 = time.time()
            if shape == "at once":
                with concurrent.futures.ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda s: post(daemon, s), snaps))
            else:
                for s in snaps:
                    post(daemon, s)
                    wait_for(lambda: delivered(daemon, s["order"]["id"]), timeout=30,
                             interval=0.01, what="delivery")
            wait_for(lambda: settled(daemon), timeout=300, interval=0.1, what="all delivered")
            seconds = time.time() - t0
            after = counts(b24)
            if after["query_limit_exceeded"]:
                print(f"warning: {after['query_limit_exceeded']} QUERY_LIMIT_EXCEEDED answers",
                      file=sys.stderr)
            rows.append((what, after["http_requests"] - before["http_requests"],
                         after["commands"] - before["commands"], seconds))
        state = b24.state()
        deals = [d for d in state["deals"].values() if d["ORIGINATOR_ID"] == "shop.example.ru"]
        assert len(deals) == N and {d["STAGE_ID"] for d in deals} == {"PREPARATION"}, \
            "every order must have exactly one deal at PREPARATION"
    finally:
        daemon.stop()
        b24.stop()
        wd.cleanup()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)
    baseline = {"new orders": 400, "status changes": 100}
    print(f"| {N} orders | posted | HTTP requests | CRM commands | requests per order | "
          f"one call per step | seconds |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for shape in ("at once", "one by one"):
        for what, requests, commands, seconds in run(args.bin, shape):
            print(f"| {what} | {shape} | {requests} | {commands} | {requests / N:.2f} | "
                  f"{baseline[what]} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
