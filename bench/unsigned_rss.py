#!/usr/bin/env python3
"""Memory held by senders that cannot sign (issue #10, item 1), against the real daemon
(no sinks). --conns (500) connections each send the head of a POST /v1/orders that
declares a --body-bytes (1 MiB) body, then most of that body (--send-fraction, 0.9), and
stop without finishing it; they stay open for --hold-s seconds. Two variants:

  A  no webhook headers at all;
  B  well-formed webhook headers with a current timestamp and a wrong signature (the
     HMAC of another body), which only the body can show to be wrong.

Meanwhile the daemon's VmRSS is sampled from /proc/PID/status every 50 ms (the table
shows the peak of the samples, and VmHWM, the kernel's own peak) and a signed POST of a
few KB, a new order each, is sent every 0.5 s on its own connection: its status and
latency are what a real shop would see during the attack. "refused" counts attack
connections answered (401, 503 busy) or closed before their body was all sent; "read"
counts those whose body was sent in full, i.e. taken in by the daemon (or the kernel's
socket buffers, which are not in the daemon's RSS).

The daemon runs with [server] max_connections (default 512, enough for 500 at once: the
table says how many were open at the peak, from /proc/PID/fd) and connection_timeout_s
60, so that the reaper does not end the attack early. --before-bin runs the same against
another binary (the code before the fix), whose figures come first.

Target (issue #10): peak RSS under 64 MB in both variants, and every signed POST
answered 202.

Usage: unsigned_rss.py [--bin build/orderbridge] [--before-bin PATH] [--conns 500]
                       [--body-bytes 1048576] [--send-fraction 0.9] [--hold-s 3]
                       [--max-connections N] [--results FILE]"""
import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Daemon, Workdir, obpost, order, proc_status_kb, socket_count  # noqa: E402

CHUNK = b" " * 65536






