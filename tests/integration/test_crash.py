"""The crash loop's short form (the long form is scripts/soak.sh), and a check of the
checker itself: a checker that never finds anything proves nothing.

The seed is random and printed on failure; ORDERBRIDGE_CRASH_SEED=S repeats a run."""
import copy
import os
import random
import re
import unittest

import crash_loop
from crash_loop import (B24_MAP, ROISTAT_MAP, SITE, Ledger, build_orders, check, map_status,
                        norm_email, norm_phone)
from harness import BIN

FIGURES = re.compile(r"^crash: kills=(\d+) acked=(\d+)((?: \w+=\d+)+)$")


class CrashLoop(unittest.TestCase):
    def test_kill_9_and_remote_faults_lose_or_duplicate_nothing(self):
        env_seed = os.environ.get("ORDERBRIDGE_CRASH_SEED")
        seed = int(env_seed) if env_seed else random.randrange(1 << 30)
        lines = []
        ok, line = crash_loop.run(BIN, kills=3, n_orders=150, seed=seed, seconds=12,
                                  drain_timeout=60, log=lines.append)
        print(f"\n  {line} (seed {seed})", end=" ")
        m = FIGURES.match(line)
        self.assertIsNotNone(m, "\n".join(lines + [line]))
        self.assertEqual(int(m.group(1)), 3, "\n".join(lines + [line]))
        self.assertGreaterEqual(int(m.group(2)), 140, "\n".join(lines + [line]))
        others = dict(kv.split("=") for kv in m.group(3).split())
        self.assertEqual({k for k, v in others.items() if v != "0"}, set(),
                         "\n".join(lines + [line]))
        self.assertTrue(ok, "\n".join(lines + [line]))


# design.md, "Status mapping", row by row: the site's status code -> (Roistat status if not
# paid, Roistat status if paid, Bitrix24 stage). "`canceled` wins over everything in both
# sinks. For Roistat, `paid` comes next, then the status code": so the flag, not the code
# C, beats `paid` (a code-C order flagged paid is "confirmed" in Roistat). Written from the
# document, not from crash_loop's tables, so that the checker's model is itself checked.
DESIGN_TABLE = {"N": ("new", "confirmed", "NEW"), "P": ("new", "confirmed", "PREPARATION"),
                "A": ("confirmed", "confirmed", "EXECUTING"),
                "D": ("confirmed", "confirmed", "FINAL_INVOICE"),
                "F": ("confirmed", "confirmed", "WON"), "C": ("canceled", "confirmed", "LOSE")}


def design_roistat(so):
    return "canceled" if so["canceled"] else DESIGN_TABLE[so["status"]][1 if so["paid"] else 0]


def design_stage(so):
    return "LOSE" if so["canceled"] else DESIGN_TABLE[so["status"]][2]


def perfect_remotes(orders, acked):
    """What Roistat and Bitrix24 should hold for these acknowledged versions."""
    rs, deals, rows, contacts, companies = {}, {}, {}, {}, {}
    by_key, by_title = {}, {}
    for n, o in enumerate(orders, start=1):
        snap = o.snapshots[acked[o.id]]
        so, b = snap["order"], snap["order"]["buyer"]
        rs[o.id] = {"id": o.id, "status": design_roistat(so),
                    "price": "0" if so["canceled"] else so["price"]}
        if "roistat_visit" in so:
            rs[o.id]["roistat"] = so["roistat_visit"]
        keys = [k for k in (("phone", norm_phone(b["phone"])), ("email", norm_email(b["email"])))
                if k[1]]
        cid = next((by_key[k] for k in keys if k in by_key), None)
        if cid is None and keys:
            cid = str(len(contacts) + 1)
            contacts[cid] = {"ID": cid, "PHONE": [{"VALUE": v} for t, v in keys if t == "phone"],
                             "EMAIL": [{"VALUE": v} for t, v in keys if t == "email"]}
        for k in keys:
            by_key.setdefault(k, cid)
        co = "0"
        if b["type"] == "legal":
            if b["company"] not in by_title:
                by_title[b["company"]] = str(len(companies) + 1)
                companies[by_title[b["company"]]] = {"ID": by_title[b["company"]],
                                                     "TITLE": b["company"]}
            co = by_title[b["company"]]
        deals[str(n)] = {"ID": str(n), "ORIGINATOR_ID": SITE, "ORIGIN_ID": o.id,
                         "STAGE_ID": design_stage(so), "CATEGORY_ID": "0",
                         "TITLE": f"Order {so['account_number']}", "CURRENCY_ID": "RUB",
                         "OPPORTUNITY": so["price"], "CONTACT_ID": cid, "COMPANY_ID": co,
                         "UF_CRM_ROISTAT": so.get("roistat_visit")}
        rows[str(n)] = [{"PRODUCT_NAME": i["name"], "PRICE": float(i["price"]),
                         "QUANTITY": float(i["quantity"])} for i in so["items"]]
    return rs, {"deals": deals, "productrows": rows, "contacts": contacts,
                "companies": companies}


