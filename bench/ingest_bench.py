#!/usr/bin/env python3
"""Ingest throughput and memory: signed POST /v1/orders against the real daemon (no sinks),
each request a new order. Every 202 means the snapshot was fsynced, so the figure is
durable orders per second.

Throughput: 1, 16 and 64 concurrent keep-alive connections, driven by bench/loadgen (a
C program built with the daemon: one thread, epoll, closed loop) replaying requests that
this script signs beforehand with scripts/obpost.py's signing (a fresh timestamp per phase,
well inside the 5-minute window; the files go to /dev/shm, not to the disk the store
fsyncs to). Python clients saturated the two cores long before the daemon did; the table
shows loadgen's own CPU share ("gen cpu") beside the daemon's ("srv cpu", 100% = one core)
so that this can be checked. Each phase is measured --rounds times (3) and the median is
shown, with the spread of orders/s. Any answer other than 202 fails the run.

Ceiling (--ceiling-bin PATH, `make bench` passes build/bench/orderbridge-ceiling): the same
daemon built with a store backend that keeps nothing (bench/store_null.c), so the same
server answering without storing. It is started like the daemon (`PATH serve -c CONF`,
the same configuration but `[store] path = null:`; it must log
a line containing " serve.ready " and " port=N") and measured the same way, alternating
with the daemon round by round; the table shows its figures and the durable/ceiling ratio
of orders/s. Without it those columns say n/a.

Memory (--rss): a fresh daemon and store; --rss-orders (100,000) new orders go in through
ingest at 64 connections; then the daemon's VmHWM (peak RSS) and VmRSS from
/proc/PID/status, and again after a restart on the full store.

Figures are compared as ratios within one run (this machine is shared and noisy).

Usage: ingest_bench.py [--bin build/orderbridge] [--seconds 5] [--warmup 1] [--rounds 3]
                       [--conns 1,16,64] [--ceiling-bin PATH] [--before-bin PATH]
                       [--rss [--rss-orders N]]
                       [--loadgen build/bench/loadgen]"""
import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Daemon, Workdir, obpost, order, proc_status_kb  # noqa: E402

