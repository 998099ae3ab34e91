"""Bitrix24 → orderbridge: the outgoing webhook's route (POST /v1/bitrix24/events) and the
Bitrix24 source behind it, against the Bitrix24 and Roistat emulators.

A deal that did not come from the site (a manager's deal after a call) reaches Roistat as
"b24-deal-<ID>" with its amount and visit; the application token is checked; a lost
event (Bitrix24 never resends one) is repaired by the poll, also when the change falls in
the watermark's own second; a re-read that changes nothing costs Roistat nothing; the
token never reaches a log. The Roistat status of a deal is not asserted here: mapping
stages to Roistat statuses is [roistat.stage_map]'s business, tested with it."""
import base64
import os
import time
import unittest
import urllib.parse

import harness
from harness import DaemonCase, buyer, http, make_secret, order, query, wait_for, write_private
from site_standin import SiteStandIn

EVENTS = "/v1/bitrix24/events"
WATERMARK = "b24.poll.watermark"
LONG = 60  # seconds: generous, the machine is shared


def new_token():
    return "apptok" + base64.b16encode(os.urandom(13)).decode().lower()


class Inbound(DaemonCase):
    """Both emulators, [bitrix24] with an application token; `poll_interval` per class."""
    roistat_args = {}
    bitrix24_args = {"rate": 50, "burst": 200}
    poll_interval = 0

    def before_daemon(self):
        self.token = new_token()
        harness.SECRETS.add(self.token)
        path = os.path.join(self.wd.path, "b24.application_token")
        write_private(path, self.token + "\n")
        # rate 20: the source's share (2/s) keeps a poll of several pages quick
        self.sections = {"bitrix24": {"application_token_file": path, "rate": "20",
                                      "poll_interval": str(self.poll_interval)},
                         "log": {"level": "debug"}}

    def setUp(self):
        super().setUp()
        self.b24.control("event-target", {"url": self.daemon.base + EVENTS,
                                          "application_token": self.token})

    # --- helpers -------------------------------------------------------------------------

    def event(self, fields):
        """POSTs a form as the portal does; (status, answer)."""
        body = urllib.parse.urlencode(fields).encode()
        return http("POST", self.daemon.base + EVENTS, body,
                    {"Content-Type": "application/x-www-form-urlencoded"})

    def deal_event(self, deal_id, token=None, event="ONCRMDEALUPDATE"):
        return self.event({"event": event, "event_handler_id": "7",
                           "data[FIELDS][ID]": str(deal_id), "ts": str(int(time.time())),
                           "auth[domain]": "orderbridge-test.bitrix24.ru",
                           "auth[application_token]": self.token if token is None else token})

    def call_deal(self, **fields):
        """A manager's deal after a call: no ORIGINATOR_ID; its id."""
        spec = {"TITLE": "Call from +7 900 111-22-33", "OPPORTUNITY": "1500.50",
                "CURRENCY_ID": "RUB", "UF_CRM_ROISTAT": "4521890"}
        spec.update(fields)
        return self.b24.control("deal", {"fields": spec})["id"]

    def in_roistat(self, deal_id, price=None):
        """Waits until Roistat holds b24-deal-<ID> (at `price`, when given); the order."""
        oid = "b24-deal-%d" % deal_id

        def there():
            o = self.roistat.orders().get(oid)
            return o if o and (price is None or o["price"] == price) else None
        return wait_for(there, timeout=LONG, what=oid + " in Roistat")

    def received(self, deal_id):
        return self.roistat.state()["received"].get("b24-deal-%d" % deal_id, 0)

    def log_has(self, text):
        return text in self.daemon.read_log()

    def wait_log(self, text):
        wait_for(lambda: self.log_has(text), timeout=LONG, what="log: " + text)

    def watermark(self):
        rows = query(self.daemon.db, "SELECT value FROM meta WHERE key = ?", WATERMARK)
        return rows[0][0] if rows else None