class Checker(unittest.TestCase):
    def setUp(self):
        rng = random.Random(5)
        self.orders = build_orders(rng, 80)
        self.ledger = Ledger()
        for o in self.orders:
            self.ledger.acked[o.id] = rng.randint(1, o.last)
        self.rs, self.b24 = perfect_remotes(self.orders, self.ledger.acked)

    def figures(self, rs=None, b24=None):
        return check(self.orders, self.ledger, rs or self.rs, b24 or self.b24)

    def first(self, pred):
        return next(o for o in self.orders if pred(o))

    def deal_of(self, b24, oid):
        return next(d for d in b24["deals"].values() if d["ORIGIN_ID"] == oid)

    def test_the_model_covers_the_cases(self):
        snaps = [o.snapshots[v] for o in self.orders for v in o.snapshots]
        self.assertTrue(any(s["order"]["canceled"] for s in snaps))
        self.assertTrue(any(s["order"]["buyer"]["type"] == "legal" for s in snaps))
        self.assertTrue(any(s["order"]["status"] == "F" for s in snaps))
        self.assertTrue(any("roistat_visit" not in s["order"] for s in snaps))
        self.assertTrue(any(o.snapshots[1]["order"]["items"] != o.snapshots[o.last]["order"]
                            ["items"] for o in self.orders), "no basket change")
        phones = {}
        for o in self.orders:
            p = o.buyer["phone"]
            if p:
                phones.setdefault(norm_phone(p), set()).add(p)
        self.assertTrue(any(len(v) > 1 for v in phones.values()), "no repeat spelling")

    def test_the_checkers_status_model_is_the_designs_table(self):
        for code in DESIGN_TABLE:
            for paid in (False, True):
                for canceled in (False, True):
                    so = {"status": code, "paid": paid, "canceled": canceled}
                    with self.subTest(**so):
                        self.assertEqual(map_status(ROISTAT_MAP, {"order": so}),
                                         design_roistat(so))
                        self.assertEqual(map_status(B24_MAP, {"order": so}), design_stage(so))

    def test_matching_remotes_give_all_zeros(self):
        figures, details = self.figures()
        self.assertEqual(figures, dict.fromkeys(figures, 0), details)
        self.assertEqual(details, [])

    def test_each_kind_of_difference_is_found(self):
        legal = self.first(lambda o: o.buyer["type"] == "legal")
        canceled = self.first(lambda o: o.snapshots[self.ledger.acked[o.id]]["order"]
                              ["canceled"])
        some, other = self.orders[0], self.orders[1]

        def mutated(fn):
            rs, b24 = copy.deepcopy(self.rs), copy.deepcopy(self.b24)
            fn(rs, b24)
            return self.figures(rs, b24)[0]

        cases = [
            ("lost", lambda rs, b: rs.pop(some.id)),
            ("lost", lambda rs, b: b["deals"].pop(self.deal_of(b, some.id)["ID"])),
            ("wrong", lambda rs, b: rs[some.id].update(status="nonsense")),
            ("wrong", lambda rs, b: rs[canceled.id].update(price="4990.00")),
            ("wrong", lambda rs, b: rs[some.id].update(roistat="1")),
            ("wrong", lambda rs, b: self.deal_of(b, some.id).update(STAGE_ID="APOLOGY")),
            ("wrong", lambda rs, b: self.deal_of(b, some.id).update(OPPORTUNITY="0.01")),
            ("wrong", lambda rs, b: self.deal_of(b, some.id).update(UF_CRM_ROISTAT="1")),
            ("wrong", lambda rs, b: b["productrows"][self.deal_of(b, some.id)["ID"]][0]
             .update(QUANTITY=99)),
            ("wrong", lambda rs, b: b["productrows"][self.deal_of(b, some.id)["ID"]].pop()),
            ("wrong", lambda rs, b: self.deal_of(b, legal.id).update(COMPANY_ID="0")),
            ("wrong", lambda rs, b: self.deal_of(b, some.id).update(CONTACT_ID="999")),
            ("duplicate_deals", lambda rs, b: b["deals"].update(
                {"9999": dict(self.deal_of(b, other.id), ID="9999")})),
            ("duplicate_contacts", lambda rs, b: b["contacts"].update({"9999": {
                "ID": "9999", "PHONE": [{"VALUE": "8 (" + norm_phone(
                    self.first(lambda o: o.buyer["phone"]).buyer["phone"])[2:] + ")"}]}})),
            ("duplicate_contacts", lambda rs, b: b["contacts"].update({"9999": {
                "ID": "9999", "EMAIL": [{"VALUE": " " + norm_email(
                    self.first(lambda o: o.buyer["email"]).buyer["email"]).upper()}]}})),
            ("duplicate_companies", lambda rs, b: b["companies"].update({"9999": {
                "ID": "9999", "TITLE": legal.buyer["company"]}})),
        ]
        for figure, fn in cases:
            with self.subTest(figure=figure, case=cases.index((figure, fn))):
                got = mutated(fn)
                self.assertEqual(got[figure], 1, got)
                self.assertEqual(sum(got.values()), 1, got)

    def test_a_later_unanswered_version_is_accepted_but_not_an_earlier_one(self):
        o = self.first(lambda o: o.last >= 3)
        self.ledger.acked[o.id] = 1
        rs, b24 = perfect_remotes(self.orders, dict(self.ledger.acked, **{o.id: 3}))
        self.assertEqual(check(self.orders, self.ledger, rs, b24)[0]["wrong"], 1)
        self.ledger.unresolved[o.id].add(3)
        self.assertEqual(check(self.orders, self.ledger, rs, b24)[0]["wrong"], 0)

    def test_the_managers_records_and_foreign_rows_are_checked(self):
        manager = {"deal": {"ID": "9001", "TITLE": "Manager's deal", "CONTACT_ID": "9001",
                            "COMPANY_ID": "9002", "ORIGINATOR_ID": None, "ORIGIN_ID": None},
                   "contact": {"ID": "9001", "NAME": "Manager's own client"},
                   "company": {"ID": "9002", "TITLE": "Manager's own company"},
                   "rows": [{"PRODUCT_NAME": "Manager's service", "PRICE": 1500,
                             "QUANTITY": 1}]}
        some = self.orders[0]
        other_basket = next(o for o in self.orders if all(
            o.snapshots[v]["order"]["items"] != s["order"]["items"]
            for v in o.snapshots for s in some.snapshots.values()))

        def figures(fn=None):
            rs, b24 = copy.deepcopy(self.rs), copy.deepcopy(self.b24)
            b24["deals"]["9001"] = copy.deepcopy(manager["deal"])
            b24["contacts"]["9001"] = copy.deepcopy(manager["contact"])
            b24["companies"]["9002"] = copy.deepcopy(manager["company"])
            b24["productrows"]["9001"] = copy.deepcopy(manager["rows"])
            if fn:
                fn(b24)
            return check(self.orders, self.ledger, rs, b24, manager)

        def rows_of(o):
            items = o.snapshots[self.ledger.acked[o.id]]["order"]["items"]
            return [{"PRODUCT_NAME": i["name"], "PRICE": float(i["price"]),
                     "QUANTITY": float(i["quantity"])} for i in items]

        got, details = figures()
        self.assertEqual(got, dict.fromkeys(got, 0), details)
        cases = [
            ({"manager_touched": 1, "foreign_rows": 1},
             lambda b: b["productrows"].update({"9001": rows_of(some)})),
            ({"manager_touched": 1},
             lambda b: b["contacts"]["9001"].update(NAME="1")),
            ({"manager_touched": 1},
             lambda b: b["deals"]["9001"].update(STAGE_ID="WON")),
            ({"manager_touched": 1, "wrong": 1},
             lambda b: self.deal_of(b, some.id).update(CONTACT_ID="9001")),
            ({"foreign_rows": 1, "wrong": 1},
             lambda b: b["productrows"].update({self.deal_of(b, some.id)["ID"]:
                                                rows_of(other_basket)})),
        ]
        for want, fn in cases:
            with self.subTest(case=cases.index((want, fn))):
                got, details = figures(fn)
                self.assertEqual({k: v for k, v in got.items() if v}, want, details)
        got, details = figures(lambda b: b["deals"].update({"9100": {
            "ID": "9100", "TITLE": "Deal #9100", "ORIGINATOR_ID": None}}))
        self.assertEqual(got, dict.fromkeys(got, 0))
        self.assertTrue(any(d.startswith("STRAY deal 9100") for d in details), details)

    def test_a_wrong_ingest_answer_counts_as_wrong(self):
        self.ledger.bad.append((self.orders[0].id, "v1 (stale) answered 202"))
        figures, details = self.figures()
        self.assertEqual(figures["wrong"], 1)
        self.assertIn("answered 202", details[0])


if __name__ == "__main__":
    unittest.main()
