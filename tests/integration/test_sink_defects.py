"""The sinks under store faults, a remote that dies mid-pass, and texts jansson refuses
(issue #8, defects 3, 7, 8 and 9's share in the sinks).

Store faults are injected into the daemon's own SQLite file from a second connection,
each standing for what a full or failing disk does to one kind of statement, so that a
test can fail exactly the write or read it is about and nothing else:
  - a trigger that refuses writes to `links` (the "pending" deal mark cannot be written);
  - `links` renamed away (every read of a link fails, as on an I/O error);
  - a trigger that refuses the dispatcher's verdicts for one sink (its record fails).
Each test also checks that the situation under test happened (a pass ran, a request was
refused), so that it cannot pass by not exercising what it names.
"""
import contextlib
import http.server
import json
import os
import signal
import sqlite3
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import (Bitrix24, Daemon, DaemonCase, Roistat, Workdir, buyer, order, query,
                     wait_for, write_private)

SITE = "shop.example.ru"

# The deal links only: the contact a pass creates before the deal is linked in the
# verdicts' transaction, which must go through for the verdicts to be seen.
REFUSE_LINK_WRITES = (
    "CREATE TRIGGER test_refuse_link_insert BEFORE INSERT ON links WHEN NEW.kind = 'b24.deal' "
    "BEGIN SELECT RAISE(ABORT, 'injected: database or disk is full'); END",
    "CREATE TRIGGER test_refuse_link_update BEFORE UPDATE ON links WHEN NEW.kind = 'b24.deal' "
    "BEGIN SELECT RAISE(ABORT, 'injected: database or disk is full'); END",
)
ALLOW_LINK_WRITES = ("DROP TRIGGER test_refuse_link_insert", "DROP TRIGGER test_refuse_link_update")


def refuse_verdicts(sink):
    """The dispatcher's record of a pass (a delivery leaving 'inflight') fails."""
    return (f"CREATE TRIGGER test_refuse_verdicts BEFORE UPDATE ON deliveries "
            f"WHEN OLD.state = 'inflight' AND NEW.state <> 'inflight' AND NEW.sink = '{sink}' "
            f"BEGIN SELECT RAISE(ABORT, 'injected: disk I/O error'); END",)


ALLOW_VERDICTS = ("DROP TRIGGER test_refuse_verdicts",)


def sql(db, statements):
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as c:
        for s in statements:
            c.execute(s)
        c.commit()


class B24Case(DaemonCase):
    bitrix24_args = {}

    def post(self, snapshot):
        status, answer = self.daemon.post(snapshot)
        self.assertEqual(status, 202, answer)

    def delivery(self, order_id):
        return self.daemon.delivery(order_id, sink="bitrix24") or {}

    def wait_done(self, *order_ids, timeout=30):
        def done():
            return all(self.delivery(o).get("state") == "done" and
                       self.delivery(o)["done_rev"] == self.delivery(o)["want_rev"]
                       for o in order_ids)
        wait_for(done, timeout=timeout, what=f"Bitrix24 delivery of {order_ids}")

    def by_method(self, method):
        return self.b24.state()["counts"]["by_method"].get(method, 0)

    def deals_of(self, order_id):
        return [d for d in self.b24.state()["deals"].values()
                if d["ORIGIN_ID"] == str(order_id) and d["ORIGINATOR_ID"] == SITE]

    def assert_one_deal(self, order_id):
        found = self.deals_of(order_id)
        self.assertEqual(len(found), 1, f"order {order_id} must have exactly one deal, has "
                         f"{[d['ID'] for d in found]}")
        return found[0]

    def links(self, order_id):
        return dict(query(self.daemon.db, "SELECT kind, remote_id FROM links WHERE order_id=?",
                          order_id))

    def attempts(self, order_id):
        st = self.daemon.order_state(order_id) or {}
        return [a for a in st.get("attempts", []) if a["sink"] == "bitrix24"]