class Events(Inbound):
    """Events only (poll_interval = 0): what reaches Roistat came through the route."""

    def test_a_call_deal_reaches_roistat_as_b24_deal_with_its_price_and_visit(self):
        deal = self.call_deal()
        order = self.in_roistat(deal)
        self.assertEqual(order["price"], "1500.50")
        self.assertEqual(order["roistat"], "4521890")
        self.assertEqual(order["fields"]["currency"], "RUB")
        self.wait_log("b24.event event=ONCRMDEALADD deal_id=%d" % deal)
        # the deal goes to Roistat only: never back to Bitrix24 as an order of its own
        oid = "b24-deal-%d" % deal
        wait_for(lambda: (self.daemon.delivery(oid) or {}).get("state") == "done",
                 timeout=LONG, what="the Roistat delivery done")
        self.assertIsNone(self.daemon.delivery(oid, sink="bitrix24"))
        self.assertEqual(len(self.b24.deals()), 1)
        # a manager's change moves it in Roistat
        self.b24.control("deal", {"id": deal, "fields": {"OPPORTUNITY": "2000"}})
        self.in_roistat(deal, price="2000.00")

    def test_a_call_deals_stage_gives_its_roistat_status_by_the_stages_semantics(self):
        deal = self.call_deal()
        self.assertEqual(self.in_roistat(deal)["status"], "new")  # the first of type progress

        def status_is(status, price):
            o = self.roistat.orders().get("b24-deal-%d" % deal) or {}
            return o.get("status") == status and o.get("price") == price
        self.b24.control("deal", {"id": deal, "fields": {"STAGE_ID": "WON"}})  # success
        wait_for(lambda: status_is("confirmed", "1500.50"), timeout=LONG, what="paid type")
        self.b24.control("deal", {"id": deal, "fields": {"STAGE_ID": "LOSE"}})  # failure
        wait_for(lambda: status_is("canceled", "0"), timeout=LONG, what="canceled type, price 0")
        order = self.roistat.orders()["b24-deal-%d" % deal]
        self.assertEqual(order["name"], "Deal %d: Call from +7 900 111-22-33" % deal)
        self.assertEqual(order["fields"]["source"], "bitrix24")

    def test_a_deal_reread_without_a_change_does_not_call_add_orders_again(self):
        deal = self.call_deal()
        self.in_roistat(deal)
        wait_for(lambda: self.received(deal) == 1, timeout=LONG, what="one add-orders")
        lists = self.b24.state()["counts"]["by_method"].get("crm.deal.list", 0)
        # the portal sends the same event again (or the poll reads the deal again)
        self.assertEqual(self.deal_event(deal)[0], 200)
        wait_for(lambda: self.b24.state()["counts"]["by_method"]["crm.deal.list"] > lists,
                 timeout=LONG, what="the deal read again")
        # a later deal is a barrier: had the re-read been sent, it would be in Roistat by now
        barrier = self.call_deal(TITLE="Chat", OPPORTUNITY="10")
        self.in_roistat(barrier)
        wait_for(lambda: (self.daemon.delivery("b24-deal-%d" % barrier) or {}).get("state")
                 == "done", timeout=LONG, what="the barrier delivered")
        self.assertEqual(self.received(deal), 1)
        self.assertEqual(len(self.daemon.order_state("b24-deal-%d" % deal)["history"]), 1)
        self.assertTrue(self.log_has("b24.deal_unchanged order_id=b24-deal-%d" % deal))

    def test_a_wrong_or_missing_token_is_401_and_changes_nothing(self):
        deal = self.call_deal()  # its own event, with the right token, is delivered
        self.in_roistat(deal)
        wrong = new_token()
        harness.SECRETS.add(wrong)
        for token in (wrong, self.token[:-1], self.token + "x", ""):
            status, answer = self.deal_event(deal, token=token)
            self.assertEqual((status, answer["error"]), (401, "bad_token"), token)
            self.assertNotIn(self.token, str(answer))
        status, answer = self.event({"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": str(deal)})
        self.assertEqual((status, answer["error"]), (401, "bad_token"))
        # a barrier: an accepted event after them is handled after anything they queued
        self.assertEqual(self.deal_event(999999)[0], 200)
        self.wait_log("b24.deal_gone deal_id=999999 ")
        log = self.daemon.read_log()
        self.assertNotIn("b24.event event=ONCRMDEALUPDATE deal_id=%d" % deal, log)
        self.assertEqual(self.received(deal), 1)
        self.assertIn("b24.event_refused reason=bad_token why=wrong", log)
        self.assertIn("b24.event_refused reason=bad_token why=missing", log)
        for secret in (wrong, self.token):
            self.assertNotIn(secret, log)

    def test_a_bad_form_is_400_naming_the_field(self):
        for bad in ("abc", "", "0", "07", "1234567890123456789", "12 ", "-5"):
            status, answer = self.deal_event(bad)
            self.assertEqual((status, answer["field"]), (400, "data[FIELDS][ID]"), bad)
        status, answer = self.event({"event": "ONCRMDEALADD",
                                     "auth[application_token]": self.token})
        self.assertEqual((status, answer["field"]), (400, "data[FIELDS][ID]"))
        status, answer = self.event({"data[FIELDS][ID]": "5",
                                     "auth[application_token]": self.token})
        self.assertEqual((status, answer["field"]), (400, "event"))
        status, answer = self.event({"event": "X" * 65, "data[FIELDS][ID]": "5",
                                     "auth[application_token]": self.token})
        self.assertEqual((status, answer["field"]), (400, "event"))
        self.assertEqual(self.b24.state()["counts"]["by_method"].get("crm.deal.list", 0), 0)

    def test_other_events_are_answered_ignored(self):
        for event in ("ONCRMDEALDELETE", "ONCRMCONTACTADD"):
            status, answer = self.deal_event(5, event=event)
            self.assertEqual((status, answer), (200, {"ignored": True}))
        status, answer = self.deal_event(5)
        self.assertEqual((status, answer), (200, {"accepted": True, "deal_id": "5"}))
        self.wait_log("b24.deal_gone deal_id=5 ")

    def test_a_site_deal_goes_to_two_way_sync_not_to_roistat(self):
        deal = self.b24.control("deal", {"fields": {
            "TITLE": "Order 123", "OPPORTUNITY": "10", "ORIGINATOR_ID": "shop.example.ru",
            "ORIGIN_ID": "123"}})["id"]
        # no [site] status_url here: two-way sync is off, and says so
        self.wait_log("b24.deal_seen order_id=123 deal_id=%d stage=NEW verdict=off" % deal)
        self.assertIsNone(self.daemon.order_state("b24-deal-%d" % deal))

    def test_check_says_events_are_on_and_polling_off(self):
        out = self.daemon.cli("check", check=True).stdout
        self.assertIn("bitrix24: events on", out)
        self.assertIn("bitrix24: polling OFF", out)
        self.assertNotIn(self.token, out)


