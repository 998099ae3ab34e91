"""SIGTERM under load: the daemon stops accepting, answers every request whose commit is
done or refused, then stops, and exits 0 (issue #10, item 2).

Each run starts a daemon with no sinks, fires a burst of signed posts from many threads
(half on keep-alive connections, half on a new connection per post), sends SIGTERM at a
random moment of the burst, and then checks that the process exited 0 without a
libmicrohttpd "Fatal error", and that every order found in the store afterwards was
answered 202 or 200 to its sender: a stored order whose sender saw a connection error or
no answer is an acknowledgement the daemon owed and dropped. The moments come from a
seeded random generator; the seed is printed (set ORDERBRIDGE_SHUTDOWN_SEED to repeat).
"""
import http.client
import json
import os
import random
import signal
import sqlite3
import threading
import time
import unittest
import uuid

from harness import Daemon, Workdir, obpost, order

RUNS = 20
BURST_MAX = 4000   # posts per run at most; the SIGTERM comes well before
SENDERS = 24       # concurrent connections
KILL_AFTER = (0.15, 1.2)  # seconds into the burst


class Sender(threading.Thread):
    """Posts snapshots until told to stop or until the daemon is gone; records, for each
    order id, the status it was answered with or the error its sender saw."""

    def __init__(self, port, key, ids, outcomes, lock, keep_alive, stop):
        super().__init__(daemon=True)
        self.port, self.key, self.ids, self.outcomes, self.lock = port, key, ids, outcomes, lock
        self.keep_alive, self.stop = keep_alive, stop

    def run(self):
        conn = None
        refused = 0
        while not self.stop.is_set():
            with self.lock:
                if not self.ids:
                    return
                oid = self.ids.pop()
            body = json.dumps(order(oid)).encode()
            wid = "msg_" + uuid.uuid4().hex
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "webhook-id": wid,
                       "webhook-timestamp": ts,
                       "webhook-signature": obpost.sign(self.key, wid, ts, body)}
            if not self.keep_alive:
                headers["Connection"] = "close"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                conn.request("POST", "/v1/orders", body, headers)
                resp = conn.getresponse()
                resp.read()
                outcome = resp.status
                if not self.keep_alive or resp.will_close:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                outcome = "refused"
                refused += 1
                conn = None
            except (OSError, http.client.HTTPException) as e:
                outcome = type(e).__name__
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                self.outcomes[oid] = outcome
            if refused >= 3:
                return  # the daemon is gone
        if conn:
            conn.close()


def stored_ids(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT order_id FROM orders")}
    finally:
        con.close()


class ShutdownUnderLoad(unittest.TestCase):
    def one_run(self, rng, run):
        wd = Workdir()
        daemon = Daemon(wd.path, sections={"server": {"max_connections": "512",
                                                       "threads": "2"}})
        try:
            daemon.start()
            ids = [f"r{run}-{i}" for i in range(BURST_MAX)]
            ids.reverse()
            outcomes, lock, stop = {}, threading.Lock(), threading.Event()
            senders = [Sender(daemon.port, daemon.key, ids, outcomes, lock, i % 2 == 0, stop)
                       for i in range(SENDERS)]
            for s in senders:
                s.start()
            time.sleep(rng.uniform(*KILL_AFTER))
            with lock:
                sent_before = len(outcomes)
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                code = daemon.proc.wait(30)
            except Exception:
                daemon.proc.kill()
                daemon.proc.wait()
                code = "hung"
            stop.set()
            for s in senders:
                s.join(30)
            daemon.log.close()
            daemon.capture_log()
            log = daemon.read_log()
            daemon.proc = None
            stored = stored_ids(daemon.db)
            unanswered = sorted(oid for oid in stored if outcomes.get(oid) not in (200, 202))
            problems = []
            if code != 0:
                problems.append(f"exit status {code}")
            if "Fatal error" in log:
                problems.append("libmicrohttpd: " + log[log.index("Fatal error"):][:120])
            if unanswered:
                problems.append(f"{len(unanswered)} stored orders not answered 202/200, e.g. "
                                + ", ".join(f"{o}={outcomes.get(o, 'no answer')}"
                                            for o in unanswered[:3]))
            for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                if mark in log:
                    problems.append("sanitizer: " + mark)
            print(f"  run {run}: {sent_before} answered before SIGTERM, {len(outcomes)} tried, "
                  f"{len(stored)} stored, exit {code}"
                  + (": " + "; ".join(problems) if problems else ""), flush=True)
            return problems, len(unanswered)
        finally:
            daemon.stop(check=False)
            wd.cleanup()

    def test_sigterm_during_a_burst_exits_0_and_every_stored_order_was_answered(self):
        seed = int(os.environ.get("ORDERBRIDGE_SHUTDOWN_SEED") or random.randrange(1 << 30))
        print(f"\nshutdown: seed={seed} runs={RUNS}", flush=True)
        rng = random.Random(seed)
        failed, unanswered = [], 0
        for run in range(RUNS):
            problems, n = self.one_run(rng, run)
            unanswered += n
            if problems:
                failed.append((run, problems))
        print(f"shutdown: {len(failed)} of {RUNS} runs failed, {unanswered} stored orders "
              f"unanswered in all (seed={seed})", flush=True)
        self.assertEqual(failed, [], f"seed={seed}")


if __name__ == "__main__":
    unittest.main()
