"""Issue #13 end to end: the richer snapshot (discounts, coupons, delivery, payments, UTM,
order properties, the storefront) through the real daemon to both emulators, with the
mapping rules an operator writes in the INI file; `check` against the portal's
crm.deal.fields; `--keys`; and the contract refusing a field it does not know.

Each test reads what a shop owner would see: the deal, its rows and fields in the
Bitrix24 emulator's state, the order and its custom fields in the Roistat emulator's.
"""
import os
import subprocess
import unittest
from decimal import Decimal

from harness import BIN, Daemon, DaemonCase, buyer, item, order, wait_for

SITE = "shop.example.ru"


def rich_order(order_id, lid, person_type, **extra):
    """Two kettles discounted from 2745.00 to 2495.00, a cup at full price, delivery 300.00
    (350.00 before its discount): 2 × 2495.00 + 10.50 + 300.00 = 5300.50."""
    o = order(order_id, price="5300.50",
              buyer=buyer("Ivan Petrov", "+7 900 123-45-67", f"ivan{order_id}@example.ru"),
              items=[dict(item("Kettle", "2495.00", "2", "55"), base_price="2745.00"),
                     item("Cup", "10.50", "1", "56")],
              lid=lid, person_type=person_type, comment="Call before 18:00",
              delivery={"name": "Courier", "price": "300.00", "base_price": "350.00"},
              discount="550.00", coupons=["SALE10", "VIP"],
              payments=[{"name": "Card", "sum": "5000.00", "paid": True},
                        {"name": "Cash", "sum": "300.50", "paid": False}],
              sum_paid="5000.00",
              utm={"source": "google", "medium": "cpc", "campaign": "spring"},
              properties={"ADDRESS": "Moscow, Lenina 1", "MANAGER": "Olga"})
    o["order"].update(extra)
    return o


SECTIONS = {
    "bitrix24": {"assigned_by_id": "1", "source_id": "STORE", "delivery_row_name": "Доставка"},
    "bitrix24.fields": {"UF_CRM_DELIVERY_ADDR": "{property:ADDRESS}",
                        "SOURCE_DESCRIPTION": "Сайт {lid}, купоны: {coupons}"},
    "bitrix24.site s2": {"category_id": "1", "assigned_by_id": "7"},
    "bitrix24.person_type 5": {"category_id": "1", "assigned_by_id": "9"},
    "roistat": {"name_template": "Заказ №{account_number} ({lid})"},
    "roistat.fields": {"Менеджер": "{property:MANAGER}", "Канал": "Сайт"},
    "roistat.site s2": {"name_template": "Опт №{account_number}"},
}


class MappingCase(DaemonCase):
    roistat_args = {"rate": 10}
    bitrix24_args = {"rate": 50, "burst": 100}
    sections = SECTIONS

    def before_daemon(self):
        self.b24.config(user_fields={"deal": ["UF_CRM_ROISTAT", "UF_CRM_DELIVERY_ADDR"]})

    def post(self, snapshot):
        status, answer = self.daemon.post(snapshot)
        self.assertEqual(status, 202, answer)

    def deal_of(self, order_id, **want):
        def found():
            deals = [d for d in self.b24.deals().values()
                     if d["ORIGIN_ID"] == order_id and d["ORIGINATOR_ID"] == SITE]
            if len(deals) == 1 and all(deals[0].get(k) == v for k, v in want.items()):
                return deals[0]
            return None
        return wait_for(found, timeout=20, what=f"the deal of {order_id} with {want}")

    def rows_of(self, deal_id):
        def rows():
            return self.b24.state()["productrows"].get(str(deal_id)) or None
        return wait_for(rows, timeout=20, what=f"the rows of deal {deal_id}")

    def roistat_order(self, order_id, **want):
        def match():
            o = self.roistat.orders().get(order_id)
            return o if o and all(o.get(k) == v for k, v in want.items()) else None
        return wait_for(match, timeout=20, what=f"Roistat order {order_id} with {want}")


