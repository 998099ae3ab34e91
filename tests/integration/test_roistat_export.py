"""Roistat's pull protocol, GET /v1/roistat/export (shared/reference/roistat.md §2, the
"integration with your CMS" that Roistat's own 1C-Bitrix module answers in
admin/api.php): Roistat sends user, token = md5(login . password) and action.

  - import_scheme lists the configured status dictionary, in order, and the fields;
  - export pages through the orders changed after `date`: every order once over the
    pages, with the same total_count on each; `date` filters;
  - each exported order is the one the push sink sent to Roistat (the emulator's copy):
    price to the kopeck, a cancelled order at 0;
  - a wrong token, a wrong user or no token is 401, logged without the token or the
    password; a bad date/limit/offset/action is 400 naming it; no export credentials (or
    no [roistat]) is 503;
  - push = no: the sink sends nothing, the export still answers.
"""
import contextlib
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse

import harness
from harness import DaemonCase, OneDaemon, http, order, wait_for, write_private

LOGIN = "roistat-shop"
STATUSES = {"open": "progress, Open deal", "won": "paid, Won", "lost": "canceled, Lost"}
MAP = {"@canceled": "lost", "@paid": "won", "N": "open", "P": "open", "A": "won", "D": "won",
       "F": "won", "C": "lost"}


def md5_token(login, password):
    return hashlib.md5((login + password).encode()).hexdigest()


class ExportCase(DaemonCase):
    """A daemon whose [roistat] has the export's login and password (a secret file)."""
    roistat_args = {"rate": 50}
    push = True

    def before_daemon(self):
        self.password = "pw-" + os.urandom(8).hex()
        self.token = md5_token(LOGIN, self.password)
        harness.SECRETS.update((self.password, self.token))
        path = os.path.join(self.wd.path, "roistat-export.password")
        write_private(path, self.password + "\n")
        roistat = {"export_login": LOGIN, "export_password_file": path}
        if not self.push:
            roistat["push"] = "no"
        self.sections = {"roistat": roistat, "roistat.statuses": STATUSES,
                         "roistat.map": MAP}

    def pull(self, **args):
        return http("GET", f"{self.daemon.base}/v1/roistat/export?"
                    + urllib.parse.urlencode(args))

    def pull_ok(self, **args):
        status, answer = self.pull(user=LOGIN, token=self.token, **args)
        self.assertEqual(status, 200, answer)
        return answer

    def post_all(self, snapshots):
        for s in snapshots:
            status, answer = self.daemon.post(s)
            self.assertEqual(status, 202, answer)

    def all_pages(self, limit, most=20, **args):
        """Every page from offset 0 by `limit`, until one comes back short (at most
        `most` pages: an export that ignores offset would never end)."""
        pages, offset = [], 0
        while len(pages) < most:
            page = self.pull_ok(action="export", limit=limit, offset=offset, **args)
            pages.append(page)
            if len(page["orders"]) < limit:
                return pages
            offset += limit
        self.fail(f"{most} full pages of {limit}: the pages do not end")


SNAPSHOTS = [
    order("e1", price="1234.56"),
    order("e2", status="C", price="999.99"),                 # cancelled by status code
    order("e3", price="10.01", paid=True),
    order("e4", price="4990.00", canceled=True, paid=True),  # the flag wins over paid
    order("e5", status="F", price="0.07"),
]