class FalseAnswers:
    """A proxy in front of the Bitrix24 emulator that answers `false` as the result of
    every command of the methods in `self.methods` (in a batch or called alone), after the
    emulator has run it. The emulator never answers false; a portal can (crm.deal.update
    and crm.deal.productrows.set answer true or false). The daemon is pointed at it by a
    webhook URL file of its own."""

    def __init__(self, workdir, b24):
        self.methods, self.falsified = set(), 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = urllib.request.Request(b24.base + self.path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, raw = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, raw = e.code, e.read()
                raw = proxy.rewrite(self.path, body, raw)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url_file = os.path.join(workdir, "b24-proxy.webhook")
        write_private(self.url_file, b24.webhook_url.replace(
            b24.base, "http://127.0.0.1:%d" % self.server.server_address[1]) + "\n")

    def rewrite(self, path, body, raw):
        try:
            answer = json.loads(raw)
        except ValueError:
            return raw
        method = path.rsplit("/", 1)[-1][:-len(".json")]
        if method in self.methods and "result" in answer:
            answer["result"] = False
            self.falsified += 1
        elif method == "batch":
            cmd = json.loads(body).get("cmd") or {}
            results = (answer.get("result") or {}).get("result")
            for key, call in cmd.items():
                if call.split("?")[0] in self.methods and isinstance(results, dict) \
                        and key in results:
                    results[key] = False
                    self.falsified += 1
        return json.dumps(answer).encode()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FalseIsNotDone(B24Case):
    """Issue #9's rule, "a command counts as done only when its own result is present and
    valid", for the answer `false`: a deal update or a product-rows write answered false
    leaves the order not done (retried), and it is done once the portal answers true."""

    def setUp(self):
        # B24Case's set-up with the proxy between the daemon and the portal
        self.wd = Workdir()
        self.addCleanup(self.wd.cleanup)
        self.b24 = Bitrix24(self.wd.path)
        self.addCleanup(self.b24.stop)
        self.proxy = FalseAnswers(self.wd.path, self.b24)
        self.addCleanup(self.proxy.stop)
        self.daemon = Daemon(self.wd.path, bitrix24=self.proxy)
        self.addCleanup(self.daemon.stop)
        self.daemon.start()

    def assert_not_done_then_done(self, order_id, method):
        wait_for(lambda: self.proxy.falsified > 0, what=f"{method} answered false")
        failed = wait_for(lambda: [a for a in self.attempts(order_id) if a["outcome"] != "ok"],
                          what=f"a failed attempt on {order_id} after {method} answered false")
        self.assertIn(method, json.dumps(failed))
        d = self.delivery(order_id)
        self.assertFalse(d["state"] == "done" and d["done_rev"] == d["want_rev"],
                         f"{method} answered false, yet {order_id} is done: {d}")
        self.proxy.methods.clear()
        self.wait_done(order_id)

    def test_product_rows_answered_false_are_not_done(self):
        self.proxy.methods.add("crm.deal.productrows.set")
        self.post(order("fr1", buyer=buyer("Fedor", "+7 910 200-00-01")))
        self.assert_not_done_then_done("fr1", "crm.deal.productrows.set")

    def test_a_deal_update_answered_false_is_not_done(self):
        self.post(order("fu1", buyer=buyer("Galina", "+7 910 200-00-02")))
        self.wait_done("fu1")
        self.proxy.methods.add("crm.deal.update")
        self.post(order("fu1", version=2, status="P"))
        self.assert_not_done_then_done("fu1", "crm.deal.update")
        self.assertEqual(self.assert_one_deal("fu1")["STAGE_ID"], "PREPARATION")


class ExactlyOneDealUnderStoreFaults(B24Case):
    """Defect 3: a store that fails around a create must not lead to a second deal."""

    def test_no_deal_is_created_while_its_pending_mark_cannot_be_written(self):
        sql(self.daemon.db, REFUSE_LINK_WRITES)
        ids = [f"pm{i}" for i in range(3)]
        for i, oid in enumerate(ids):
            self.post(order(oid, buyer=buyer(f"Buyer {i}", f"+7 901 000-10-0{i}",
                                             f"pm{i}@example.ru")))
        # a pass has run: each order has a verdict (or, on the defect, a deal exists)
        wait_for(lambda: self.by_method("crm.deal.add") > 0 or
                 all(self.attempts(o) for o in ids), what="a Bitrix24 pass over the orders")
        self.assertEqual(self.by_method("crm.deal.add"), 0,
                         "crm.deal.add was sent although the pending mark could not be written")
        self.assertEqual(self.b24.state()["deals"], {})
        details = [self.attempts(oid)[0]["detail"] for oid in ids]
        self.assertTrue(all(d.startswith("not sent: ") for d in details), details)
        self.assertTrue(any("could not mark the deal pending" in d for d in details), details)
        self.assertNotIn("done", [self.delivery(oid)["state"] for oid in ids])

        sql(self.daemon.db, ALLOW_LINK_WRITES)
        self.wait_done(*ids)
        for oid in ids:  # a change after recovery updates the same deal
            self.post(order(oid, version=2, status="P"))
        self.wait_done(*ids)
        for oid in ids:
            deal = self.assert_one_deal(oid)
            self.assertEqual(self.links(oid).get("b24.deal"), str(deal["ID"]))
        self.assertEqual(self.by_method("crm.deal.add"), 3)

    def test_a_link_that_cannot_be_read_is_not_taken_for_no_link(self):
        self.post(order("rl"))
        self.wait_done("rl")
        deal = self.assert_one_deal("rl")
        before = self.daemon.read_log().count("deliver.not_ok sink=bitrix24 order_id=rl ")

        # every read of a link now fails (as on an I/O error); `orderbridge status` reads
        # links too, so the daemon's log is the witness until they come back
        sql(self.daemon.db, ("ALTER TABLE links RENAME TO test_links_away",))
        try:
            self.post(order("rl", version=2, status="P"))
            wait_for(lambda: self.by_method("crm.deal.add") > 1 or
                     self.daemon.read_log().count(
                         "deliver.not_ok sink=bitrix24 order_id=rl ") > before,
                     what="a Bitrix24 pass over the changed order")
            self.assertEqual(self.by_method("crm.deal.add"), 1,
                             "a link read failed and was taken for \"no deal yet\": "
                             "a second deal was created")
            self.assertEqual(self.by_method("crm.deal.update"), 0,
                             "a request was sent although the store could not be read")
            self.assertIn("detail=\"not sent: the store failed (no such table: links)\"",
                          self.daemon.read_log())
        finally:
            sql(self.daemon.db, ("ALTER TABLE test_links_away RENAME TO links",))
        # the dispatcher's record of that pass failed too (it writes links in the same
        # transaction): the delivery is in flight until the next start re-queues it
        self.daemon.stop()
        self.daemon.start()
        self.wait_done("rl")
        self.assertEqual(self.assert_one_deal("rl")["ID"], deal["ID"])
        self.assertGreaterEqual(self.by_method("crm.deal.update"), 1)


class SideWritesGoWithTheVerdict(B24Case):
    """Defect 7: links and cached look-ups are recorded in the verdicts' transaction."""

    def test_links_and_the_contact_cache_are_kept_only_with_the_verdict(self):
        sql(self.daemon.db, refuse_verdicts("bitrix24"))
        self.post(order("sw", buyer=buyer("Side Writer", "+7 901 555-00-01", "sw@example.ru")))
        wait_for(lambda: "dispatch.record_failed sink=bitrix24" in self.daemon.read_log(),
                 what="the verdict's record failing")
        self.assertEqual(len(self.deals_of("sw")), 1, "the pass did not reach the portal")
        self.assertEqual(self.links("sw"), {"b24.deal": "pending"},
                         "links were kept although the verdict that made them was not")
        self.assertEqual(query(self.daemon.db,
                               "SELECT key FROM meta WHERE key LIKE 'b24.contact.%'"), [],
                         "the contact cache was written although the verdict was not")

        # the verdict was lost with its links: the next run finds the deal and the
        # contact it made instead of making them again
        sql(self.daemon.db, ALLOW_VERDICTS)
        self.daemon.stop()
        self.daemon.start()
        self.wait_done("sw")
        deal = self.assert_one_deal("sw")
        contacts = [c for c in self.b24.state()["contacts"].values()
                    if "+79015550001" in [p["VALUE"] for p in c.get("PHONE", [])]]
        self.assertEqual(len(contacts), 1, "the buyer's contact was made twice")
        links = self.links("sw")
        self.assertEqual((links.get("b24.deal"), links.get("b24.contact")),
                         (str(deal["ID"]), str(contacts[0]["ID"])))
        self.assertIn("b24.rows", links)
        cache = dict(query(self.daemon.db, "SELECT key, value FROM meta WHERE key LIKE 'b24.%'"))
        self.assertEqual(cache.get("b24.contact.phone:+79015550001"), str(contacts[0]["ID"]))


class RoistatCase(DaemonCase):
    roistat_args = {}

    def import_orders(self, ids):
        """Stores the orders in one go, so that the sink takes them in one batch."""
        path = os.path.join(self.wd.path, "batch.jsonl")
        with open(path, "w") as f:
            for oid in ids:
                f.write(json.dumps(order(oid)) + "\n")
        self.assertEqual(self.daemon.cli("import", path).returncode, 0)

    def attempts(self, order_id):
        st = self.daemon.order_state(order_id) or {}
        return [a for a in st.get("attempts", []) if a["sink"] == "roistat"]


class RoistatSideWrites(RoistatCase):
    def test_the_status_dictionary_hash_is_kept_only_with_the_verdict(self):
        sql(self.daemon.db, refuse_verdicts("roistat"))
        self.daemon.post(order("sh"))
        wait_for(lambda: "sh" in self.roistat.orders() and
                 "dispatch.record_failed sink=roistat" in self.daemon.read_log(),
                 what="a delivery whose verdict is not recorded")
        self.assertEqual(self.roistat.state()["counts"]["set_statuses"], 1)
        self.assertEqual(query(self.daemon.db,
                               "SELECT value FROM meta WHERE key='roistat.statuses_sha256'"), [],
                         "the statuses' hash was kept although the verdict was not")
        sql(self.daemon.db, ALLOW_VERDICTS)
        self.daemon.stop()
        self.daemon.start()
        wait_for(lambda: (self.daemon.delivery("sh") or {}).get("state") == "done",
                 timeout=30, what="delivered after the restart")
        self.assertEqual(len(query(self.daemon.db,
                                   "SELECT value FROM meta WHERE key='roistat.statuses_sha256'")),
                         1)


class RoistatIsolation(RoistatCase):
    """Defect 8: a refused batch is re-sent one by one; a remote that dies in the middle
    stops that, and so does a stop of the daemon."""
    sections = {"roistat": {"timeout_ms": "1500"}}
    ids = [f"iso{i}" for i in range(10)]

    def refuse_the_batch_then(self, then):
        self.daemon.post(order("first"))
        wait_for(lambda: "first" in self.roistat.orders(), what="the status dictionary set")
        self.roistat.fault("error400", count=1, methods=["add-orders"],
                           then=dict(then, methods=["add-orders"]))
        self.import_orders(self.ids)

    def test_finding_the_refused_order_stops_at_the_first_timeout(self):
        self.refuse_the_batch_then({"mode": "hang", "count": 1})
        wait_for(lambda: all(o in self.roistat.orders() for o in self.ids), timeout=40,
                 what="every order delivered once Roistat answers again")
        # the pass of the refusal: one order timed out on its own, the nine after it were
        # not sent again but left for the next pass (on the defect they were each sent
        # alone, and each could have waited out a timeout of its own)
        details = [a["detail"] for o in self.ids for a in self.attempts(o) if a["detail"]]
        timed_out = [d for d in details if d.startswith("transport: ")]
        not_sent = [d for d in details if d.startswith("not sent: finding the order at fault")]
        self.assertEqual(len(timed_out), 1, details)
        self.assertEqual(len(not_sent), len(self.ids) - 1,
                         "after a timed-out one-by-one request, the other orders were still "
                         f"sent one by one: {details}")
        self.assertTrue(all(d.endswith(timed_out[0]) for d in not_sent), not_sent)

    def test_sigterm_during_the_one_by_one_requests_stops_the_daemon_in_seconds(self):
        before = self.roistat.state()["counts"]["faulted"]
        self.refuse_the_batch_then({"mode": "slow", "delay_ms": 1200})
        # the refusal and the first one-by-one request have arrived
        wait_for(lambda: self.roistat.state()["counts"]["faulted"] >= before + 2,
                 what="the one-by-one requests under way")
        started = time.monotonic()
        self.daemon.proc.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.proc.wait(60)
        finally:
            took = time.monotonic() - started
        self.daemon.log.close()
        self.daemon.capture_log()
        self.daemon.proc = None
        self.assertEqual(code, 0)
        self.assertLess(took, 5.0, f"the daemon took {took:.1f} s to stop: the one-by-one "
                        "requests went on after SIGTERM")
        stopped = [o for o in self.ids
                   if any(a["detail"] == "not sent: the daemon is stopping"
                          for a in self.attempts(o))]
        self.assertGreater(len(stopped), 0)
        # nothing is lost: the next run delivers them
        self.roistat.fault("none")
        self.daemon.start()
        wait_for(lambda: all(o in self.roistat.orders() for o in self.ids), timeout=30,
                 what="every order delivered after the restart")


CP1251_ORDER = "Заказ ".encode("cp1251")  # a configuration saved by a Windows editor
CP1251_CANCELED = "Отменён".encode("cp1251")


def patch_conf(daemon, placeholder, raw):
    with open(daemon.conf, "rb") as f:
        text = f.read()
    assert placeholder.encode() in text
    with open(daemon.conf, "wb") as f:
        f.write(text.replace(placeholder.encode(), raw))


class TextsThatAreNotUtf8(unittest.TestCase):
    """Defect 9: jansson refuses a text that is not UTF-8, so a configuration saved in
    cp1251 would leave a deal's title or a Roistat status out. It is refused when the
    configuration is read — by `check` and by `serve`, naming the line and the key, without
    echoing the value — so nothing is ever sent with a field missing."""

    def setUp(self):
        self.wd = Workdir()
        self.remotes = []
        self.daemon = None

    def tearDown(self):
        try:
            if self.daemon and self.daemon.proc:
                self.daemon.stop()
        finally:
            for r in self.remotes:
                r.stop()
            self.wd.cleanup()

    def assert_refused(self, key, raw):
        with open(self.daemon.conf, "rb") as f:
            line = next(i for i, x in enumerate(f.read().split(b"\n"), 1) if raw in x)
        want = f"{self.daemon.conf}:{line}: {key}: not UTF-8"
        r = self.daemon.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(want, r.stderr)
        with self.assertRaises(AssertionError) as e:
            self.daemon.start()
        self.assertIn(want, str(e.exception))
        self.daemon.proc.wait(10)
        self.assertEqual(self.daemon.proc.returncode, 1)
        self.daemon.proc = None

    def test_a_deal_title_prefix_that_is_not_utf8_is_refused_with_its_line(self):
        b24 = Bitrix24(self.wd.path)
        self.remotes.append(b24)
        self.daemon = Daemon(self.wd.path, bitrix24=b24,
                             sections={"bitrix24": {"deal_title_prefix": "PREFIX"}})
        patch_conf(self.daemon, "PREFIX", CP1251_ORDER)
        self.assert_refused("[bitrix24] deal_title_prefix", CP1251_ORDER)
        self.assertEqual(b24.state()["deals"], {})

    def test_a_status_name_that_is_not_utf8_is_refused_with_its_line(self):
        roistat = Roistat(self.wd.path)
        self.remotes.append(roistat)
        self.daemon = Daemon(self.wd.path, roistat=roistat, sections={
            "roistat.statuses": {"new": "progress, New", "confirmed": "paid, Confirmed",
                                 "canceled": "canceled, NAME"}})
        patch_conf(self.daemon, "NAME", CP1251_CANCELED)
        self.assert_refused("[roistat.statuses] canceled", CP1251_CANCELED)
        self.assertEqual(roistat.state()["statuses"], [])


if __name__ == "__main__":
    unittest.main()
