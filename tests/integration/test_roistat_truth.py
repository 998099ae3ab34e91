"""Roistat's word decides (issue #9, "The same rule for Roistat"): an order is delivered
only when Roistat's answer says it took it.

  1. set-statuses is done only on {"status":"success"}; any other answer, HTTP 200 or
     not, keeps the orders waiting on it from done, classified in Roistat's words, and
     the dictionary's hash is not remembered.
  2. skipped_by_status: the dictionary is sent again once and the order re-sent; an
     order still skipped is a dead letter naming its status. Never done.
  3. skipped_by_waiting_visit_info after visit_wait_max waits: the order is sent again
     without the visit (a direct visit), noted in its history and logged, and done only
     when that re-send is taken.
  4. Every other answer that does not say "taken" (skipped_by_internal_error,
     skipped_by_invalid_format, no counter at all) is a retry or a dead letter, never
     done; skipped_because_not_changed (Roistat has it already) is done.

Each test also checks that the answer it is about was given (the emulator's history or
the order's attempts), so that it cannot pass by not exercising what it names.
"""
import base64
import http.server
import json
import os
import re
import threading
import time
import unittest

import harness
from harness import Daemon, DaemonCase, Roistat, Workdir, order, query, wait_for

STATUSES_KEY = "roistat.statuses_sha256"
# another integration's dictionary, without the daemon's "new"/"confirmed"/"canceled"
THEIRS = [{"id": "x1", "name": "Someone else's", "type": "progress"}]


class RoistatTruthCase(DaemonCase):
    roistat_args = {"rate": 50}

    def post(self, snapshot):
        status, answer = self.daemon.post(snapshot)
        self.assertEqual(status, 202, answer)

    def delivery(self, order_id):
        return self.daemon.delivery(order_id) or {}

    def attempts(self, order_id):
        """The order's Roistat attempts, oldest first."""
        st = self.daemon.order_state(order_id) or {}
        return [a for a in reversed(st.get("attempts", [])) if a["sink"] == "roistat"]

    def dead_reasons(self, order_id):
        st = self.daemon.order_state(order_id) or {}
        return [d["reason"] for d in st.get("dead_letters", []) if d["sink"] == "roistat"]

    def wait_state(self, order_id, *states, timeout=30):
        return wait_for(lambda: self.delivery(order_id).get("state") in states and
                        self.delivery(order_id), timeout=timeout,
                        what=f"order {order_id} in {states}")

    def wait_attempts(self, order_id, n=1, timeout=30):
        """At least n verdicts recorded, or the order done (the defect: done at once)."""
        wait_for(lambda: len(self.attempts(order_id)) >= n or
                 self.delivery(order_id).get("state") == "done", timeout=timeout,
                 what=f"{n} verdicts on order {order_id}")
        return self.attempts(order_id)

    def statuses_hash(self):
        return [v for (v,) in query(self.daemon.db, "SELECT value FROM meta WHERE key=?",
                                    STATUSES_KEY) if v]

    def calls(self, method):
        return [h for h in self.roistat.state()["history"] if h["path"].endswith(method)]

    def deliver_first(self):
        """One order delivered: the dictionary is set, and the daemon is in its stride."""
        self.post(order("first"))
        self.wait_state("first", "done")
        self.assertIn("first", self.roistat.orders())