class ExportProtocol(ExportCase):
    def test_import_scheme_lists_the_configured_dictionary_in_order_and_the_fields(self):
        answer = self.pull_ok(action="import_scheme")
        self.assertEqual(answer["statuses"], [{"id": "open", "name": "Open deal"},
                                              {"id": "won", "name": "Won"},
                                              {"id": "lost", "name": "Lost"}])
        ids = [f["id"] for f in answer["fields"]]
        for field in ("currency", "account_number", "buyer_name", "source", "deal_id"):
            self.assertIn(field, ids)
        self.assertTrue(all(f["name"] for f in answer["fields"]), answer["fields"])

    def test_pages_of_two_give_every_order_once_with_the_same_total(self):
        self.post_all(SNAPSHOTS)
        pages = self.all_pages(2, date=0)
        self.assertEqual([len(p["orders"]) for p in pages], [2, 2, 1])
        self.assertEqual([p["pagination"] for p in pages], [{"total_count": 5, "limit": 2}] * 3)
        ids = [o["id"] for p in pages for o in p["orders"]]
        self.assertEqual(sorted(ids), ["e1", "e2", "e3", "e4", "e5"])
        # offsets 0, 2, 4 by hand, as Roistat asks: the same
        by_hand = [o["id"] for off in (0, 2, 4)
                   for o in self.pull_ok(action="export", date=0, limit=2, offset=off)["orders"]]
        self.assertEqual(by_hand, ids)
        # without limit (Roistat's first call) one page holds them all
        first = self.pull_ok(action="export", date=0)
        self.assertEqual(first["pagination"], {"total_count": 5, "limit": 1000})
        self.assertEqual(sorted(o["id"] for o in first["orders"]), sorted(ids))

    def test_an_exported_order_is_the_one_the_push_sink_sent(self):
        self.post_all(SNAPSHOTS)
        wait_for(lambda: len(self.roistat.orders()) == 5, timeout=60,
                 what="the five orders pushed to Roistat")
        pushed = self.roistat.orders()
        exported = {o["id"]: o for o in self.pull_ok(action="export", date=0)["orders"]}
        self.assertEqual(sorted(exported), sorted(pushed))
        for oid, sent in pushed.items():
            sent = {k: v for k, v in sent.items() if k != "updates"}
            got = exported[oid]
            for key, value in sent.items():
                self.assertEqual(got.get(key), value, f"{oid}: {key}")
            self.assertEqual(got["visit"], sent["roistat"], oid)
            self.assertIsInstance(got["date_update"], int)
        # to the kopeck, as strings; cancelled (by code or by flag) at 0
        self.assertEqual({oid: (o["price"], o["status"]) for oid, o in exported.items()},
                         {"e1": ("1234.56", "open"), "e2": ("0", "lost"),
                          "e3": ("10.01", "won"), "e4": ("0", "lost"), "e5": ("0.07", "won")})

    def test_date_returns_only_orders_changed_after_it(self):
        self.post_all([order("before")])
        [before] = self.pull_ok(action="export", date=0)["orders"]
        second = before["date_update"] + 1
        # the next order must be accepted in a later second than the first
        wait_for(lambda: time.time() > second + 0.05, what="the next second")
        self.post_all([order("after")])
        later = self.pull_ok(action="export", date=second)
        self.assertEqual([o["id"] for o in later["orders"]], ["after"])
        self.assertEqual(later["pagination"]["total_count"], 1)
        both = self.pull_ok(action="export", date=before["date_update"] - 1)
        self.assertEqual(sorted(o["id"] for o in both["orders"]), ["after", "before"])
        # no date: the last 31 days, as Roistat's module
        self.assertEqual(len(self.pull_ok(action="export")["orders"]), 2)
        future = self.pull_ok(action="export", date=int(time.time()) + 3600)
        self.assertEqual((future["orders"], future["pagination"]["total_count"]), ([], 0))
        # a changed order comes again, after the date of its change
        changed = order("before", version=2, status="P")
        self.post_all([changed])
        again = self.pull_ok(action="export", date=second)
        self.assertEqual(sorted(o["id"] for o in again["orders"]), ["after", "before"])

    def test_a_deal_made_in_bitrix24_is_exported_as_a_deal(self):
        # The Bitrix24 source stores deals that did not come from the site as snapshots
        # "b24-deal-<ID>" (snapshot.h); this test puts one where it would, in the store's
        # orders table, so that the export is tested apart from that source.
        self.post_all([order("site1")])
        now_ms = int(time.time() * 1000)
        deal = {"site": "shop.example.ru", "order": {
            "id": "b24-deal-77", "version": 3, "status": "C1:LOSE", "canceled": True,
            "paid": False, "created_at": "2026-03-14T09:00:00+03:00", "price": "15000.00",
            "currency": "RUB", "roistat_visit": "880011",
            "deal": {"id": "77", "title": "Call from +79001112233"}}}
        with contextlib.closing(sqlite3.connect(self.daemon.db, timeout=30)) as c, c:
            c.execute("INSERT INTO orders(order_id, site, rev, has_version, version, "
                      "has_updated_at, updated_at, snapshot, received_at, first_received_at) "
                      "VALUES(?, ?, 1000000, 1, 3, 0, NULL, ?, ?, ?)",
                      ("b24-deal-77", "shop.example.ru", json.dumps(deal), now_ms, now_ms))
        exported = {o["id"]: o for o in self.pull_ok(action="export", date=0)["orders"]}
        self.assertIn("b24-deal-77", exported, exported.keys())
        d = exported["b24-deal-77"]
        self.assertEqual(d["name"], "Deal 77: Call from +79001112233")
        self.assertEqual((d["status"], d["price"]), ("lost", "0"))
        self.assertEqual(d["fields"]["source"], "bitrix24")
        self.assertEqual(d["fields"]["deal_id"], "77")
        self.assertNotIn("account_number", d["fields"])
        self.assertEqual((d["roistat"], d["visit"]), ("880011", "880011"))
        self.assertEqual(exported["site1"]["name"], "Order A-site1")

    def test_a_wrong_token_a_wrong_user_or_no_token_is_401_and_logged_without_secrets(self):
        self.post_all([order("secret1")])
        wrong = md5_token(LOGIN, "not-the-password")
        harness.SECRETS.add(wrong)
        tries = [dict(user=LOGIN, token=wrong), dict(user="someone", token=self.token),
                 dict(user=LOGIN), dict(token=self.token), dict(user=LOGIN, token=""),
                 dict(user=LOGIN, token=self.token.upper()),
                 dict(user=LOGIN, token=self.token + "0"),
                 dict(user=LOGIN, token=self.password)]
        for args in tries:
            status, answer = self.pull(action="export", date=0, **args)
            shown = {k: ("<token>" if k == "token" else v) for k, v in args.items()}
            self.assertEqual(status, 401, shown)
            self.assertEqual(answer, {"status": "error", "message": "incorrect token"}, shown)
        log = self.daemon.read_log()
        self.assertEqual(log.count("roistat.export_refused"), len(tries), log)
        for secret in (self.password, self.token, wrong, self.token.upper()):
            self.assertNotIn(secret, log)

    def test_a_bad_date_limit_offset_or_action_is_400_naming_it(self):
        bad = [("limit", dict(action="export", limit=0)),
               ("limit", dict(action="export", limit=5001)),
               ("limit", dict(action="export", limit="ten")),
               ("limit", dict(action="export", limit="")),
               ("offset", dict(action="export", offset=-1)),
               ("offset", dict(action="export", offset="1e3")),
               ("date", dict(action="export", date="2026-03-13")),
               ("date", dict(action="export", date=" 1")),
               ("date", dict(action="export", date="9" * 19)),
               ("action", dict(action="export_clients")),
               ("action", dict())]
        for param, args in bad:
            status, answer = self.pull(user=LOGIN, token=self.token, **args)
            self.assertEqual(status, 400, args)
            self.assertEqual(answer["status"], "error", args)
            self.assertTrue(answer["message"].startswith(param + ":"), (args, answer))
        # the limits themselves are taken
        self.assertEqual(self.pull_ok(action="export", limit=5000)["pagination"]["limit"], 5000)
        self.assertEqual(self.pull_ok(action="export", limit=1, offset=0)["orders"], [])

    def test_only_get_and_head(self):
        status, _ = http("POST", f"{self.daemon.base}/v1/roistat/export?action=export",
                         b"{}", {"Content-Type": "application/json"})
        self.assertEqual(status, 405)
        status, _ = http("HEAD", f"{self.daemon.base}/v1/roistat/export?"
                         + urllib.parse.urlencode(dict(user=LOGIN, token=self.token,
                                                       action="import_scheme")))
        self.assertEqual(status, 200)


