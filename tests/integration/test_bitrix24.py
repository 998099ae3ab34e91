"""Bitrix24 CRM end to end: the real daemon, the Bitrix24 portal emulator, signed HTTP.

Every test states what a shop owner would see in the portal (contacts, companies, deals,
stages, product rows: the emulator's /_emu/state) or in `orderbridge status`, and most
also check that the situation under test really happened (a fault was taken, a look-up
was made), so that a test cannot pass by not exercising what it names.
"""
import concurrent.futures
import contextlib
import os
import re
import time
import unittest

from harness import Bitrix24, Daemon, DaemonCase, buyer, item, order, rows_of, wait_for

SITE = "shop.example.ru"


def phones(record):
    return [p["VALUE"] for p in record.get("PHONE", [])]


def emails(record):
    return [e["VALUE"].lower() for e in record.get("EMAIL", [])]


class B24Case(DaemonCase):
    """One portal emulator and one daemon with only the Bitrix24 sink."""
    # the emulator's leaky bucket (a real portal's defaults)
    bitrix24_args = {"rate": 2, "burst": 50}

    # --- posting -------------------------------------------------------------------------

    def post(self, snapshot):
        status, answer = self.daemon.post(snapshot)
        self.assertEqual(status, 202, answer)

    def post_all(self, snapshots):
        """Posts concurrently, as a busy shop does."""
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(self.daemon.post, snapshots))
        self.assertEqual([s for s, _ in answers], [202] * len(snapshots), answers[:3])

    @contextlib.contextmanager
    def portal_held(self):
        """Holds the portal (a hanging request) while the block posts, so that what it
        posts reaches the sink together, in one pass, when the portal lets go."""
        before = self.b24.state()["counts"]["faulted"]
        self.b24.fault("hang")
        self.post(order("hold", buyer=buyer("Holder", "+7 999 000 00 00", "hold@example.ru")))
        try:
            wait_for(lambda: self.b24.state()["counts"]["faulted"] > before,
                     what="the portal holding a request")
            yield
        finally:
            self.b24.fault("none")

    # --- waiting and reading -------------------------------------------------------------

    def delivery(self, order_id):
        return self.daemon.delivery(order_id, sink="bitrix24") or {}

    def wait_done(self, *order_ids, timeout=20):
        def done():
            for oid in order_ids:
                d = self.delivery(oid)
                if d.get("state") != "done" or d["done_rev"] != d["want_rev"]:
                    return None
            return True
        wait_for(done, timeout=timeout, what=f"Bitrix24 delivery of {order_ids}")

    def wait_settled(self, done, timeout=30, dead=0):
        """Until `done` deliveries are done, `dead` dead and nothing else is left."""
        def settled():
            c = self.daemon.counts()["bitrix24"]
            return c if (c["done"], c["dead"], c["pending"] + c["inflight"] + c["retrying"]
                         + c["waiting"]) == (done, dead, 0) else None
        return wait_for(settled, timeout=timeout, what=f"{done} done, {dead} dead")

    def links(self, order_id):
        st = self.daemon.order_state(order_id)
        return {link["kind"]: link["remote_id"] for link in st["links"]}

    def deals_of(self, order_id, state=None):
        state = state or self.b24.state()
        return [d for d in state["deals"].values()
                if d["ORIGIN_ID"] == str(order_id) and d["ORIGINATOR_ID"] == SITE]

    def the_deal(self, order_id, state=None):
        found = self.deals_of(order_id, state)
        self.assertEqual(len(found), 1, f"order {order_id} must have exactly one deal, has "
                         f"{[d['ID'] for d in found]}")
        return found[0]

    def wait_stage(self, order_id, stage, timeout=15):
        def at_stage():
            found = self.deals_of(order_id)
            return found if len(found) == 1 and found[0]["STAGE_ID"] == stage else None
        wait_for(at_stage, timeout=timeout, what=f"order {order_id}'s deal at {stage}")
        return self.the_deal(order_id)

    def counts(self):
        return self.b24.state()["counts"]

    def by_method(self, method):
        return self.counts()["by_method"].get(method, 0)

    def contacts_with_phone(self, phone, state=None):
        state = state or self.b24.state()
        return [c for c in state["contacts"].values() if phone in phones(c)]