SECTIONS = {"server": {"threads": "2"}}
# Request files live in memory when possible: writing them to the disk the store fsyncs
# to would put their write-back inside the measurement.
SPOOL = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def write_requests(path, port, key, prefix, count):
    """count signed POST /v1/orders requests, a new order each, as loadgen records
    ("<byte count>\\n<raw request>")."""
    mark = "ZZORDERIDZZ"
    left, mid, right = json.dumps(order(mark)).encode().split(mark.encode())
    ts = int(time.time())
    with open(path, "wb", buffering=1 << 20) as f:
        for n in range(count):
            oid = f"{prefix}{n}".encode()
            body = left + oid + mid + oid + right
            wid = f"msg_{prefix}{n}"
            head = (f"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Content-Type: application/json\r\nwebhook-id: {wid}\r\n"
                    f"webhook-timestamp: {ts}\r\n"
                    f"webhook-signature: {obpost.sign(key, wid, ts, body)}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            f.write(b"%d\n" % (len(head) + len(body)))
            f.write(head)
            f.write(body)
        if SPOOL is None:
            f.flush()
            os.fsync(f.fileno())


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """user + system CPU time of a process, in clock ticks"""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def loadgen(args, daemon, conns, count, prefix, seconds, warmup):
    """Runs loadgen over count fresh requests; returns its key=value line as a dict."""
    fd, path = tempfile.mkstemp(prefix="ob-bench-", suffix=".req", dir=SPOOL)
    os.close(fd)
    try:
        write_requests(path, daemon.port, daemon.key, prefix, count)
        cpu0, t0 = cpu_ticks(daemon.proc.pid), time.time()
        r = subprocess.run([args.loadgen, "-c", str(conns), "-d", str(seconds),
                            "-w", str(warmup), "127.0.0.1", str(daemon.port), path],
                           capture_output=True, text=True)
        srv_cpu = 100 * (cpu_ticks(daemon.proc.pid) - cpu0) / CLK_TCK / (time.time() - t0)
    finally:
        os.unlink(path)
    out = {"srv_cpu": srv_cpu}
    for field in r.stdout.split():
        k, _, v = field.partition("=")
        out[k] = float(v)
    if r.returncode != 0 or "rps" not in out:
        raise SystemExit(f"loadgen failed (exit {r.returncode}) against {daemon.label}, "
                         f"{conns} connections: {r.stdout.strip()} {r.stderr.strip()}\n"
                         f"daemon log: {daemon.read_log()[-2000:]}")
    return out


def measure(args, daemon, conns, est):
    """One phase; est is the orders/s expected (sizes the request file). A file that ran
    out early is made 4x larger and the phase run again (once)."""
    daemon.phase = getattr(daemon, "phase", 0) + 1
    for attempt in range(2):
        count = int(max(est, 1000) * (args.seconds + args.warmup) * 1.5) + 64 * conns
        prefix = f"{daemon.tag}{daemon.phase}x{attempt}c{conns}-"
        out = loadgen(args, daemon, conns, count, prefix, args.seconds, args.warmup)
        if not out["exhausted"]:
            return out
        est = est * 4
    print(f"  (note: {daemon.label} at {conns} connections ran through "
          f"{count} requests in {out['seconds']:.2f} s)", file=sys.stderr)
    return out


def start(binary, label, tag, sections=SECTIONS):
    harness.BIN = binary
    wd = Workdir()
    d = Daemon(wd.path, sections=sections)
    d.wd, d.label, d.tag = wd, label, tag
    d.start()
    return d


def stop(d):
    try:
        d.stop(check=False)
    finally:
        d.wd.cleanup()




def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def median(rounds, key):
    return statistics.median(r[key] for r in rounds)


def throughput(args):
    conns = [int(c) for c in args.conns.split(",") if c.strip()]
    if not conns:
        return
    durable = start(os.path.abspath(args.bin), "orderbridge", "d")
    ceiling = before = None
    try:
        if args.before_bin:
            before = start(os.path.abspath(args.before_bin), "before", "b")
        if args.ceiling_bin:
            # bench/orderbridge-ceiling keeps nothing behind `[store] path = null:`
            ceiling = start(os.path.abspath(args.ceiling_bin), "ceiling", "k",
                            dict(SECTIONS, store={"path": "null:"}))
        print(f"ingest: {args.rounds} round(s) of {args.seconds:g} s per phase after "
              f"{args.warmup:g} s warm-up (median of the rounds), loadgen {args.loadgen}")
        print(f"{'conns':>5} | {'orders/s':>8} {'min-max':>11} {'p50 ms':>6} {'p99 ms':>6} "
              f"{'srv cpu':>7} {'gen cpu':>7} | {'ceiling/s':>9} {'p50 ms':>6} {'p99 ms':>6} | "
              f"{'durable/ceiling':>15}" + (f" | {'before/s':>8} {'p50 ms':>6} {'p99 ms':>6} "
                                             f"{'after/before':>12}" if before else ""))
        est = {"d": 2000.0, "k": 5000.0, "b": 2000.0}
        for c in conns:
            rounds = {"d": [], "k": [], "b": []}
            for _ in range(args.rounds):
                for tag, daemon in (("d", durable), ("k", ceiling), ("b", before)):
                    if daemon:
                        out = measure(args, daemon, c, est[tag])
                        est[tag] = max(est[tag], out["rps"])
                        rounds[tag].append(out)
            d = {key: median(rounds["d"], key) for key in rounds["d"][0]}
            k = {key: median(rounds["k"], key) for key in rounds["k"][0]} if ceiling else None
            b = {key: median(rounds["b"], key) for key in rounds["b"][0]} if before else None
            rates = [r["rps"] for r in rounds["d"]]
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(f"{c:>5} | {d['rps']:>8.0f} {spread:>11} {d['p50_ms']:>6.2f} "
                  f"{d['p99_ms']:>6.2f} {d['srv_cpu']:>6.0f}% {d['cpu_pct']:>6.0f}% | "
                  f"{fmt(k and k['rps'], '.0f'):>9} {fmt(k and k['p50_ms'], '.2f'):>6} "
                  f"{fmt(k and k['p99_ms'], '.2f'):>6} | "
                  f"{fmt(k and 100 * d['rps'] / k['rps'], '.0f') + ('%' if k else ''):>15}" +
                  (f" | {b['rps']:>8.0f} {b['p50_ms']:>6.2f} {b['p99_ms']:>6.2f} "
                   f"{100 * d['rps'] / b['rps']:>11.0f}%" if b else ""),
                  flush=True)
    finally:
        stop(durable)
        if before:
            stop(before)
        if ceiling:
            stop(ceiling)


def count_orders(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM orders").fetchone()[0]
    finally:
        con.close()


def rss(args):
    d = start(os.path.abspath(args.bin), "orderbridge", "r")
    try:
        t0 = time.time()
        out = loadgen(args, d, 64, args.rss_orders, "rss-", 0, 0)
        took = time.time() - t0
        time.sleep(1)  # let the committer and the log settle
        loaded = proc_status_kb(d.proc.pid)
        d.stop(check=False)
        n = count_orders(d.db)
        size = sum(os.path.getsize(d.db + s) for s in ("", "-wal", "-shm")
                   if os.path.exists(d.db + s))
        d.start()
        time.sleep(1)
        restarted = proc_status_kb(d.proc.pid)
        print(f"rss: {int(out['answered'])} orders through ingest at 64 connections in "
              f"{took:.1f} s including signing ({out['rps']:.0f} orders/s, p99 "
              f"{out['p99_ms']:.2f} ms); the store holds {n} orders, {size / 2**20:.1f} MiB")
        print(f"rss: after loading   VmHWM {loaded['VmHWM'] / 1024:6.1f} MiB  "
              f"VmRSS {loaded['VmRSS'] / 1024:6.1f} MiB")
        print(f"rss: after restart   VmHWM {restarted['VmHWM'] / 1024:6.1f} MiB  "
              f"VmRSS {restarted['VmRSS'] / 1024:6.1f} MiB")
        if n < args.rss_orders:
            raise SystemExit(f"the store holds {n} orders, expected {args.rss_orders}")
    finally:
        stop(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--seconds", type=float, default=5, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=1,
                    help="seconds of load before each phase's measurement")
    ap.add_argument("--rounds", type=int, default=3,
                    help="measurements per phase (durable and ceiling alternate); the median "
                         "is shown")
    ap.add_argument("--conns", default="1,16,64",
                    help="connection counts, comma-separated ('' = no throughput phases)")
    ap.add_argument("--ceiling-bin", help="a server of the same API that does not store")
    ap.add_argument("--before-bin", help="an earlier build, measured the same way in the same "
                    "rounds (before/after figures of one run)")
    ap.add_argument("--rss", action="store_true",
                    help="also load --rss-orders orders into a fresh store and report RSS")
    ap.add_argument("--rss-orders", type=int, default=100000)
    ap.add_argument("--loadgen", help="default: bench/loadgen next to --bin")
    args = ap.parse_args()
    if not args.loadgen:
        args.loadgen = os.path.join(os.path.dirname(os.path.abspath(args.bin)),
                                    "bench", "loadgen")
    if not os.access(args.loadgen, os.X_OK):
        raise SystemExit(f"{args.loadgen} not found: build it with `make build` "
                         "(or pass --loadgen)")
    if args.ceiling_bin and not os.access(args.ceiling_bin, os.X_OK):
        raise SystemExit(f"--ceiling-bin {args.ceiling_bin}: not an executable")
    t0 = time.time()
    load = os.getloadavg()
    throughput(args)
    if args.rss:
        rss(args)
    print(f"(bench took {time.time() - t0:.0f} s; load average {load[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
