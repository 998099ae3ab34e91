"""The store's seams as the daemon uses them: recovery runs once at start-up, before any
sink's dispatcher (a sink's work in flight is never put back by another sink's start), and
one store has one server (a second `serve` is refused with the holder's pid and the
store's path, while status, retry and import still run beside the first). A verdict that
cannot be recorded is kept and recorded once the store takes writes again."""
import json
import os
import sqlite3
import subprocess
import unittest

from harness import BIN, Bitrix24, DaemonCase, Roistat, capture, order, wait_for


class StartupRecovery(DaemonCase):
    roistat_args = {}
    bitrix24_args = {"rate": 50}
    start_daemon = False

    def test_a_slow_request_at_start_is_not_requeued_by_the_next_sinks_start(self):
        # work waiting before the daemon starts, so that Roistat's dispatcher takes it at
        # once; its request is slow, so it is still in flight while the Bitrix24 sink starts
        path = os.path.join(self.wd.path, "backlog.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(order("s1")) + "\n")
        self.daemon.cli("import", path, check=True)
        self.roistat.fault("slow", count=1, delay_ms=3000, methods=["add-orders"])
        self.daemon.start()
        wait_for(lambda: self.roistat.state()["counts"]["faulted"] >= 1,
                 what="the slow Roistat request under way")
        d = self.daemon.delivery("s1")
        self.assertEqual(d["state"], "inflight", "the request is in flight; the store must say so")
        self.assertIn(":", d["lease_owner"])
        wait_for(lambda: (self.daemon.delivery("s1") or {}).get("state") == "done",
                 what="delivered to Roistat")
        wait_for(lambda: (self.daemon.delivery("s1", "bitrix24") or {}).get("state") == "done",
                 what="delivered to Bitrix24")
        log = self.daemon.read_log()
        self.assertNotIn("dispatch.requeued", log, "nothing was left in flight before start")
        self.assertEqual(self.roistat.state()["counts"]["orders_received"], 1,
                         "the order was sent to Roistat more than once")
        self.assertNotIn("outcome is unknown", json.dumps(self.daemon.order_state("s1")))


class OneServerPerStore(DaemonCase):
    roistat_args = {}

    def second_serve(self):
        r = subprocess.run([BIN, "serve", "-c", self.daemon.conf], capture_output=True,
                           text=True, env=self.daemon.env, timeout=30)
        capture(r.stdout)
        capture(r.stderr)
        return r

    def test_a_second_serve_on_the_same_store_is_refused_naming_the_holder(self):
        r = self.second_serve()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"another orderbridge (pid {self.daemon.proc.pid}) is serving "
                      f"{self.daemon.db}", r.stderr + r.stdout)
        self.assertNotIn("serve.ready", r.stderr + r.stdout)
        # the first one serves on, and the CLI verbs run beside it
        status, _ = self.daemon.post(order("after"))
        self.assertEqual(status, 202)
        wait_for(lambda: "after" in self.roistat.orders(), what="delivered by the first")
        self.assertEqual(self.daemon.cli("status", "--json").returncode, 0)
        self.assertEqual(self.daemon.cli("retry").returncode, 0)
        path = os.path.join(self.wd.path, "more.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(order("imported")) + "\n")
        self.assertEqual(self.daemon.cli("import", path).returncode, 0)
        wait_for(lambda: "imported" in self.roistat.orders(), what="the import delivered")

    def test_the_store_is_free_again_once_its_server_is_gone(self):
        self.daemon.kill9()
        self.daemon.start()  # after a crash: the kernel dropped the lock with the process
        self.daemon.stop()
        self.daemon.start()  # after a clean stop
        status, _ = self.daemon.post(order("again"))
        self.assertEqual(status, 202)


class RecordRetry(DaemonCase):
    roistat_args = {}

    def test_a_verdict_the_store_cannot_take_is_recorded_once_it_can(self):
        self.roistat.fault("slow", count=1, delay_ms=2000, methods=["add-orders"])
        self.assertEqual(self.daemon.post(order("e1"))[0], 202)
        wait_for(lambda: self.roistat.state()["counts"]["faulted"] >= 1,
                 what="the Roistat request under way")
        # another process holds the store's write lock past SQLite's busy timeout (10 s),
        # so the verdict on that request cannot be recorded
        blocker = sqlite3.connect(self.daemon.db, isolation_level=None, timeout=10)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            wait_for(lambda: "dispatch.record_failed" in self.daemon.read_log(), timeout=30,
                     what="a failed record")
            self.assertEqual(self.daemon.delivery("e1")["state"], "inflight")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        wait_for(lambda: (self.daemon.delivery("e1") or {}).get("state") == "done",
                 timeout=45, what="the kept verdict recorded, without a restart")
        self.assertIn("dispatch.record_recovered", self.daemon.read_log())
        self.assertEqual(self.roistat.state()["counts"]["orders_received"], 1,
                         "the verdict was lost and the order sent again")


if __name__ == "__main__":
    unittest.main()