class NewCustomer(B24Case):
    def test_a_new_buyers_order_becomes_one_contact_and_one_deal_with_its_basket(self):
        self.post(order("1001", price="4990.00", roistat_visit="4521890",
                        buyer=buyer("Ivan Petrov", "8 (900) 123-45-67", "Ivan@Example.RU"),
                        items=[item("Kettle", "2495.00", "1", "55"),
                               item("Cup", "1247.50", "2", "56")]))
        self.wait_done("1001")
        state = self.b24.state()

        self.assertEqual(len(state["contacts"]), 1)
        contact = next(iter(state["contacts"].values()))
        self.assertEqual(contact["NAME"], "Ivan Petrov")
        self.assertEqual(phones(contact), ["+79001234567"], "the phone, normalised")
        self.assertEqual(emails(contact), ["ivan@example.ru"])

        deal = self.the_deal("1001", state)
        self.assertEqual(deal["TITLE"], "Order A-1001")
        self.assertEqual(deal["STAGE_ID"], "NEW")
        self.assertEqual(deal["CATEGORY_ID"], "0")
        self.assertEqual(deal["OPPORTUNITY"], "4990.00")
        self.assertEqual(deal["CURRENCY_ID"], "RUB")
        self.assertEqual(deal["CONTACT_ID"], contact["ID"])
        self.assertEqual(deal["COMPANY_ID"], "0", "an individual has no company")
        self.assertEqual(deal["ORIGINATOR_ID"], SITE)
        self.assertEqual(deal["ORIGIN_ID"], "1001")
        self.assertEqual(deal["UF_CRM_ROISTAT"], "4521890")
        self.assertEqual(rows_of(state, deal["ID"]),
                         [("Kettle", "2495.00", "1"), ("Cup", "1247.50", "2")])
        self.assertEqual(state["companies"], {})

        links = self.links("1001")
        self.assertEqual(links.get("b24.contact"), contact["ID"])
        self.assertEqual(links.get("b24.deal"), deal["ID"])
        self.assertNotIn("b24.company", links)
        self.assertIn("b24.deal_created order_id=1001 deal_id=" + deal["ID"],
                      self.daemon.read_log())

    def test_the_deal_carries_the_orders_own_currency_and_amount(self):
        self.post(order("1002", price="120.50", currency="USD",
                        items=[item("Mug", "120.50", "1")]))
        self.wait_done("1002")
        deal = self.the_deal("1002")
        self.assertEqual((deal["OPPORTUNITY"], deal["CURRENCY_ID"]), ("120.50", "USD"))

    def test_the_human_readable_status_shows_the_links(self):
        self.post(order("1003"))
        self.wait_done("1003")
        deal = self.the_deal("1003")
        text = self.daemon.cli("status", "1003", check=True).stdout
        self.assertIn(f"b24.deal={deal['ID']}", text)
        self.assertIn(f"b24.contact={deal['CONTACT_ID']}", text)


