"""/healthz tells the truth (issue 12): 200 {"status":"ok"} only when the store commits
and no sink is paused for its credentials or stuck past [delivery] stuck_after_s; the
503 body names each problem and its sink. A sink backing off from a remote that is down
is listed but is not a failure by itself. /readyz answers 200 once serve is ready. Two
daemons, each shared by its class's tests: one with the default threshold (an hour),
one with stuck_after_s = 1."""
import contextlib
import re
import sqlite3
import unittest
import urllib.request

from harness import Daemon, Roistat, Workdir, http, order, wait_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def head(url):
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class SharedDaemon(unittest.TestCase):
    sections = None

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        try:
            cls.roistat = Roistat(cls.wd.path)
            cls.daemon = Daemon(cls.wd.path, roistat=cls.roistat, sections=cls.sections)
            cls.daemon.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "daemon", None):
                cls.daemon.stop()
        finally:
            if getattr(cls, "roistat", None):
                cls.roistat.stop()
            cls.wd.cleanup()

    def health(self):
        return http("GET", self.daemon.base + "/healthz")

    def problems(self, answer, sink="roistat"):
        return {p["problem"]: p for p in answer.get("problems", []) if p.get("sink") == sink}

    def wait_health(self, status, problem=None, what="", timeout=15, sink="roistat"):
        def seen():
            st, answer = self.health()
            if st == status and (problem is None or problem in self.problems(answer, sink)):
                return answer
            return None
        return wait_for(seen, timeout=timeout, what=what or f"/healthz {status} {problem}")

    def wait_delivered(self, order_id):
        wait_for(lambda: order_id in self.roistat.orders(), timeout=15,
                 what=f"{order_id} delivered")


class Health(SharedDaemon):
    """The default threshold: nothing is stuck within a test."""

    def test_a_healthy_daemon_answers_200_ok_to_get_and_head_and_is_ready(self):
        self.assertEqual(self.health(), (200, {"status": "ok"}))
        self.assertEqual(head(self.daemon.base + "/healthz"), (200, b""))
        self.assertEqual(http("GET", self.daemon.base + "/readyz"), (200, {"status": "ready"}))
        self.assertEqual(head(self.daemon.base + "/readyz"), (200, b""))

    def test_a_remote_down_is_named_but_healthy_and_a_refused_key_is_503_paused_auth(self):
        self.roistat.fault("error503")
        self.daemon.post(order("h1"))
        answer = self.wait_health(200, "paused_remote", "paused_remote listed under 200")
        self.assertEqual(answer["status"], "ok")
        remote = self.problems(answer)["paused_remote"]
        self.assertRegex(remote["since"], ISO)
        self.assertRegex(remote["until"], ISO)
        self.assertNotIn("paused_auth", self.problems(answer))
        # the key is refused now: an operator must act, whatever the remote's health
        self.roistat.fault("answer_error", error="authentication_failed",
                           description="Invalid API key")
        answer = self.wait_health(503, "paused_auth", "503 naming paused_auth")
        self.assertEqual(answer["status"], "failing")
        auth = self.problems(answer)["paused_auth"]
        self.assertEqual(auth["sink"], "roistat")
        self.assertIn("authentication_failed", auth["reason"])
        self.assertRegex(auth["since"], ISO)
        # HEAD answers the same status, without a body
        self.assertEqual(head(self.daemon.base + "/healthz"), (503, b""))
        # no order data in the body beyond counts
        self.assertNotIn("Ivan", str(answer))
        self.assertNotIn("h1", str(answer))


class Stuck(SharedDaemon):
    sections = {"delivery": {"stuck_after_s": "1"}}

    def test_a_pass_hung_past_stuck_after_s_is_503_stuck_and_heals_when_it_ends(self):
        self.wait_health(200, what="healthy at first")
        self.roistat.fault("hang")
        self.daemon.post(order("s1"))
        answer = self.wait_health(503, "stuck_pass", "503 naming stuck_pass")
        stuck = self.problems(answer)["stuck_pass"]
        self.assertRegex(stuck["reason"], r"^a delivery pass has run for [0-9]+ s$")
        self.assertRegex(stuck["since"], ISO)
        self.roistat.fault("none")
        self.wait_delivered("s1")
        self.assertEqual(self.wait_health(200, what="healthy again"), {"status": "ok"})

    def test_an_order_owed_past_stuck_after_s_is_503_stuck_queue_and_heals(self):
        self.wait_health(200, what="healthy at first")
        self.roistat.fault("error503")
        self.daemon.post(order("s2"))
        answer = self.wait_health(503, "stuck_queue", "503 naming stuck_queue")
        self.assertIn("paused_remote", self.problems(answer))
        self.assertRegex(self.problems(answer)["stuck_queue"]["reason"],
                         r"^an order has been owed for [0-9]+ s$")
        self.roistat.fault("none")
        self.wait_delivered("s2")
        self.assertEqual(self.wait_health(200, what="healthy again"), {"status": "ok"})

    def test_a_store_that_cannot_commit_is_503_store_failing_within_seconds(self):
        self.wait_health(200, what="healthy at first")
        with contextlib.closing(sqlite3.connect(self.daemon.db, timeout=30,
                                                isolation_level=None)) as c:
            c.execute("BEGIN EXCLUSIVE")
            try:
                # the sink's loop, blocked on the same lock, may be named too (stuck_loop)
                answer = self.wait_health(503, "store_failing", sink=None, timeout=10,
                                          what="503 store_failing while the store is locked")
                failing = self.problems(answer, None)["store_failing"]
                self.assertRegex(failing["reason"], r"^a test commit has not returned for "
                                 r"[0-9]+ ms")
                self.assertRegex(failing["since"], ISO)
            finally:
                c.execute("ROLLBACK")
        self.assertEqual(self.wait_health(200, what="healthy once the lock is gone",
                                          timeout=20), {"status": "ok"})


if __name__ == "__main__":
    unittest.main()
