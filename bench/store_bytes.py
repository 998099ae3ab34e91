#!/usr/bin/env python3
"""Bytes per order in the store, with retention and with full history (issue #12). --orders
(10000) orders, each in --versions (5) versions, are imported (`orderbridge import`, no
sinks: nothing is owed, so every superseded version may go). The store's size is then the
full history. Every timestamp is moved ten days back, and `serve` starts with
[store] retain_days = 1: its first retention pass prunes and compacts; its store.pruned line
gives the pass's time and its longest step. Sizes are page_count * page_size (free pages
included) after a WAL checkpoint.

Usage: store_bytes.py [--bin build/orderbridge] [--orders 10000] [--versions 5]"""
import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Daemon, order, wait_for  # noqa: E402


def size(db):
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages, page = con.execute("PRAGMA page_count").fetchone()[0], con.execute(
        "PRAGMA page_size").fetchone()[0]
    con.close()
    return pages * page


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--orders", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=5)
    a = ap.parse_args()
    import harness
    harness.BIN = a.bin
    with tempfile.TemporaryDirectory(prefix="ob-bytes-") as wd:
        d = Daemon(wd, sections={"store": {"retain_days": "1"}})
        path = os.path.join(wd, "orders.jsonl")
        with open(path, "w") as f:
            for v in range(1, a.versions + 1):
                for i in range(a.orders):
                    f.write(json.dumps(order(f"b{i}", version=v)) + "\n")
        d.cli("import", path, check=True)
        full = size(d.db)
        con = sqlite3.connect(d.db)
        con.execute("UPDATE snapshots SET received_at = received_at - 864000000")
        con.commit()
        con.close()
        d.start()
        line = wait_for(lambda: re.search(r"store\.pruned .*", d.read_log()), timeout=600,
                        what="store.pruned").group(0)
        d.stop()
        kept = size(d.db)
    print(f"orders={a.orders} versions={a.versions}")
    print(f"full history: {full} bytes, {full / a.orders:.0f} bytes/order")
    print(f"with retention: {kept} bytes, {kept / a.orders:.0f} bytes/order")
    print(line)


if __name__ == "__main__":
    main()