class RepeatCustomer(B24Case):
    def test_the_same_phone_written_differently_is_the_same_contact(self):
        self.post(order("2001", buyer=buyer("Anna", "+7 900 123 45 67", "anna@example.ru")))
        self.wait_done("2001")
        self.post(order("2002", buyer=buyer("Anna S.", "8 (900) 123-45-67",
                                            "anna.work@example.com")))
        self.wait_done("2002")
        state = self.b24.state()
        self.assertEqual(len(state["contacts"]), 1, state["contacts"])
        first, second = self.the_deal("2001", state), self.the_deal("2002", state)
        self.assertNotEqual(first["ID"], second["ID"], "a repeat order is a new deal")
        self.assertEqual(second["CONTACT_ID"], first["CONTACT_ID"])
        self.assertEqual(self.links("2002")["b24.contact"], first["CONTACT_ID"])

    def test_the_same_email_in_another_case_is_the_same_contact(self):
        self.post(order("2101", buyer=buyer("Olga", "+7 901 000 00 01", "Olga@Example.RU")))
        self.wait_done("2101")
        self.post(order("2102", buyer=buyer("Olga", "+7 902 000 00 02", " olga@example.ru ")))
        self.wait_done("2102")
        state = self.b24.state()
        self.assertEqual(len(state["contacts"]), 1, state["contacts"])
        self.assertEqual(self.the_deal("2102", state)["CONTACT_ID"],
                         self.the_deal("2101", state)["CONTACT_ID"])

    def test_contacts_a_manager_created_in_the_portal_are_found_not_created_again(self):
        def manager_contact(fields):
            return str(self.b24.control("contact", {"fields": fields})["id"])
        other = manager_contact({"NAME": "Someone else", "PHONE": [
            {"VALUE": "+7 900 555 00 00", "VALUE_TYPE": "WORK"}]})
        by_phone = manager_contact({"NAME": "Petr (from a call)", "PHONE": [
            {"VALUE": "8 (900) 777-66-55", "VALUE_TYPE": "MOBILE"}]})
        by_email = manager_contact({"NAME": "Maria (from a chat)", "EMAIL": [
            {"VALUE": "Maria@Example.RU", "VALUE_TYPE": "WORK"}]})

        self.post(order("2201", buyer=buyer("Petr", "+7 900 777 66 55", "petr@example.ru")))
        self.post(order("2202", buyer=buyer("Maria", "+7 903 111 22 33", "maria@example.ru")))
        self.wait_done("2201", "2202")
        state = self.b24.state()
        self.assertEqual(self.the_deal("2201", state)["CONTACT_ID"], by_phone)
        self.assertEqual(self.the_deal("2202", state)["CONTACT_ID"], by_email)
        self.assertEqual(sorted(state["contacts"]), sorted([other, by_phone, by_email]),
                         "no contact may be created for a buyer the portal already has")
        self.assertGreaterEqual(state["counts"]["by_method"].get("crm.duplicate.findbycomm", 0), 1)


class SameBuyerTogether(B24Case):
    def test_orders_of_one_new_buyer_delivered_together_share_one_contact(self):
        ways = ["+7 904 000 11 22", "8 (904) 000-11-22", "+79040001122"]
        with self.portal_held():
            for i, phone in enumerate(ways):
                self.post(order(f"300{i}", buyer=buyer("Pavel", phone, "pavel@example.ru")))
        self.wait_done("hold", "3000", "3001", "3002")
        state = self.b24.state()
        self.assertEqual(len(self.contacts_with_phone("+79040001122", state)), 1,
                         state["contacts"])
        self.assertEqual(len({self.the_deal(f"300{i}", state)["CONTACT_ID"]
                              for i in range(3)}), 1)
        self.assertEqual(state["counts"]["by_method"]["crm.contact.add"], 2,
                         "one contact for the holder, one for Pavel")


class RepeatCustomerInUkraine(B24Case):
    """A shop in Ukraine ([bitrix24] country_code = 380): its buyers write their phones
    with Ukraine's trunk 0 ("044 …") as often as with +380, and each phone is one key."""
    sections = {"bitrix24": {"country_code": "380"}}

    def test_a_phone_written_nationally_and_internationally_is_one_contact(self):
        self.post(order("2301", buyer=buyer("Oksana", "+380 44 123 45 67", "oksana@example.ua")))
        self.wait_done("2301")
        self.post(order("2302", buyer=buyer("Oksana K.", "044 123-45-67",
                                            "oksana.work@example.com")))
        self.wait_done("2302")
        state = self.b24.state()
        self.assertEqual(len(state["contacts"]), 1, state["contacts"])
        contact = next(iter(state["contacts"].values()))
        self.assertEqual(phones(contact), ["+380441234567"], "the phone, as E.164")
        first, second = self.the_deal("2301", state), self.the_deal("2302", state)
        self.assertNotEqual(first["ID"], second["ID"], "a repeat order is a new deal")
        self.assertEqual((first["CONTACT_ID"], second["CONTACT_ID"]),
                         (contact["ID"], contact["ID"]))
        self.assertEqual(self.links("2302")["b24.contact"], contact["ID"])
        # the second order was matched, not merely created after a failed look-up
        self.assertEqual(state["counts"]["by_method"]["crm.contact.add"], 1)

    def test_orders_delivered_together_with_every_spelling_share_one_contact(self):
        ways = ["+380 44 765 43 21", "044 765 43 21", "0 44 765-43-21", "380447654321",
                "00380447654321"]
        with self.portal_held():
            for i, phone in enumerate(ways):
                # no e-mail: the phone alone must match
                self.post(order(f"240{i}", buyer=buyer("Taras", phone)))
        self.wait_done("hold", *[f"240{i}" for i in range(len(ways))])
        state = self.b24.state()
        self.assertEqual(len(self.contacts_with_phone("+380447654321", state)), 1,
                         state["contacts"])
        self.assertEqual(len({self.the_deal(f"240{i}", state)["CONTACT_ID"]
                              for i in range(len(ways))}), 1)
        self.assertEqual(state["counts"]["by_method"]["crm.contact.add"], 2,
                         "one contact for the holder, one for Taras")