class NotConfigured(DaemonCase):
    """[bitrix24] without an application token."""
    bitrix24_args = {}
    sections = {"bitrix24": {"poll_interval": "0"}}

    def test_events_are_503_without_a_token_and_check_says_so(self):
        status, answer = http("POST", self.daemon.base + EVENTS,
                              b"event=ONCRMDEALADD&data%5BFIELDS%5D%5BID%5D=5",
                              {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, answer["error"]), (503, "not_configured"))
        self.assertIn("b24.event_refused reason=not_configured", self.daemon.read_log())
        self.assertIn("bitrix24: events OFF", self.daemon.cli("check", check=True).stdout)


class Poll(Inbound):
    """Events and a poll every second: what an event lost, the poll finds."""
    poll_interval = 1

    def test_a_lost_event_is_repaired_by_the_poll(self):
        self.b24.control("event-fault", {"lose": 1})
        deal = self.call_deal(OPPORTUNITY="777")
        order = self.in_roistat(deal)
        self.assertEqual((order["price"], order["roistat"]), ("777.00", "4521890"))
        self.assertEqual(self.b24.state()["events"]["lost"], 1)
        self.assertNotIn("b24.event event=ONCRMDEALADD deal_id=%d" % deal,
                         self.daemon.read_log())

    def test_a_change_in_the_watermarks_own_second_is_found(self):
        # the portal's clock stands still: A and B change in the same second T, after
        # orderbridge started (its first watermark is its start)
        self.b24.control("clock", {"now": int(time.time()) + 5})
        a = self.call_deal(TITLE="A")
        second = self.b24.deals()[str(a)]["DATE_MODIFY"]
        self.in_roistat(a)
        # a poll ran after A and moved the watermark to T, A's own second
        wait_for(lambda: self.watermark() == second, timeout=LONG, what="watermark at T")
        self.b24.control("event-fault", {"lose": 1})
        b = self.call_deal(TITLE="B", OPPORTUNITY="31")
        self.assertEqual(self.b24.deals()[str(b)]["DATE_MODIFY"], second)
        self.in_roistat(b, price="31.00")
        self.assertEqual(self.b24.state()["events"]["lost"], 1)
        self.assertEqual(self.watermark(), second)

    def test_more_deals_in_one_second_than_a_page_are_all_found(self):
        # 120 deals in one second, every event lost: crm.deal.list pages 50 rows, and a
        # page that is all one second cannot move a DATE_MODIFY cursor
        self.b24.control("clock", {"now": int(time.time()) + 5})
        self.b24.control("event-fault", {"lose": 1000})
        ids = [self.call_deal(TITLE="d%d" % i, OPPORTUNITY=str(i + 1)) for i in range(120)]
        second = self.b24.deals()[str(ids[0])]["DATE_MODIFY"]
        wait_for(lambda: all("b24-deal-%d" % i in self.roistat.orders() for i in ids),
                 timeout=LONG, what="all 120 deals in Roistat")
        self.assertEqual(self.roistat.orders()["b24-deal-%d" % ids[-1]]["price"], "120.00")
        wait_for(lambda: self.watermark() == second, timeout=LONG, what="watermark at T")
        self.assertEqual(self.b24.state()["events"]["sent"], 0)

    def test_the_watermark_never_passes_the_portals_own_clock(self):
        # the portal's clock steps back 10 s after deal A was written (NTP): A's
        # DATE_MODIFY is in the portal's future, and a change made "now" gets an earlier
        # one. The watermark may not jump to A's second, or that change is never read.
        t = int(time.time()) + 100
        self.b24.fault("error503", methods=["crm.deal.list"])  # no read while we set up
        self.b24.control("clock", {"now": t + 10})
        a = self.call_deal(TITLE="A")
        self.b24.control("clock", {"now": t})
        self.b24.fault("none")
        self.in_roistat(a)
        probe = self.call_deal(TITLE="probe")
        portal_now = self.b24.deals()[str(probe)]["DATE_MODIFY"]
        wait_for(lambda: self.watermark() == portal_now, timeout=LONG,
                 what="the watermark at the portal's clock, not at A's second")
        self.b24.control("clock", {"now": t + 5})
        self.b24.control("event-fault", {"lose": 1})
        b = self.call_deal(TITLE="B", OPPORTUNITY="55")
        self.in_roistat(b, price="55.00")
        self.assertEqual(self.b24.state()["events"]["lost"], 1)

    def test_a_change_while_orderbridge_was_down_is_found_after_the_restart(self):
        deal = self.call_deal()
        self.in_roistat(deal)
        self.daemon.stop()
        # the event finds nobody: the portal logs the failure and never resends it
        failed = self.b24.state()["events"]["failed"]
        self.b24.control("deal", {"id": deal, "fields": {"OPPORTUNITY": "4242"}})
        wait_for(lambda: self.b24.state()["events"]["failed"] > failed, timeout=LONG,
                 what="the event to fail")
        self.daemon.start()
        self.b24.control("event-target", {"url": self.daemon.base + EVENTS,
                                          "application_token": self.token})
        self.in_roistat(deal, price="4242.00")

    def test_check_says_polling_every_second(self):
        self.assertIn("bitrix24: polling every 1 s", self.daemon.cli("check", check=True).stdout)


