#!/usr/bin/env python3
"""A short concurrent load for a ThreadSanitizer build of orderbridge: signed POST
/v1/orders from several threads (the committer thread stores them and sets the store's
health) while other threads poll GET /healthz (the HTTP threads read it), Roistat and
Bitrix24 sinks delivering meanwhile. Exits 1 if the daemon's log holds any
"WARNING: ThreadSanitizer" report (the reports are printed, deduplicated by their first
frames), 2 if the load itself failed. Python 3 standard library only.

Usage: tsan_health_load.py --bin build-tsan/orderbridge [--seconds 8] [--posters 4]
                           [--pollers 2] [--keep]
Used by scripts/soak.sh (the ThreadSanitizer stage) and can be run alone.
"""
import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def reports(log):
    """The ThreadSanitizer reports in a log: [(title, first frames), ...], deduplicated."""
    found = collections.OrderedDict()
    for block in re.findall(r"WARNING: ThreadSanitizer: .*?\n={10,}", log, re.S):
        title = block.splitlines()[0].split("WARNING: ThreadSanitizer: ")[1]
        frames = re.findall(r"#\d+ (\S+) (\S+)", block)
        key = (title.split(" (pid")[0], tuple(frames[:1]) + tuple(frames[-2:-1]))
        found.setdefault(key, block)
    return list(found.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="orderbridge built with -Db_sanitize=thread")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--posters", type=int, default=4)
    ap.add_argument("--pollers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    os.environ["ORDERBRIDGE_BIN"] = os.path.abspath(args.bin)
    # report everything, keep running after a report, exit 66 at the end if any
    os.environ["TSAN_OPTIONS"] = os.environ.get("TSAN_OPTIONS", "") + \
        ":halt_on_error=0:exitcode=66:second_deadlock_stack=1"
    import harness  # after ORDERBRIDGE_BIN is set
    from harness import Bitrix24, Daemon, Roistat, Workdir, http, order

    wd = Workdir()
    roistat = Roistat(wd.path, rate=0)
    b24 = Bitrix24(wd.path, rate=100, burst=1000)
    daemon = Daemon(wd.path, roistat=roistat, bitrix24=b24,
                    sections={"bitrix24": {"rate": "50", "burst": "500"},
                              "server": {"threads": "4"}})
    counts = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()
    code = None
    try:
        daemon.start()

        def poster(k):
            i = 0
            while not stop.is_set():
                status, _ = daemon.post(order(f"ts{k}-{i}", buyer={
                    "type": "individual", "name": f"Buyer {k}-{i % 5}",
                    "phone": f"+7 916 55{k}-0{i % 5}-00", "email": f"b{k}{i % 5}@example.ru",
                    "company": None, "inn": None}))
                with lock:
                    counts[f"post {status}"] += 1
                i += 1

        def poller():
            while not stop.is_set():
                status, _ = http("GET", daemon.base + "/healthz")
                with lock:
                    counts[f"healthz {status}"] += 1

        threads = [threading.Thread(target=poster, args=(k,)) for k in range(args.posters)]
        threads += [threading.Thread(target=poller) for _ in range(args.pollers)]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(30)
        time.sleep(1.0)  # let the sinks deliver a little more
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            code = daemon.proc.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill9()
            code = "timeout"
        daemon.proc = None
        daemon.log.close()
    finally:
        stop.set()
        if daemon.proc:
            daemon.kill9()
        roistat.stop()
        b24.stop()
        log = open(daemon.log_path, errors="replace").read()
        if args.keep:
            print(f"tsan: work directory kept: {wd.path}")
        else:
            wd.cleanup()
    found = reports(log)
    for block in found:
        print(block)
        print()
    posted = sum(v for k, v in counts.items() if k.startswith("post"))
    polled = sum(v for k, v in counts.items() if k.startswith("healthz"))
    print(f"tsan: posts={posted} healthz={polled} answers={dict(counts)} exit={code} "
          f"reports={len(found)} (total warnings {log.count('WARNING: ThreadSanitizer')})")
    if counts.get("post 202", 0) == 0 or counts.get("healthz 200", 0) == 0:
        print("tsan: the load did not run (no 202 or no healthz 200)")
        return 2
    return 1 if found or log.count("WARNING: ThreadSanitizer") else 0


if __name__ == "__main__":
    sys.exit(main())