class ExportOnly(ExportCase):
    """push = no: nothing is sent with add-orders; the export answers from the store."""
    roistat_args = {"rate": 50}
    push = False

    def test_push_no_sends_nothing_and_the_export_still_answers(self):
        self.post_all([order("quiet1"), order("quiet2", status="C", price="5.55")])
        exported = {o["id"]: o for o in self.pull_ok(action="export", date=0)["orders"]}
        self.assertEqual(sorted(exported), ["quiet1", "quiet2"])
        self.assertEqual(exported["quiet2"]["price"], "0")
        # the orders are durable and exported; the Roistat sink has no delivery for them
        self.assertIsNone(self.daemon.delivery("quiet1"))
        self.assertEqual(self.roistat.state()["counts"]["add_orders"], 0)


class NotConfigured(DaemonCase):
    """[roistat] pushes, with no export login or password: the export is 503."""
    roistat_args = {"rate": 50}

    def test_without_export_credentials_the_export_is_503(self):
        status, answer = http("GET", f"{self.daemon.base}/v1/roistat/export?user=x&token=y"
                              "&action=import_scheme")
        self.assertEqual((status, answer), (503, {"status": "error",
                                                  "message": "not configured"}))


class NoRoistat(OneDaemon):
    """No [roistat] at all: 503 as well, whatever the request says."""

    def test_without_roistat_the_export_is_503(self):
        status, answer = http("GET", f"{self.daemon.base}/v1/roistat/export?action=export")
        self.assertEqual((status, answer), (503, {"status": "error",
                                                  "message": "not configured"}))