class TwoWayBase(Inbound):
    """The site's status endpoint (site_standin.py) too: a manager who moves the deal of a
    site order moves the order, through the event or, when the event is lost, the poll."""
    poll_interval = 1

    def before_daemon(self):
        super().before_daemon()
        secret = make_secret()
        harness.SECRETS.update((secret, secret[len("whsec_"):]))
        path = os.path.join(self.wd.path, "site-status.secret")
        write_private(path, secret + "\n")
        self.site = SiteStandIn(secret)
        self.addCleanup(self.site.stop)
        self.sections["site"] = {"status_url": self.site.url, "status_secret_file": path}

    def site_order(self, order_id, **extra):
        """A site order with its deal in the portal; the deal."""
        self.site.add(order_id)
        # as the module does: a change made on the site comes back as the next snapshot
        self.site.on_change = lambda oid, o: self.daemon.post(order(
            oid, version=2, status=o["status"], canceled=o["canceled"],
            updated_at="2026-03-13T10:06:00+03:00", buyer=buyer("Ivan", "+7 999 111 22 33"),
            **extra))
        status, answer = self.daemon.post(order(order_id, buyer=buyer("Ivan", "+7 999 111 22 33"),
                                                **extra))
        self.assertEqual(status, 202, answer)
        return wait_for(lambda: self.b24.deal_for(order_id), timeout=LONG,
                        what="the deal of " + order_id)[0]

    def settled(self, order_id):
        def done(sink):
            d = self.daemon.delivery(order_id, sink=sink) or {}
            return d.get("state") == "done" and d["done_rev"] == d["want_rev"]
        wait_for(lambda: done("bitrix24") and done("site"), timeout=LONG,
                 what=order_id + " delivered to the portal and the site")