class SetStatusesNeedsSuccess(RoistatTruthCase):
    """Rule 1."""

    def assert_held_back(self, order_id, *words):
        attempts = self.wait_attempts(order_id)
        d = self.delivery(order_id)
        self.assertNotEqual(d.get("state"), "done",
                            f"set-statuses was not a success, yet {order_id} was marked done")
        self.assertNotIn(order_id, self.roistat.orders())
        for w in words:
            self.assertIn(w, attempts[-1]["detail"])
        self.assertEqual(self.statuses_hash(), [],
                         "the dictionary's hash was remembered without a success")

    def test_set_statuses_answered_200_with_status_error_holds_the_orders_back(self):
        self.roistat.fault("answer_error", methods=["set-statuses"], error="internal_error",
                           description="Statuses are being rebuilt")
        self.post(order("se1"))
        self.assert_held_back("se1", "set-statuses", "HTTP 200 internal_error",
                              "Statuses are being rebuilt")
        self.assertIn(self.delivery("se1")["state"], ("retrying", "inflight"))
        self.assertGreaterEqual(len(self.calls("set-statuses")), 1)
        self.assertEqual(self.calls("add-orders"), [], "orders sent before the dictionary")
        self.roistat.fault("none")
        self.wait_state("se1", "done")
        self.assertIn("se1", self.roistat.orders())
        self.assertEqual(len(self.statuses_hash()), 1)
        self.assertEqual({s["id"] for s in self.roistat.state()["statuses"]},
                         {"new", "confirmed", "canceled"})

    def test_set_statuses_answered_200_without_a_status_or_not_json_holds_the_orders_back(self):
        self.roistat.fault("no_status", methods=["set-statuses"])
        self.post(order("ns1"))
        self.assert_held_back("ns1", 'HTTP 200 without "status":"success"')
        self.roistat.fault("not_json", methods=["set-statuses"])
        n = len(self.attempts("ns1"))
        wait_for(lambda: "not a JSON object" in (self.attempts("ns1")[-1]["detail"] or "")
                 if len(self.attempts("ns1")) > n else None, what="an attempt on the HTML answer")
        self.assert_held_back("ns1", "set-statuses failed")
        self.roistat.fault("none")
        self.wait_state("ns1", "done")
        self.assertIn("ns1", self.roistat.orders())
        self.assertEqual(len(self.statuses_hash()), 1)

    def test_a_dictionary_roistat_refuses_dead_letters_the_orders_in_its_words(self):
        self.roistat.fault("answer_error", methods=["set-statuses"],
                           error="request_data_validation_error",
                           description="Status type is invalid")
        self.post(order("sr1"))
        self.wait_state("sr1", "dead", "done")
        self.assertEqual(self.delivery("sr1")["state"], "dead")
        reasons = self.dead_reasons("sr1")
        self.assertTrue(reasons and "refused the status dictionary" in reasons[0] and
                        "request_data_validation_error: Status type is invalid" in reasons[0],
                        reasons)
        self.assertNotIn("sr1", self.roistat.orders())
        self.assertEqual(self.statuses_hash(), [])

    def test_an_authentication_error_in_a_200_pauses_the_sink_as_a_refused_key(self):
        self.roistat.fault("answer_error", methods=["set-statuses"],
                           error="authentication_failed", description="Invalid API key")
        self.post(order("sa1"))
        attempts = self.wait_attempts("sa1")
        self.assertNotEqual(self.delivery("sa1")["state"], "done")
        self.assertIn("authentication_failed", attempts[-1]["detail"])
        pause = [l for l in self.daemon.read_log().splitlines()
                 if " dispatch.pause " in l and "sink=roistat" in l]
        self.assertTrue(pause, "the sink did not pause")
        self.assertGreaterEqual(int(pause[-1].split("pause_ms=")[1].split()[0]), 60000)