class LegalEntity(B24Case):
    ROMASHKA = buyer("Sergey Ivanov", "+7 495 123 45 67", "buh@romashka.ru",
                     company="ООО «Ромашка»", inn="7701234567")
    SIDOROV = buyer("Ivan Sidorov", "+7 495 765 43 21", "ip@sidorov.ru",
                    company="ИП Сидоров", inn="772012345678")

    def test_a_legal_buyer_gets_a_company_linked_to_the_deal_and_the_contact(self):
        self.post(order("4001", buyer=self.ROMASHKA))
        self.wait_done("4001")
        state = self.b24.state()
        self.assertEqual([c["TITLE"] for c in state["companies"].values()], ["ООО «Ромашка»"])
        company = next(iter(state["companies"].values()))
        deal = self.the_deal("4001", state)
        contact = state["contacts"][deal["CONTACT_ID"]]
        self.assertEqual(deal["COMPANY_ID"], company["ID"])
        self.assertEqual(contact["COMPANY_ID"], company["ID"])
        self.assertEqual(contact["NAME"], "Sergey Ivanov")
        self.assertIn("7701234567", company["COMMENTS"] or "", "the INN is kept")
        links = self.links("4001")
        self.assertEqual((links["b24.company"], links["b24.contact"], links["b24.deal"]),
                         (company["ID"], contact["ID"], deal["ID"]))

    def test_a_repeat_legal_buyer_reuses_its_company(self):
        self.post(order("4101", buyer=self.ROMASHKA))
        self.wait_done("4101")
        self.post(order("4102", buyer=self.ROMASHKA))
        self.wait_done("4102")
        state = self.b24.state()
        self.assertEqual(len(state["companies"]), 1)
        self.assertEqual(self.the_deal("4102", state)["COMPANY_ID"],
                         self.the_deal("4101", state)["COMPANY_ID"])

    def test_each_legal_buyer_gets_its_own_company(self):
        self.post(order("4201", buyer=self.ROMASHKA))
        self.wait_done("4201")
        self.post(order("4202", buyer=self.SIDOROV))
        self.wait_done("4202")
        state = self.b24.state()
        titles = {c["ID"]: c["TITLE"] for c in state["companies"].values()}
        self.assertEqual(sorted(titles.values()), ["ИП Сидоров", "ООО «Ромашка»"],
                         "a second legal buyer must not be filed under the first's company")
        self.assertEqual(titles[self.the_deal("4202", state)["COMPANY_ID"]], "ИП Сидоров")
        self.assertEqual(titles[self.the_deal("4201", state)["COMPANY_ID"]], "ООО «Ромашка»")

    def test_a_company_already_in_the_portal_is_found_by_its_title(self):
        other = str(self.b24.control("company", {"fields": {"TITLE": "ЗАО Другая"}})["id"])
        mine = str(self.b24.control("company", {"fields": {"TITLE": "ООО «Ромашка»"}})["id"])
        self.post(order("4301", buyer=self.ROMASHKA))
        self.wait_done("4301")
        state = self.b24.state()
        self.assertEqual(self.the_deal("4301", state)["COMPANY_ID"], mine)
        self.assertEqual(sorted(state["companies"]), sorted([other, mine]))
        self.assertGreaterEqual(state["counts"]["by_method"].get("crm.company.list", 0), 1)

    def test_orders_of_one_new_company_delivered_together_share_one_company(self):
        with self.portal_held():
            for i in range(3):
                self.post(order(f"440{i}", buyer=buyer(f"Employee {i}", f"+7 495 000 00 0{i}",
                                                       f"e{i}@romashka.ru",
                                                       company="ООО «Ромашка»")))
        self.wait_done("hold", "4400", "4401", "4402")
        state = self.b24.state()
        romashka = [c for c in state["companies"].values() if c["TITLE"] == "ООО «Ромашка»"]
        self.assertEqual(len(romashka), 1, "three orders of one new company: one company")
        self.assertEqual({self.the_deal(f"440{i}", state)["COMPANY_ID"] for i in range(3)},
                         {romashka[0]["ID"]})


