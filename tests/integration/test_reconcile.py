"""`orderbridge reconcile` against the emulators: orders delivered to Roistat and Bitrix24,
then changed directly in each remote (as a person would, in its interface or through its
API), are named one by one; --repair makes the remotes match the store again through the
running daemon, except a second deal for one order, which is left to be merged by hand;
the daemon's scheduled light reconcile puts the count in `orderbridge status`.

Each drift is made on an order of its own, so that a line naming the wrong order, or a
line too many, fails the test.
"""
import json
import os

from harness import Daemon, DaemonCase, http, item, order, wait_for

SITE = "shop.example.ru"

# order → the one drift it is given (None: left untouched), and how reconcile names it
DRIFTS = {
    "rc-price": ("roistat", "revenue", "4990.00", "1000.00"),
    "rc-status": ("roistat", "status", "new", "canceled"),
    "rc-gone": ("roistat", "order", "delivered", "missing"),
    "rc-stage": ("bitrix24", "stage", "NEW", "PREPARATION"),
    "rc-amount": ("bitrix24", "amount", "4990.00", "100.00"),
    "rc-rows": ("bitrix24", "rows", "#1 Kettle 2495.00 x 2", "#1 Kettle 2000.00 x 2"),
    "rc-dup": ("bitrix24", "duplicate", None, None),  # values: the deal ids, found at run time
    "rc-calm": None,
}


REPAIR_WORDS = ("repair requested", "merge by hand", "left as it is", "repair failed")


class ReconcileCase(DaemonCase):
    roistat_args = {}
    bitrix24_args = {"rate": 2, "burst": 50}
    sections = {"delivery": {"reconcile_interval": "0"}}

    def setUp(self):
        super().setUp()
        for oid in DRIFTS:
            status, answer = self.daemon.post(order(oid, items=[item("Kettle", "2495.00", "2")]))
            self.assertEqual(status, 202, answer)
        self.wait_delivered(*DRIFTS)

    # --- helpers ------------------------------------------------------------------------

    def wait_delivered(self, *order_ids, sinks=("roistat", "bitrix24")):
        def done():
            for oid in order_ids:
                for sink in sinks:
                    d = self.daemon.delivery(oid, sink) or {}
                    if d.get("state") != "done" or d["done_rev"] != d["want_rev"]:
                        return None
            return True
        wait_for(done, timeout=60, what=f"delivery of {order_ids}")

    def deal_of(self, oid):
        found = self.b24.deal_for(oid)
        self.assertEqual(len(found), 1, found)
        return found[0]

    def b24_rest(self, method, params):
        status, answer = http("POST", self.b24.webhook_url + method + ".json", params,
                              {"Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        return answer["result"]

    def make_drift(self):
        """Each change made directly in a remote, as its users would."""
        self.roistat.control("order", {"id": "rc-price", "price": "1000.00"})
        self.roistat.control("order", {"id": "rc-status", "status": "canceled"})
        self.roistat.control("order", {"id": "rc-gone", "delete": True})
        self.b24.control("deal", {"id": int(self.deal_of("rc-stage")["ID"]),
                                  "fields": {"STAGE_ID": "PREPARATION"}})
        self.b24.control("deal", {"id": int(self.deal_of("rc-amount")["ID"]),
                                  "fields": {"OPPORTUNITY": "100.00"}})
        self.b24_rest("crm.deal.productrows.set", {
            "id": self.deal_of("rc-rows")["ID"],
            "rows": [{"PRODUCT_NAME": "Kettle", "PRICE": "2000.00", "QUANTITY": "2"}]})
        first = self.deal_of("rc-dup")["ID"]
        second = self.b24.control("deal", {"fields": {
            "TITLE": "Order A-rc-dup (by hand)", "ORIGINATOR_ID": SITE, "ORIGIN_ID": "rc-dup",
            "STAGE_ID": "NEW", "OPPORTUNITY": "4990.00", "CURRENCY_ID": "RUB",
            "IS_MANUAL_OPPORTUNITY": "Y"}})["id"]
        return first, str(second)

    def reconcile(self, *args):
        return self.daemon.cli("reconcile", *args)

    def table(self, stdout):
        """The drift lines as (order, sink, field, store, remote) and the summary line."""
        lines = stdout.strip().splitlines()
        self.assertTrue(lines and lines[-1].startswith("checked="), stdout)
        rows = []
        for line in lines:
            if line.startswith("ORDER ") or line.startswith("checked="):
                continue
            if line.startswith("not yet delivered") or line.startswith("  "):
                continue
            if any(said in line for said in REPAIR_WORDS):
                continue  # --repair's one line per (order, sink)
            # values may hold spaces ("#1 Kettle 2495.00 x 2"): the columns are fixed-width
            rows.append((line[0:20].strip(), line[21:30].strip(), line[31:41].strip(),
                         line[42:67].strip(), line[68:].strip()))
        return rows, lines[-1]

    def expected(self, dup_ids):
        want = set()
        for oid, drift in DRIFTS.items():
            if drift is None:
                continue
            sink, field, store, remote = drift
            if field == "duplicate":
                store, remote = dup_ids[0], ",".join(dup_ids)
            want.add((oid, sink, field, store, remote))
        return want


class NamesEveryDrift(ReconcileCase):
    def test_every_drift_made_in_the_emulators_is_named_and_nothing_else(self):
        r = self.reconcile()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.table(r.stdout), ([], "checked=8 drift=0 not_delivered=0"),
                         "before any change the books agree")

        dup_ids = self.make_drift()
        r = self.reconcile()
        self.assertEqual(r.returncode, 1, r.stderr)
        rows, summary = self.table(r.stdout)
        self.assertEqual(set(rows), self.expected(dup_ids), r.stdout)
        self.assertEqual(len(rows), len(set(rows)), "one line per drift")
        self.assertEqual(summary, "checked=8 drift=7 not_delivered=0")
        self.assertNotIn("rc-calm", r.stdout, "an untouched order is not listed")

        j = self.reconcile("--json")
        self.assertEqual(j.returncode, 1, j.stderr)
        doc = json.loads(j.stdout)
        self.assertEqual((doc["checked"], doc["drift"], doc["not_delivered"], doc["error"]),
                         (8, 7, 0, None))
        self.assertEqual({(d["order_id"], d["sink"], d["field"], d["store"], d["remote"])
                          for d in doc["drifts"]}, self.expected(dup_ids))
        self.assertEqual([d["order_id"] for d in doc["drifts"] if d["by_hand"]], ["rc-dup"])

        # the Roistat reads were the flat one-condition form: a one-condition "and" is a
        # 500 on a live project, and the emulator answers it so
        lists = [h for h in self.roistat.state()["history"]
                 if h["path"].endswith("/integration/order/list")]
        self.assertTrue(lists)
        self.assertEqual({h["http_status"] for h in lists}, {200})

    def test_since_a_later_date_checks_nothing_and_a_bad_date_is_refused(self):
        self.make_drift()
        r = self.reconcile("--since", "2099-01-01")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "checked=0 drift=0 not_delivered=0"))
        r = self.reconcile("--since", "2000-01-01T00:00:00+03:00")
        self.assertEqual(r.returncode, 1, r.stderr)
        r = self.reconcile("--since", "yesterday")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--since yesterday", r.stderr)