class SkippedByStatus(RoistatTruthCase):
    """Rule 2."""

    def test_an_order_skipped_by_status_sends_the_dictionary_again_then_the_order(self):
        self.deliver_first()
        # another integration replaced the dictionary; Roistat skips statuses it lacks
        self.roistat.control("statuses", {"statuses": THEIRS, "unknown": "skip"})
        self.post(order("bs1"))
        self.wait_state("bs1", "done")
        self.assertIn("bs1", self.roistat.orders(),
                      "marked done although Roistat skipped it by status")
        self.assertEqual(self.roistat.orders()["bs1"]["status"], "new")
        self.assertEqual(self.roistat.state()["received"]["bs1"], 2)
        self.assertEqual(len(self.calls("set-statuses")), 2)
        self.assertIn("new", {s["id"] for s in self.roistat.state()["statuses"]})
        self.assertIn("roistat.statuses_resent order_id=bs1 status=new", self.daemon.read_log())
        self.assertEqual(len(self.statuses_hash()), 1)

    def test_an_order_still_skipped_by_status_is_a_dead_letter_naming_the_status(self):
        # someone else's dictionary comes back after each of ours
        self.roistat.control("statuses", {"statuses": THEIRS, "pinned": True, "unknown": "skip"})
        self.post(order("bs2"))
        self.wait_state("bs2", "dead", "done")
        self.assertEqual(self.delivery("bs2")["state"], "dead")
        reasons = self.dead_reasons("bs2")
        self.assertTrue(reasons and "skipped_by_status" in reasons[0] and
                        'status "new" is not in the project\'s status list' in reasons[0],
                        reasons)
        self.assertNotIn("bs2", self.roistat.orders())
        # the dictionary was sent, then once more; the order was sent, then once more
        self.assertEqual(len(self.calls("set-statuses")), 2)
        self.assertEqual(self.roistat.state()["received"]["bs2"], 2)

    def test_in_a_batch_only_the_order_roistat_took_is_done(self):
        self.deliver_first()
        # a dictionary with "new" but not "confirmed", kept by another integration
        self.roistat.control("statuses", {
            "statuses": [{"id": "new", "name": "New", "type": "progress"}], "pinned": True,
            "unknown": "skip"})
        ids = ["bb1", "bb2", "bb3"]
        path = os.path.join(self.wd.path, "batch.jsonl")
        with open(path, "w") as f:
            for oid in ids:
                f.write(json.dumps(order(oid)) + "\n")
            f.write(json.dumps(order("bbpaid", paid=True)) + "\n")
        self.assertEqual(self.daemon.cli("import", path).returncode, 0)
        for oid in ids + ["bbpaid"]:
            self.wait_state(oid, "done", "dead")
        batches = [h for h in self.calls("add-orders") if h["n_orders"] == 4]
        self.assertTrue(batches, "the four orders were not sent as one batch")
        for oid in ids:
            self.assertEqual(self.delivery(oid)["state"], "done")
            self.assertIn(oid, self.roistat.orders())
        self.assertEqual(self.delivery("bbpaid")["state"], "dead",
                         "a batch answered skipped_by_status=1 marked every order done")
        self.assertNotIn("bbpaid", self.roistat.orders())
        self.assertIn('status "confirmed"', self.dead_reasons("bbpaid")[0])


class VisitNeverSeen(RoistatTruthCase):
    """Rule 3."""
    sections = {"delivery": {"visit_wait_max": "2"}}

    def test_after_visit_wait_max_the_order_is_sent_without_the_visit(self):
        # Roistat knows no visit at all: every order with one waits for it
        self.roistat.control("visits", {"known": []})
        self.post(order("vw1", roistat_visit="777"))
        self.wait_state("vw1", "done")
        o = self.roistat.orders().get("vw1")
        self.assertIsNotNone(o, "marked done although Roistat never took it")
        self.assertNotIn("roistat", o, "sent with the visit Roistat never saw")
        self.assertEqual(o["status"], "new")
        self.assertEqual(self.roistat.state()["received"]["vw1"], 4)  # 2 waits, 1 more, without
        details = [a["detail"] or "" for a in self.attempts("vw1")]
        self.assertTrue(any("wait 2 of 2" in d for d in details), details)
        self.assertTrue(any("has still not seen visit 777 after 2 waits" in d and
                            "without the visit" in d for d in details), details)
        log = self.daemon.read_log()
        self.assertIn("roistat.visit_given_up order_id=vw1 visit=777", log)
        self.assertIn("roistat.visit_dropped order_id=vw1 visit=777", log)

    def test_the_re_send_without_the_visit_is_done_only_when_taken(self):
        # three answers waiting for the visit (two waits, then given up), and the re-send
        # without it refused as well, once
        self.roistat.fault("skip", count=3, skip_as="skipped_by_waiting_visit_info",
                           then={"mode": "skip", "count": 1,
                                 "skip_as": "skipped_by_internal_error"})
        self.post(order("vw2", roistat_visit="778"))
        self.wait_state("vw2", "done")
        self.assertIn("vw2", self.roistat.orders())
        self.assertNotIn("roistat", self.roistat.orders()["vw2"])
        self.assertEqual(self.roistat.state()["received"]["vw2"], 5)
        details = [a["detail"] or "" for a in self.attempts("vw2")]
        self.assertTrue(any("without the visit" in d for d in details), details)
        self.assertIn("Roistat skipped it: skipped_by_internal_error", details)