class RichOrder(MappingCase):
    def test_an_order_with_every_new_field_reaches_bitrix24_with_rules_rows_and_fields(self):
        self.post(rich_order("m1", "s2", "1"))
        deal = self.deal_of("m1", CATEGORY_ID="1")
        # the storefront's rules: pipeline 1 (stage with its prefix), its responsible user
        self.assertEqual((deal["STAGE_ID"], deal["ASSIGNED_BY_ID"]), ("C1:NEW", "7"))
        self.assertEqual(deal["SOURCE_ID"], "STORE")
        self.assertEqual((deal["UTM_SOURCE"], deal["UTM_MEDIUM"], deal["UTM_CAMPAIGN"]),
                         ("google", "cpc", "spring"))
        self.assertEqual(deal["UF_CRM_DELIVERY_ADDR"], "Moscow, Lenina 1")
        self.assertEqual(deal["SOURCE_DESCRIPTION"], "Сайт s2, купоны: SALE10, VIP")
        self.assertEqual(deal["COMMENTS"], "Call before 18:00")
        self.assertEqual(deal["OPPORTUNITY"], "5300.50")

        rows = self.rows_of(deal["ID"])
        self.assertEqual([r["PRODUCT_NAME"] for r in rows], ["Kettle", "Cup", "Доставка"])
        kettle, cup, delivery = rows
        self.assertEqual((kettle["PRICE"], kettle["DISCOUNT_TYPE_ID"], kettle["DISCOUNT_SUM"],
                          kettle["PRICE_NETTO"]), (2495, 1, 250, 2745))
        self.assertEqual((delivery["PRICE"], delivery["QUANTITY"], delivery["DISCOUNT_SUM"]),
                         (300, 1, 50))
        self.assertEqual(cup["DISCOUNT_SUM"], 0)
        total = sum(Decimal(str(r["PRICE"])) * Decimal(str(r["QUANTITY"])) for r in rows)
        self.assertEqual(total, Decimal(deal["OPPORTUNITY"]), "the rows add up to the deal")

    def test_the_pipeline_and_responsible_follow_the_person_type_and_default_otherwise(self):
        self.post(rich_order("m2", "s1", "5"))
        self.post(rich_order("m3", "s1", "1"))
        by_type = self.deal_of("m2", CATEGORY_ID="1")
        self.assertEqual((by_type["STAGE_ID"], by_type["ASSIGNED_BY_ID"]), ("C1:NEW", "9"))
        plain = self.deal_of("m3", CATEGORY_ID="0")
        self.assertEqual((plain["STAGE_ID"], plain["ASSIGNED_BY_ID"]), ("NEW", "1"))

    def test_roistat_gets_the_templated_name_and_the_orders_fields(self):
        self.post(rich_order("m4", "s1", "1"))
        self.post(rich_order("m5", "s2", "1"))
        o = self.roistat_order("m4")
        self.assertEqual(o["name"], "Заказ №A-m4 (s1)")
        f = o["fields"]
        self.assertEqual((f["site"], f["DELIVERY_NAME"], f["PAY_SYSTEM_NAME"], f["coupons"],
                          f["sum_paid"], f["comment"], f["utm_source"], f["utm_medium"],
                          f["utm_campaign"], f["Менеджер"], f["Канал"]),
                         ("s1", "Courier", "Card, Cash", "SALE10, VIP", "5000.00",
                          "Call before 18:00", "google", "cpc", "spring", "Olga", "Сайт"))
        self.assertEqual(self.roistat_order("m5")["name"], "Опт №A-m5", "the storefront's name")

    def test_a_changed_order_updates_the_mapped_fields_of_its_existing_deal(self):
        self.post(rich_order("m6", "s1", "1"))
        deal = self.deal_of("m6", UF_CRM_DELIVERY_ADDR="Moscow, Lenina 1")
        changed = rich_order("m6", "s1", "1", version=2,
                             properties={"ADDRESS": "Kazan, Baumana 5"},
                             utm={"source": "yandex"}, comment="Leave at the door")
        self.post(changed)
        deal = self.deal_of("m6", UF_CRM_DELIVERY_ADDR="Kazan, Baumana 5")
        self.assertEqual((deal["UTM_SOURCE"], deal["COMMENTS"]), ("yandex", "Leave at the door"))
        self.assertEqual(len([d for d in self.b24.deals().values() if d["ORIGIN_ID"] == "m6"]), 1)