class RepairsWhatOrderbridgeOwns(ReconcileCase):
    def test_repair_through_the_running_daemon_leaves_only_the_duplicate(self):
        first, second = self.make_drift()
        r = self.reconcile("--repair")
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stdout.splitlines()
        for oid, drift in DRIFTS.items():
            if drift is None:
                continue
            said = "merge by hand" if drift[1] == "duplicate" else "repair requested"
            self.assertEqual(len([ln for ln in lines if ln.startswith(f"{oid} {drift[0]} {said}")]),
                             1, r.stdout)

        def only_the_duplicate():
            # every repaired order delivered again (one on its way is "not yet delivered")
            again = self.reconcile()
            rows, summary = self.table(again.stdout)
            return (again.returncode, rows) if summary == "checked=8 drift=1 not_delivered=0" \
                else None
        code, rows = wait_for(only_the_duplicate, timeout=60, interval=1,
                              what="reconcile to find only the duplicate")
        self.assertEqual((code, [x[:3] for x in rows]), (1, [("rc-dup", "bitrix24", "duplicate")]))

        # the remotes hold the store's values again, and no repair made a deal twice
        rs = self.roistat.orders()
        self.assertEqual((rs["rc-price"]["price"], rs["rc-status"]["status"]), ("4990.00", "new"))
        self.assertIn("rc-gone", rs)
        self.assertEqual(self.deal_of("rc-stage")["STAGE_ID"], "NEW")
        self.assertEqual(self.deal_of("rc-amount")["OPPORTUNITY"], "4990.00")
        rows_now = [(x["PRODUCT_NAME"], float(x["PRICE"]), float(x["QUANTITY"]))
                    for x in self.b24.state()["productrows"][self.deal_of("rc-rows")["ID"]]]
        self.assertEqual(rows_now, [("Kettle", 2495.0, 2.0)])
        self.assertEqual(sorted(d["ID"] for d in self.b24.deal_for("rc-dup")),
                         sorted([first, second]), "the duplicate is not touched")

        # once a person has merged them (the second deal no longer claims the order)
        self.b24.control("deal", {"id": int(second), "fields": {"ORIGIN_ID": "merged"}})
        r = self.reconcile()
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "checked=8 drift=0 not_delivered=0"))