class EveryOtherSkip(RoistatTruthCase):
    """Rule 4."""

    def test_no_skip_counter_ends_in_done_and_each_ends_as_roistat_says(self):
        self.deliver_first()
        # counter → (words of the first verdict, the final state)
        cases = {
            "skipped_by_internal_error": ("skipped_by_internal_error", "done"),
            "skipped_by_invalid_format": ("skipped_by_invalid_format", "dead"),
            "skipped_by_status": ("skipped_by_status", "done"),
            "skipped_by_waiting_visit_info": ("skipped_by_waiting_visit_info", "done"),
            "none": ("did not say it took it", "done"),
        }
        for counter, (words, final) in cases.items():
            with self.subTest(counter=counter):
                oid = "k-" + counter
                before = len(self.calls("add-orders"))
                self.roistat.fault("skip", count=1, skip_as=counter)
                self.post(order(oid))
                self.wait_state(oid, "done", "dead")
                skipped = [h for h in self.calls("add-orders")[before:] if h["n_orders"] == 1]
                self.assertTrue(skipped, "the skipping answer was not given")
                if final == "done":  # taken by a later request, not the skipping one
                    self.assertGreaterEqual(self.roistat.state()["received"][oid], 2,
                                            f"done on an answer that counted it {counter}")
                first = self.attempts(oid)[0]
                if counter == "skipped_by_status":  # re-sent at once, in the same pass
                    self.assertIn(f"roistat.statuses_resent order_id={oid}",
                                  self.daemon.read_log())
                else:
                    self.assertNotEqual(first["outcome"], "ok")
                    self.assertIn(words, first["detail"])
                self.assertEqual(self.delivery(oid)["state"], final)
                if final == "done":
                    self.assertIn(oid, self.roistat.orders())
                else:
                    self.assertIn(words, self.dead_reasons(oid)[0])
                    self.assertNotIn(oid, self.roistat.orders())

    def test_waiting_for_a_visit_on_an_order_sent_without_one_is_not_done(self):
        self.deliver_first()
        self.roistat.fault("skip", count=2, skip_as="skipped_by_waiting_visit_info")
        self.post(order("nv1", roistat_visit=None))
        self.wait_state("nv1", "done")
        self.assertIn("nv1", self.roistat.orders(),
                      "marked done although Roistat said it waited for a visit")
        details = [a["detail"] or "" for a in self.attempts("nv1")]
        self.assertIn("sent without a visit", details[0])

    def test_not_changed_means_roistat_has_it_and_is_done(self):
        """A guard, not a defect of the old sink: the stricter reading of the counters must
        still take skipped_because_not_changed for success."""
        self.deliver_first()
        self.post(order("nc1"))
        self.wait_state("nc1", "done")
        # a newer snapshot that reads the same to Roistat: skipped_because_not_changed
        self.post(order("nc1", version=2, updated_at="2026-03-13T10:06:00+03:00"))
        wait_for(lambda: self.delivery("nc1").get("state") == "done" and
                 self.delivery("nc1")["done_rev"] == self.delivery("nc1")["want_rev"] > 1,
                 what="the newer snapshot done")
        self.assertEqual(self.roistat.state()["received"]["nc1"], 2)
        self.assertEqual(self.roistat.orders()["nc1"]["updates"], 1)


class FakeRoistat:
    """A Roistat whose answers the test chooses: `answers` maps a method ("add-orders",
    "set-statuses") to (HTTP status, JSON body); any other call is {"status":"success"}.
    It notes when each request came. It stands where Daemon expects an emulator (url,
    PROJECT, key_file), for answers the emulator does not give: a 402 (a project not paid
    for), or counters that contradict each other."""
    PROJECT = "12345"

    def __init__(self, workdir, answers):
        self.key = "rs-key-" + base64.b16encode(os.urandom(8)).decode()
        self.key_file = os.path.join(workdir, "roistat.key")
        harness.write_private(self.key_file, self.key + "\n")
        harness.SECRETS.add(self.key)
        self.requests = []  # (monotonic time, path)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((time.monotonic(), self.path))
                method = self.path.split("?")[0].rsplit("/", 1)[-1]
                status, answer = answers.get(method, (200, {"status": "success"}))
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d/api/v1" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def refusing_roistat(workdir, code, method, error):
    return FakeRoistat(workdir, {method: (code, {"status": "error", "error": error,
                                                 "description": "Emulated refusal %d" % code})})