class UnknownField(MappingCase):
    def test_an_unknown_field_is_refused_with_400_naming_its_path(self):
        snap = rich_order("u1", "s1", "1")
        snap["order"]["delivery"]["nmae"] = "Courier"
        status, answer = self.daemon.post(snap)
        self.assertEqual(status, 400, answer)
        self.assertEqual((answer["error"], answer["field"]), ("invalid_field",
                                                              "order.delivery.nmae"))
        self.assertIn("is not a field of the snapshot contract", answer["message"])
        # every level: (where in the snapshot, the unknown key, the path named)
        cases = ((lambda o: o, "extra", "extra"),
                 (lambda o: o["order"], "delivery_service", "order.delivery_service"),
                 (lambda o: o["order"]["buyer"], "middle_name", "order.buyer.middle_name"),
                 (lambda o: o["order"]["items"][1], "discount", "order.items[1].discount"),
                 (lambda o: o["order"]["utm"], "sorce", "order.utm.sorce"),
                 (lambda o: o["order"]["payments"][0], "when", "order.payments[0].when"))
        for where, key, path in cases:
            with self.subTest(path=path):
                snap = rich_order("u1", "s1", "1")
                where(snap)[key] = "x"
                status, answer = self.daemon.post(snap)
                self.assertEqual((status, answer.get("field")), (400, path), answer)
        # nothing was stored: the same order, correct, is new
        status, answer = self.daemon.post(rich_order("u1", "s1", "1"))
        self.assertEqual((status, answer.get("accepted")), (202, True), answer)


class Check(MappingCase):
    start_daemon = False

    def check(self, name, **sections):
        path = os.path.join(self.wd.path, name)
        os.mkdir(path)
        return Daemon(path, sections=sections, bitrix24=self.b24).cli("check")

    def test_check_refuses_a_mapped_field_the_portal_lacks_naming_the_key_and_line(self):
        self.b24.config(user_fields={"deal": ["UF_CRM_DELIVERY_ADDR", "UF_CRM_COUNT"]},
                        deal_uf_types={"UF_CRM_COUNT": {"type": "integer"}})
        r = self.check("bad", **{"bitrix24.fields": {"UF_CRM_DELIVERY_ADDR": "{property:A}",
                                                     "UF_CRM_NOPE": "{comment}",
                                                     "UF_CRM_COUNT": "{id}",
                                                     "DATE_CREATE": "{id}"}})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        conf = os.path.join(self.wd.path, "bad", "orderbridge.conf")
        lines = open(conf).read().splitlines()
        line_of = {l.split(" = ")[0]: n for n, l in enumerate(lines, 1) if " = " in l}
        self.assertIn(f"{conf}:{line_of['UF_CRM_NOPE']}: [bitrix24.fields] UF_CRM_NOPE: the "
                      "portal has no such deal field", r.stderr)
        self.assertIn(f"{conf}:{line_of['UF_CRM_COUNT']}: [bitrix24.fields] UF_CRM_COUNT: the "
                      "portal's field is of type integer, not string", r.stderr)
        self.assertIn(f"{conf}:{line_of['DATE_CREATE']}: [bitrix24.fields] DATE_CREATE: the "
                      "portal's field is read-only", r.stderr)
        self.assertNotIn("UF_CRM_DELIVERY_ADDR:", r.stderr)
        r = self.check("good", **{"bitrix24.fields": {"UF_CRM_DELIVERY_ADDR": "{property:A}"}})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("every [bitrix24.fields] field exists in the portal", r.stdout)

    def test_check_refuses_a_storefronts_pipeline_the_portal_lacks(self):
        r = self.check("nosuch", **{"bitrix24.site s3": {"category_id": "8"}})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("[bitrix24.site s3] category_id = 8: the portal has no such deal "
                      "pipeline", r.stderr)


class Keys(unittest.TestCase):
    def test_keys_lists_the_mapping_keys_and_sections(self):
        out = subprocess.run([BIN, "--keys"], capture_output=True, text=True, check=True).stdout
        for needle in ("  assigned_by_id ", "  source_id ", "  utm ", "  comment_to_deal ",
                       "  delivery_row_name ", "  name_template ", "\n[bitrix24.fields]\n",
                       "\n[bitrix24.site <LID>]\n", "\n[bitrix24.person_type <ID>]\n",
                       "\n[roistat.fields]\n", "\n[roistat.site <LID>]\n", "{property:CODE}"):
            self.assertIn(needle, out)


if __name__ == "__main__":
    unittest.main()