class TwoWayStorefront(TwoWayBase):
    """Issue #13: a storefront with its own pipeline ([bitrix24.site s2] category_id = 1)."""

    def before_daemon(self):
        super().before_daemon()
        self.sections["bitrix24.site s2"] = {"category_id": "1"}

    def test_a_manager_move_in_a_storefronts_own_pipeline_reaches_the_site(self):
        deal = self.site_order("601", lid="s2")
        self.assertEqual((deal["CATEGORY_ID"], deal["STAGE_ID"]), ("1", "C1:NEW"))
        self.settled("601")
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "C1:EXECUTING"}})
        wait_for(lambda: self.site.changes("601"), timeout=LONG, what="the site told")
        self.assertEqual(self.site.changes("601")[0]["status"], "A")
        self.wait_log("b24.deal_seen order_id=601 deal_id=%s stage=C1:EXECUTING "
                      "verdict=site_follows" % deal["ID"])
        # the site's snapshot with A comes back: in step in that pipeline, no echo
        wait_for(lambda: self.daemon.order_state("601")["snapshot"]["order"]["status"] == "A",
                 timeout=LONG, what="the site's snapshot with A")
        self.settled("601")
        self.assertEqual(len(self.site.changes("601")), 1)
        self.assertEqual(self.b24.deals()[str(deal["ID"])]["STAGE_ID"], "C1:EXECUTING")