class Stages(B24Case):
    def test_the_status_walk_moves_the_one_deal_through_the_pipeline(self):
        walk = [("N", "NEW"), ("P", "PREPARATION"), ("A", "EXECUTING"),
                ("D", "FINAL_INVOICE"), ("F", "WON")]
        deal_ids = set()
        for version, (status, stage) in enumerate(walk, start=1):
            self.post(order("5001", version=version, status=status))
            deal_ids.add(self.wait_stage("5001", stage)["ID"])
        self.assertEqual(len(deal_ids), 1)
        self.assertEqual(self.the_deal("5001")["STAGE_SEMANTIC_ID"], "S")

    def test_cancel_loses_the_deal_and_uncancel_brings_it_back(self):
        self.post(order("5101", version=1, status="P"))
        first = self.wait_stage("5101", "PREPARATION")
        self.post(order("5101", version=2, status="P", canceled=True))
        self.assertEqual(self.wait_stage("5101", "LOSE")["ID"], first["ID"])
        self.post(order("5101", version=3, status="P", canceled=False))
        self.assertEqual(self.wait_stage("5101", "PREPARATION")["ID"], first["ID"])
        self.assertEqual(self.by_method("crm.deal.add"), 1)

    def test_the_paid_flag_and_status_c_map_as_designed(self):
        # no default @paid: a paid order's deal follows its status code (issue #9, item 8)
        self.post(order("5201", version=1, status="N", paid=True))
        self.wait_stage("5201", "NEW")
        self.post(order("5202", version=1, status="C"))
        self.wait_stage("5202", "LOSE")
        self.post(order("5203", version=1, status="F", paid=True, canceled=True))
        self.wait_stage("5203", "LOSE")

    def test_an_older_snapshot_does_not_move_the_deal_back(self):
        self.post(order("5301", version=3, status="D"))
        self.wait_stage("5301", "FINAL_INVOICE")
        status, answer = self.daemon.post(order("5301", version=2, status="N"))
        self.assertEqual((status, answer.get("stale")), (200, True))
        time.sleep(0.5)
        self.assertEqual(self.the_deal("5301")["STAGE_ID"], "FINAL_INVOICE")


class Basket(B24Case):
    def test_a_changed_basket_replaces_the_product_rows_with_the_full_basket(self):
        self.post(order("6001", version=1, price="4990.00",
                        items=[item("Kettle", "2495.00", "2")]))
        self.wait_done("6001")
        deal = self.the_deal("6001")
        self.post(order("6001", version=2, price="3745.00",
                        items=[item("Kettle", "2495.00", "1"), item("Cup", "250.00", "3"),
                               item("Toaster", "500.00", "1")]))
        self.wait_done("6001")
        state = self.b24.state()
        self.assertEqual(rows_of(state, deal["ID"]),
                         [("Kettle", "2495.00", "1"), ("Cup", "250.00", "3"),
                          ("Toaster", "500.00", "1")], "replaced, not appended")
        self.assertEqual(self.the_deal("6001", state)["OPPORTUNITY"], "3745.00")
        self.assertEqual(state["counts"]["by_method"]["crm.deal.productrows.set"], 2)

    def test_a_status_only_change_does_not_send_the_rows_again(self):
        self.post(order("6101", version=1))
        self.wait_done("6101")
        self.assertEqual(self.by_method("crm.deal.productrows.set"), 1)
        self.post(order("6101", version=2, status="P"))
        self.wait_stage("6101", "PREPARATION")
        self.wait_done("6101")
        self.post(order("6101", version=3, status="A", paid=True))
        self.wait_stage("6101", "EXECUTING")
        self.wait_done("6101")
        self.assertEqual(self.by_method("crm.deal.update"), 2)
        self.assertEqual(self.by_method("crm.deal.productrows.set"), 1,
                         "the basket did not change, so the rows are not sent again")