class Sampler(threading.Thread):
    """VmRSS every 50 ms, and the sockets the daemon has open every 0.5 s."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_kb, self.peak_socks = pid, threading.Event(), 0, 0

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, proc_status_kb(self.pid)["VmRSS"])
                if n % 10 == 0:
                    self.peak_socks = max(self.peak_socks, socket_count(self.pid))
            except (OSError, KeyError):
                return
            n += 1
            time.sleep(0.05)


class Prober(threading.Thread):
    """A signed POST of a new order every 0.5 s: (status, seconds) of each."""

    def __init__(self, daemon, tag):
        super().__init__(daemon=True)
        self.d, self.tag, self.stop, self.results = daemon, tag, threading.Event(), []

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                status, _ = self.d.post(order(f"probe-{self.tag}-{n}"), timeout=30)
            except OSError as e:
                status = type(e).__name__
            self.results.append((status, time.monotonic() - started))
            self.stop.wait(0.5)


def attack_head(variant, key, body_bytes, port):
    head = (f"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {body_bytes}\r\n")
    if variant == "B":
        wid, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))
        head += (f"webhook-id: {wid}\r\nwebhook-timestamp: {ts}\r\n"
                 f"webhook-signature: {obpost.sign(key, wid, ts, b'another body')}\r\n")
    return (head + "\r\n").encode()


def attack(d, variant, args):
    """Opens the connections, pushes their bodies, holds them; returns the outcome."""
    send = int(args.body_bytes * args.send_fraction)
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(args.conns):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        try:
            s.sendall(attack_head(variant, d.key, args.body_bytes, d.port))
        except OSError:
            s.close()
            conns.append({"sent": 0, "done": "refused"})
            continue
        s.setblocking(False)
        c = {"sock": s, "sent": 0, "done": None, "answer": b""}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    deadline = time.monotonic() + 30
    pending = sum(1 for c in conns if c["done"] is None)
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(0.1):
            c, s = key.data, key.fileobj
            if ev & selectors.EVENT_READ:
                try:
                    got = s.recv(65536)
                except OSError:
                    got = b""
                c["answer"] += got
                if not got or b"\r\n\r\n" in c["answer"]:
                    c["done"] = "refused"
                    sel.unregister(s)
                    pending -= 1
                    continue
            if ev & selectors.EVENT_WRITE:
                try:
                    c["sent"] += s.send(CHUNK[:send - c["sent"]])
                except BlockingIOError:
                    pass
                except OSError:
                    c["done"] = "refused"
                    sel.unregister(s)
                    pending -= 1
                    continue
                if c["sent"] >= send:
                    c["done"] = "read"
                    sel.modify(s, selectors.EVENT_READ, c)
                    pending -= 1
    time.sleep(args.hold_s)
    statuses = {}
    for c in conns:
        line = c.get("answer", b"").split(b"\r\n", 1)[0]
        code = line.split(b" ")[1].decode() if line.startswith(b"HTTP/1.") else "closed"
        if c["done"] == "refused":
            statuses[code] = statuses.get(code, 0) + 1
    sel.close()
    return conns, statuses


def run(binary, label, variant, args):
    harness.BIN = binary
    wd = Workdir()
    server = {"threads": "2", "connection_timeout_s": "60"}
    if args.max_connections:
        server["max_connections"] = str(args.max_connections)
    d = Daemon(wd.path, sections={"server": server})
    try:
        d.start()
        assert d.post(order("warm-up"))[0] == 202
        time.sleep(0.3)
        before = proc_status_kb(d.proc.pid)["VmRSS"]
        sampler, prober = Sampler(d.proc.pid), Prober(d, variant)
        sampler.start()
        prober.start()
        conns, statuses = attack(d, variant, args)
        prober.stop.set()
        prober.join()
        sampler.stop.set()
        sampler.join()
        hwm = proc_status_kb(d.proc.pid)["VmHWM"]
        for c in conns:
            if "sock" in c:
                c["sock"].close()
        time.sleep(1)
        after = proc_status_kb(d.proc.pid)["VmRSS"]
        d.stop(check=False)
        lat = [t for _, t in prober.results]
        codes = {}
        for st, _ in prober.results:
            codes[st] = codes.get(st, 0) + 1
        return {
            "label": label, "variant": variant, "binary": binary,
            "all202": bool(lat) and all(st == 202 for st, _ in prober.results),
            "read": sum(1 for c in conns if c["done"] == "read"),
            "refused": " ".join(f"{k}×{v}" for k, v in sorted(statuses.items())) or "0",
            "socks": sampler.peak_socks, "before": before / 1024,
            "peak": sampler.peak_kb / 1024, "hwm": hwm / 1024, "after": after / 1024,
            "probes": " ".join(f"{k}×{v}" for k, v in sorted(codes.items(), key=str)),
            "p50": statistics.median(lat) * 1000 if lat else None,
            "max": max(lat) * 1000 if lat else None,
        }
    finally:
        d.stop(check=False)
        wd.cleanup()


def table(rows, args):
    out = [f"{args.conns} connections, each declaring {args.body_bytes:,} bytes and sending "
           f"{int(args.body_bytes * args.send_fraction):,}, held {args.hold_s:g} s after the "
           f"push; [server] max_connections "
           f"{args.max_connections or 'default (512)'}, threads 2; a signed POST every 0.5 s",
           "",
           "| binary | variant | attack conns read / refused (answer×n) | daemon sockets at peak "
           "| RSS before MiB | peak RSS MiB | VmHWM MiB | RSS after close MiB "
           "| signed POSTs during the attack | p50 ms | max ms |",
           "|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['variant']} | {r['read']} / {r['refused']} | "
                   f"{r['socks']} | {r['before']:.1f} | {r['peak']:.1f} | {r['hwm']:.1f} | "
                   f"{r['after']:.1f} | {r['probes']} | "
                   f"{r['p50']:.0f} | {r['max']:.0f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--before-bin")
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--body-bytes", type=int, default=1048576)
    ap.add_argument("--send-fraction", type=float, default=0.9)
    ap.add_argument("--hold-s", type=float, default=3.0)
    ap.add_argument("--max-connections", type=int)
    ap.add_argument("--variants", default="A,B")
    ap.add_argument("--results", metavar="FILE",
                    help="append the table to FILE (bench/RESULTS.md)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    rows = []
    for label, binary in (("before", args.before_bin), ("after", args.bin)):
        if not binary:
            continue
        for variant in args.variants.split(","):
            rows.append(run(binary, label if args.before_bin else binary, variant, args))
            print(f"  {rows[-1]}", flush=True)
    text = table(rows, args)
    print(text)
    bad = [r for r in rows if r["binary"] == args.bin and
           (max(r["hwm"], r["peak"]) * 1048576 >= 64e6 or not r["all202"])]
    if args.results:
        try:
            rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
        except OSError:
            rev = "?"
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(f"\n### Unsigned senders' memory (bench/unsigned_rss.py), "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {rev}\n\n"
                    f"{text}\n")
    if bad:
        print("target missed (peak RSS < 64 MB, every signed POST 202): "
              + ", ".join(f"{r['label']} {r['variant']}" for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