class TwoWay(TwoWayBase):
    def test_a_stage_change_in_the_crm_reaches_the_site_once(self):
        deal = self.site_order("501")
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "EXECUTING"}})
        wait_for(lambda: self.site.changes("501"), timeout=LONG, what="the site told")
        self.assertEqual(self.site.changes("501")[0]["status"], "A")
        self.wait_log("b24.deal_seen order_id=501 deal_id=%s stage=EXECUTING "
                      "verdict=site_follows" % deal["ID"])
        self.assertEqual(self.site.orders["501"]["status"], "A")
        # the site's own next snapshot (status A) and every later read of the deal agree
        wait_for(lambda: self.daemon.order_state("501")["snapshot"]["order"]["status"] == "A",
                 timeout=LONG, what="the site's snapshot with A")
        self.settled("501")
        self.assertEqual(self.deal_event(deal["ID"])[0], 200)
        self.wait_log("b24.deal_seen order_id=501 deal_id=%s stage=EXECUTING verdict=in_step"
                      % deal["ID"])
        self.settled("501")
        self.assertEqual(len(self.site.changes("501")), 1)
        self.assertEqual(self.b24.deals()[str(deal["ID"])]["STAGE_ID"], "EXECUTING")

    def test_a_stage_change_whose_event_is_lost_reaches_the_site_by_the_poll(self):
        deal = self.site_order("502")
        self.settled("502")
        self.b24.control("event-fault", {"lose": 1})
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "LOSE"}})
        wait_for(lambda: self.site.changes("502"), timeout=LONG, what="the site told")
        self.assertEqual(self.site.changes("502")[0].get("canceled"), True)
        self.assertEqual(self.b24.state()["events"]["lost"], 1)

    def test_a_refusal_on_the_site_is_a_dead_letter_in_status(self):
        deal = self.site_order("503")
        self.settled("503")
        self.site.refuse["503"] = "The order has active payments"
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "LOSE"}})
        wait_for(lambda: (self.daemon.delivery("503", sink="site") or {}).get("state") == "dead",
                 timeout=LONG, what="the site delivery dead")
        self.assertFalse(self.site.orders["503"]["canceled"])
        r = self.daemon.cli("status", "503")
        self.assertIn("The order has active payments", r.stdout)
        self.assertIn("409", r.stdout)
        # the same move seen again (a redelivered event, every poll) is not asked again:
        # the refusal stays one dead letter until the manager moves the deal or `retry`
        self.assertEqual(self.deal_event(deal["ID"])[0], 200)
        self.wait_log("b24.deal_seen order_id=503 deal_id=%s stage=LOSE verdict=asked"
                      % deal["ID"])
        self.assertEqual(self.daemon.delivery("503", sink="site")["state"], "dead")
        self.assertEqual(len(self.site.changes("503")), 1)  # the one refused
        dead = self.daemon.order_state("503")["dead_letters"]
        self.assertEqual([d["sink"] for d in dead], ["site"], dead)

    def test_a_200_that_leaves_the_order_elsewhere_is_not_taken_as_done(self):
        deal = self.site_order("504")
        self.settled("504")
        self.site.silent.add("504")
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "WON"}})
        wait_for(lambda: (self.daemon.delivery("504", sink="site") or {}).get("state") == "dead",
                 timeout=LONG, what="the site delivery dead")
        self.assertIn("yet the order is at status N, not F",
                      self.daemon.delivery("504", sink="site")["last_error"])

    def test_a_later_change_on_the_site_puts_a_moved_deal_back(self):
        deal = self.site_order("511")
        self.settled("511")
        # the portal's clock an hour behind: the manager's move below is older than the
        # site's change, each by its own clock
        self.b24.control("clock", {"now": int(time.time()) - 3600})
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        status, answer = self.daemon.post(order("511", version=2, status="P", updated_at=now,
                                                buyer=buyer("Ivan", "+7 999 111 22 33")))
        self.assertEqual(status, 202, answer)
        wait_for(lambda: self.b24.deals()[str(deal["ID"])]["STAGE_ID"] == "PREPARATION",
                 timeout=LONG, what="the deal at the site's stage")
        self.settled("511")
        self.b24.control("deal", {"id": deal["ID"], "fields": {"STAGE_ID": "WON"}})
        self.wait_log("b24.deal_seen order_id=511 deal_id=%s stage=WON verdict=deal_back"
                      % deal["ID"])
        wait_for(lambda: self.b24.deals()[str(deal["ID"])]["STAGE_ID"] == "PREPARATION",
                 timeout=LONG, what="the deal put back")
        self.settled("511")
        self.assertEqual(self.site.changes("511"), [])
        self.assertEqual(self.site.orders["511"]["status"], "N")

    def test_a_deal_naming_an_order_the_store_does_not_know_is_logged_and_skipped(self):
        deal = self.b24.control("deal", {"fields": {
            "TITLE": "Order 999", "OPPORTUNITY": "10", "ORIGINATOR_ID": "shop.example.ru",
            "ORIGIN_ID": "999"}})["id"]
        self.wait_log("b24.deal_seen order_id=999 deal_id=%d stage=NEW verdict=unknown_order"
                      % deal)
        self.assertEqual(self.site.changes("999"), [])


if __name__ == "__main__":
    unittest.main()