class SecondPipeline(B24Case):
    sections = {"bitrix24": {"category_id": "1"}}

    def test_deals_go_to_the_configured_pipeline_and_move_within_it(self):
        self.post(order("7001", version=1))
        deal = self.wait_stage("7001", "C1:NEW")
        self.assertEqual(deal["CATEGORY_ID"], "1")
        self.post(order("7001", version=2, status="P"))
        self.wait_stage("7001", "C1:PREPARATION")
        self.post(order("7001", version=3, status="F"))
        self.assertEqual(self.wait_stage("7001", "C1:WON")["CATEGORY_ID"], "1")

    def test_stages_lists_every_pipeline_and_marks_the_configured_one(self):
        r = self.daemon.cli("stages", check=True)
        self.assertIn('pipeline 1 "Wholesale" (configured)', r.stdout)
        self.assertRegex(r.stdout, r'pipeline 0 "General"\n')
        for stage in ("NEW", "PREPAYMENT_INVOICE", "WON", "LOSE", "APOLOGY", "C1:NEW",
                      "C1:EXECUTING", "C1:WON", "C1:LOSE"):
            self.assertRegex(r.stdout, r"(?m)^  " + re.escape(stage) + r" ")
        pipeline_1 = r.stdout.split('pipeline 1 "Wholesale"')[1].split("pipeline 0")[0]
        self.assertNotIn("PREPAYMENT_INVOICE", pipeline_1, "stages are listed per pipeline")

    def check(self, name, **sections):
        """`orderbridge check` for a configuration of this portal with `sections`."""
        path = os.path.join(self.wd.path, name)
        os.mkdir(path)
        return Daemon(path, sections=sections, bitrix24=self.b24).cli("check")

    def test_check_refuses_a_mapped_stage_the_pipeline_lacks(self):
        r = self.check("bad", bitrix24={"category_id": "1"},
                       **{"bitrix24.map": {"A": "PREPAYMENT_INVOICE"}})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("[bitrix24.map] A = PREPAYMENT_INVOICE: pipeline 1 has no stage "
                      "C1:PREPAYMENT_INVOICE", r.stderr)
        # the same mapping is fine for the default pipeline, which has that stage
        r = self.check("pipeline0", **{"bitrix24.map": {"A": "PREPAYMENT_INVOICE"}})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.check("nosuch", bitrix24={"category_id": "7"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("category_id = 7: the portal has no such deal pipeline", r.stderr)

    def test_check_passes_for_the_default_mapping(self):
        r = self.daemon.cli("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("bitrix24: every mapped stage exists in the portal", r.stdout)


class LostAnswer(B24Case):
    """The portal ran the create, but its answer never arrived (a proxy dropped the
    connection). The next attempt must find the deal by ORIGINATOR_ID + ORIGIN_ID."""
    KNOWN = buyer("Lena", "+7 905 000 00 05", "lena@example.ru")

    def lose_the_answer_to_a_create(self, restart):
        self.post(order("8001", buyer=self.KNOWN))
        self.wait_done("8001")
        if restart:
            self.daemon.stop()  # a fresh process: its next request opens a new connection
            self.daemon.start()
        # the buyer is known now, so the next order's first request is the create itself
        self.b24.fault("lost", count=1, methods=["batch"])
        self.post(order("8002", buyer=self.KNOWN))
        self.wait_done("8002")
        state = self.b24.state()
        self.assertEqual(state["counts"]["faulted"], 1, "the create's answer was lost")
        deal = self.the_deal("8002", state)
        self.assertEqual(state["counts"]["by_method"]["crm.deal.add"], 2,
                         "one create per order: the one whose answer was lost is not repeated")
        self.assertEqual(self.links("8002")["b24.deal"], deal["ID"])
        self.assertEqual(rows_of(state, deal["ID"]), [("Kettle", "2495.00", "2")])
        self.assertIn(f"b24.deal_found order_id=8002 deal_id={deal['ID']}",
                      self.daemon.read_log())
        self.assertEqual(len(state["contacts"]), 1)

    def test_a_create_whose_answer_was_lost_is_found_and_not_made_again(self):
        self.lose_the_answer_to_a_create(restart=True)

    def test_a_lost_answer_on_a_kept_alive_connection_is_not_sent_again_unseen(self):
        # libcurl re-sends a request on its own when a REUSED connection closes before any
        # byte of the answer: for a create that already ran, that is a second deal
        self.lose_the_answer_to_a_create(restart=False)


class QueryLimitStorm(B24Case):
    def test_query_limit_exceeded_answers_delay_but_lose_and_duplicate_nothing(self):
        self.b24.fault("query_limit", count=5)
        self.post_all([order(f"q{i}", buyer=buyer(f"B{i % 7}", f"+7 906 000 00 {i % 7:02d}"))
                       for i in range(20)])
        self.wait_settled(20, timeout=40)
        state = self.b24.state()
        self.assertEqual(state["counts"]["faulted"], 5)
        for i in range(20):
            self.the_deal(f"q{i}", state)
        self.assertEqual(len(state["contacts"]), 7, "one contact per distinct buyer")
        self.assertIn("QUERY_LIMIT_EXCEEDED", self.daemon.read_log())


class TinyPortalBurst(B24Case):
    bitrix24_args = {"rate": 2, "burst": 3}  # a far smaller burst than configured (50)

    def test_a_portal_stricter_than_configured_still_gets_every_order_once(self):
        self.post_all([order(f"t{i}", buyer=buyer(f"T{i % 40}", f"+7 907 000 00 {i % 40:02d}",
                                                  f"t{i % 40}@example.ru"))
                       for i in range(60)])
        self.wait_settled(60, timeout=90)
        state = self.b24.state()
        self.assertGreater(state["counts"]["query_limit_exceeded"], 0,
                           "the portal's own limit must have been hit for this test to mean "
                           "anything")
        for i in range(60):
            self.the_deal(f"t{i}", state)
        self.assertEqual(len(state["deals"]), 60)
        self.assertEqual(len(state["contacts"]), 40)


class ClientSideBucket(B24Case):
    bitrix24_args = {"rate": 10, "burst": 5}
    sections = {"bitrix24": {"rate": "10", "burst": "5", "orders_per_batch": "1"}}

    def test_the_daemon_keeps_to_the_portals_limit_by_itself(self):
        self.post_all([order(f"c{i}", buyer=buyer(f"C{i}", f"+7 908 000 00 {i:02d}"))
                       for i in range(30)])
        self.wait_settled(30, timeout=60)
        counts = self.counts()
        self.assertGreaterEqual(counts["http_requests"], 30,
                                "one order per call: many times the burst")
        self.assertEqual(counts["query_limit_exceeded"], 0)


class RequestBudget(B24Case):
    """The issue's headline figure: HTTP requests per 100 orders, against 400 for one call
    per step (find contact, add contact, add deal, set rows)."""

    def test_a_hundred_orders_cost_a_few_requests_and_never_hit_the_limit(self):
        buyers = ([buyer(f"New {i}", f"+7 910 {i:03d} 00 00", f"new{i}@example.ru")
                   for i in range(60)] +
                  [buyer("Repeat", "+7 911 000 00 00", "repeat@example.ru")] * 20 +
                  [buyer(f"Legal {i}", f"+7 912 {i:03d} 00 00", f"legal{i}@example.ru",
                         company=f"ООО Компания {i}") for i in range(20)])
        orders = [order(f"r{i}", buyer=b) for i, b in enumerate(buyers)]
        self.post_all(orders)
        self.wait_settled(100, timeout=60)
        after_new = self.counts()
        for i in range(100):
            self.assertEqual(self.the_deal(f"r{i}")["STAGE_ID"], "NEW")

        self.post_all([order(f"r{i}", version=2, status="P", buyer=b)
                       for i, b in enumerate(buyers)])
        self.wait_settled(100, timeout=60)
        state = self.b24.state()
        after_status = state["counts"]
        self.assertEqual({d["STAGE_ID"] for d in state["deals"].values()}, {"PREPARATION"})
        self.assertEqual(len(state["deals"]), 100)

        new_requests = after_new["http_requests"]
        status_requests = after_status["http_requests"] - new_requests
        figures = (f"{new_requests} requests ({after_new['commands']} commands) per 100 new "
                   f"orders, {status_requests} per 100 status changes")
        self.assertLessEqual(new_requests, 20, figures)
        self.assertLessEqual(status_requests, 20, figures)
        self.assertEqual(after_status["query_limit_exceeded"], 0, figures)


class PortalDown(B24Case):
    sections = {"bitrix24": {"timeout_ms": "1000"}}

    def outage(self, mode, prefix):
        self.b24.fault(mode)
        ids = [f"{prefix}{i}" for i in range(4)]
        for oid in ids:
            self.post(order(oid, buyer=buyer(oid, None, f"{oid}@example.ru")))
        # each order failed twice and is owed still; between passes it waits ("retrying"),
        # during one it is "inflight": the orders need not all wait at the same moment
        def failing_twice(oid):
            d = self.delivery(oid)
            return d.get("state") in ("retrying", "inflight") and d.get("attempts", 0) >= 2
        wait_for(lambda: all(failing_twice(oid) for oid in ids),
                 timeout=45, what="every order failed twice")
        self.assertEqual(self.b24.state()["deals"], {}, "nothing reaches a portal that is down")
        self.b24.fault("none")
        self.wait_done(*ids, timeout=45)
        state = self.b24.state()
        for oid in ids:
            self.the_deal(oid, state)
        self.assertEqual(len(state["contacts"]), 4)

    def test_a_portal_answering_503_for_a_while(self):
        self.outage("error503", "d")

    def test_a_portal_that_hangs_is_given_up_on_and_tried_again(self):
        self.outage("hang", "h")

    def test_a_portal_that_resets_connections(self):
        self.outage("reset", "x")


class ExpiredWebhook(B24Case):
    def test_a_refused_webhook_pauses_the_sink_and_loses_nothing(self):
        self.b24.fault("expired_token")
        ids = [f"e{i}" for i in range(3)]
        for oid in ids:
            self.post(order(oid, buyer=buyer(oid, f"+7 913 000 00 0{oid[1]}")))
        wait_for(lambda: "b24.auth_refused" in self.daemon.read_log(), what="b24.auth_refused")
        log = self.daemon.read_log()
        self.assertRegex(log, r"error b24\.auth_refused code=expired_token ")
        pause = re.search(r"dispatch\.pause sink=bitrix24 \S+ pause_ms=(\d+)", log)
        self.assertGreaterEqual(int(pause.group(1)), 60000, "an auth failure pauses for long")
        requests = self.counts()["http_requests"]
        time.sleep(3)  # backoff_max_ms is 1 s here: a sink that kept trying would show it
        self.assertEqual(self.counts()["http_requests"], requests, "no hammering")
        self.assertEqual(self.b24.state()["deals"], {})
        for oid in ids:
            self.assertIn(self.delivery(oid)["state"], ("pending", "retrying"))

        # the operator fixes the webhook and restarts; the orders are all still there
        self.b24.fault("none")
        self.daemon.stop()
        self.daemon.start()
        self.assertEqual(self.daemon.cli("retry", "--sink", "bitrix24").returncode, 0)
        self.wait_done(*ids)
        state = self.b24.state()
        for oid in ids:
            self.the_deal(oid, state)


class RefusedCommand(B24Case):
    sections = {"bitrix24.map": {"X": "NOSUCH"}}

    def test_a_command_the_portal_refuses_fails_only_its_own_order(self):
        with self.portal_held():
            self.post(order("g1", buyer=buyer("G1", "+7 914 000 00 01")))
            self.post(order("bad", status="X", buyer=buyer("Bad", "+7 914 000 00 02")))
            self.post(order("g2", buyer=buyer("G2", "+7 914 000 00 03")))
        self.wait_done("hold", "g1", "g2")
        wait_for(lambda: self.delivery("bad").get("state") == "dead", what="a dead letter")
        state = self.b24.state()
        self.the_deal("g1", state)
        self.the_deal("g2", state)
        self.assertEqual(self.deals_of("bad", state), [])
        reason = self.daemon.order_state("bad")["dead_letters"][0]["reason"]
        self.assertIn('Invalid value for the "Stage" field', reason,
                      "the portal's own message")
        for oid in ("g1", "g2"):
            self.assertEqual(self.delivery(oid)["attempts"], 0,
                             "the refused order did not make the others go again")
        # a corrected snapshot of the refused order gets its one deal after all
        self.post(order("bad", version=2, status="N", buyer=buyer("Bad", "+7 914 000 00 02")))
        self.wait_done("bad")
        self.assertEqual(self.the_deal("bad")["STAGE_ID"], "NEW")


if __name__ == "__main__":
    unittest.main()