class ContradictoryCounters(unittest.TestCase):
    """Rule 4's harsher reading: any skip counter means the order was not taken, even when
    "saved" counts it too. An answer saying saved 1 and skipped_by_waiting_visit_info 1
    for the one order sent leaves it waiting for its visit, not done."""

    def test_a_skip_counter_beside_saved_is_not_done(self):
        wd = Workdir()
        fake = FakeRoistat(wd.path, {"add-orders": (200, {
            "status": "success", "processed": 1, "saved": 1,
            "skipped_by_waiting_visit_info": 1})})
        daemon = Daemon(wd.path, roistat=fake)
        try:
            daemon.start()
            status, answer = daemon.post(order("cc1"))
            self.assertEqual(status, 202, answer)
            wait_for(lambda: [p for _, p in fake.requests if "add-orders" in p],
                     what="an add-orders call")
            d = wait_for(lambda: (lambda d: d if d.get("attempts") or d.get("state") in
                                  ("done", "waiting") else None)(daemon.delivery("cc1") or {}),
                         what="a verdict on cc1")
            self.assertEqual(d["state"], "waiting",
                             f"skipped_by_waiting_visit_info beside saved: {d}")
        finally:
            try:
                daemon.stop()
            finally:
                fake.stop()
                wd.cleanup()


class RefusedCredentials(unittest.TestCase):
    """A Roistat 401, 402 or 403 is a refused key or account (sink_roistat.c's header;
    Roistat's API: authentication_failed, a project not paid for, access_denied): no retry
    can succeed until an operator acts, so the sink pauses for at least 60 s and says so,
    and the orders wait (not dead letters, not re-sent one by one). Observed over 4 s
    after the first refusal, with backoff_min_ms = 100: at most 2 requests."""
    WINDOW_S = 4.0

    def run_refusal(self, code, method, error):
        wd = Workdir()
        fake = refusing_roistat(wd.path, code, method, error)
        daemon = Daemon(wd.path, roistat=fake)
        try:
            daemon.start()
            for i in range(3):
                status, answer = daemon.post(order(f"cr{code}-{i}"))
                self.assertEqual(status, 202, answer)
            refused = lambda: [t for t, p in fake.requests if method in p]
            first = wait_for(refused, timeout=15, what=f"a {method} call")[0]
            time.sleep(max(0.0, first + self.WINDOW_S - time.monotonic()))
            window = [p for t, p in fake.requests if first <= t <= first + self.WINDOW_S]
            self.assertLessEqual(len(window), 2,
                                 f"{len(window)} requests in {self.WINDOW_S} s after a {code}: "
                                 f"{window}")
            pauses = [int(m.group(1)) for m in re.finditer(
                r" dispatch\.pause sink=roistat \S+ pause_ms=(\d+)", daemon.read_log())]
            self.assertTrue(pauses, f"no dispatch.pause after HTTP {code}")
            self.assertGreaterEqual(pauses[0], 60000, f"HTTP {code} is a refused key")
            for i in range(3):
                d = daemon.delivery(f"cr{code}-{i}") or {}
                self.assertIn(d.get("state"), ("retrying", "pending", "inflight"),
                              f"after HTTP {code} order cr{code}-{i} is {d.get('state')}")
        finally:
            try:
                daemon.stop()
            finally:
                fake.stop()
                wd.cleanup()

    def test_401_on_add_orders_pauses_the_sink_a_minute(self):
        self.run_refusal(401, "add-orders", "authentication_failed")

    def test_402_on_add_orders_pauses_the_sink_a_minute(self):
        self.run_refusal(402, "add-orders", "insufficient_funds")

    def test_403_on_add_orders_pauses_the_sink_a_minute(self):
        self.run_refusal(403, "add-orders", "access_denied")

    def test_401_on_set_statuses_pauses_the_sink_a_minute(self):
        self.run_refusal(401, "set-statuses", "authentication_failed")


if __name__ == "__main__":
    unittest.main()