class NotYetDelivered(ReconcileCase):
    def test_an_order_still_on_its_way_is_listed_apart_not_as_drift(self):
        # Roistat refuses new orders for now; reading them back still works
        self.roistat.fault("error503", methods=["add-orders"])
        status, _ = self.daemon.post(order("rc-late"))
        self.assertEqual(status, 202)
        wait_for(lambda: (self.daemon.delivery("rc-late", "roistat") or {}).get("state")
                 in ("retrying", "pending", "inflight"), what="a Roistat delivery under way")
        self.wait_delivered("rc-late", sinks=("bitrix24",))
        r = self.reconcile("--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["drifts"], [])
        self.assertEqual([(u["order_id"], u["sink"]) for u in doc["not_yet_delivered"]],
                         [("rc-late", "roistat")])
        self.assertEqual((doc["checked"], doc["not_delivered"]), (9, 1))

    def test_a_remote_that_cannot_be_read_is_exit_2_naming_it(self):
        self.roistat.fault("error503", methods=["integration/order/list"])
        r = self.reconcile()
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("Roistat", r.stderr)
        self.assertIn("503", r.stderr)


class ScheduledLightReconcile(ReconcileCase):
    def test_the_daemons_light_reconcile_puts_the_drift_count_in_status(self):
        self.make_drift()
        self.assertNotIn("reconcile", self.daemon.counts(), "no run yet: nothing shown")
        # the same store, now served with a reconcile every second
        self.daemon.stop()
        self.daemon = Daemon(self.wd.path, roistat=self.roistat, bitrix24=self.b24,
                             sections={"delivery": {"reconcile_interval": "1"}})
        self.addCleanup(self.daemon.stop)
        self.daemon.start()
        # light: presence, status or stage, amount; the rows are the full reconcile's
        got = wait_for(lambda: self.daemon.counts().get("reconcile"), timeout=60,
                       what="a scheduled reconcile")
        self.assertEqual(got["drift"], 6, self.daemon.read_log()[-3000:])
        text = self.daemon.cli("status", check=True).stdout
        self.assertRegex(text, r"reconcile: 6 drift \(at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)")
        log = self.daemon.read_log()
        self.assertIn("reconcile.done checked=8 drift=6", log)
        for oid in ("rc-price", "rc-status", "rc-gone", "rc-stage", "rc-amount", "rc-dup"):
            self.assertIn(f"reconcile.drift order_id={oid} ", log)
        self.assertNotIn("order_id=rc-rows ", "\n".join(
            ln for ln in log.splitlines() if "reconcile.drift" in ln))
        # the daemon repairs nothing itself: the next runs still count the same drift
        wait_for(lambda: log.count("reconcile.done") < self.daemon.read_log().count(
            "reconcile.done"), timeout=30, what="another scheduled run")
        self.assertEqual(self.daemon.counts()["reconcile"]["drift"], 6)
        self.assertEqual(self.roistat.orders()["rc-price"]["price"], "1000.00")

        # repaired on request, the count follows, once the orders are delivered again
        self.reconcile("--repair")
        wait_for(lambda: "reconcile.done checked=8 drift=1 not_delivered=0"
                 in self.daemon.read_log(), timeout=60,
                 what="a scheduled run finding only the duplicate")
        self.assertEqual(self.daemon.counts()["reconcile"]["drift"], 1)


class WhatIsNotOrderbridges(ReconcileCase):
    def test_a_contact_changed_in_the_crm_is_named_and_left_to_the_crm(self):
        deal = self.deal_of("rc-calm")
        other = str(self.b24.control("contact", {"fields": {"NAME": "Someone else"}})["id"])
        self.b24.control("deal", {"id": int(deal["ID"]), "fields": {"CONTACT_ID": other}})
        r = self.reconcile("--repair")
        self.assertEqual(r.returncode, 1, r.stderr)
        rows, summary = self.table(r.stdout)
        self.assertEqual(rows, [("rc-calm", "bitrix24", "contact", deal["CONTACT_ID"], other)])
        self.assertIn("rc-calm bitrix24 left as it is", r.stdout)
        self.assertNotIn("repair requested", r.stdout)
        self.assertEqual(self.deal_of("rc-calm")["CONTACT_ID"], other)
        self.assertEqual(self.daemon.delivery("rc-calm", "bitrix24")["state"], "done",
                         "nothing was asked of the sink")

    def test_an_order_whose_deal_is_gone_gets_one_again_with_its_rows(self):
        old = self.deal_of("rc-calm")
        # the deal no longer claims the order (a manager re-used it for something else)
        self.b24.control("deal", {"id": int(old["ID"]), "fields": {"ORIGIN_ID": "reused"}})
        r = self.reconcile()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(self.table(r.stdout)[0],
                         [("rc-calm", "bitrix24", "deal", old["ID"], "missing")])
        self.reconcile("--repair")
        wait_for(lambda: self.reconcile().stdout.strip() == "checked=8 drift=0 not_delivered=0",
                 timeout=60, interval=1, what="the order's deal made again")
        new = self.deal_of("rc-calm")
        self.assertNotEqual(new["ID"], old["ID"])
        self.assertEqual((new["STAGE_ID"], new["OPPORTUNITY"], new["CONTACT_ID"]),
                         ("NEW", "4990.00", old["CONTACT_ID"]))
        rows = self.b24.state()["productrows"][new["ID"]]
        self.assertEqual([(x["PRODUCT_NAME"], float(x["PRICE"]), float(x["QUANTITY"]))
                          for x in rows], [("Kettle", 2495.0, 2.0)])
