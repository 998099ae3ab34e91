"""Paid does not override fulfilment (issue #9, item 8), end to end in the portal emulator.

The deal stage follows the order's status code and @canceled overrides it. [bitrix24.map]
has no @paid by default; when an operator sets one, it moves a paid order only while its
status code's stage sorts before it in the pipeline (crm.status.list's SORT), so a paid
order that has shipped or completed is never moved back. Roistat keeps @paid = confirmed.
"""
import os

from harness import Daemon, order, wait_for
from test_bitrix24 import B24Case


class DefaultMap(B24Case):
    def test_a_paid_order_at_d_lands_at_final_invoice_not_executing(self):
        self.post(order("9001", version=1, status="D", paid=True))
        self.wait_stage("9001", "FINAL_INVOICE")
        self.wait_done("9001")
        self.assertEqual(self.the_deal("9001")["STAGE_ID"], "FINAL_INVOICE")

    def test_a_paid_orders_deal_follows_its_status_code(self):
        walk = [("N", "NEW"), ("P", "PREPARATION"), ("A", "EXECUTING"),
                ("D", "FINAL_INVOICE"), ("F", "WON")]
        deal_ids = set()
        for version, (status, stage) in enumerate(walk, start=1):
            self.post(order("9002", version=version, status=status, paid=True))
            deal_ids.add(self.wait_stage("9002", stage)["ID"])
            self.wait_done("9002")
        self.assertEqual(len(deal_ids), 1)
        self.post(order("9002", version=len(walk) + 1, status="F", paid=True, canceled=True))
        self.wait_stage("9002", "LOSE")
        self.assertEqual(self.by_method("crm.status.list"), 0,
                         "without @paid the stage does not depend on the pipeline")

    def test_check_prints_the_map_without_paid(self):
        r = self.daemon.cli("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        line = next(ln for ln in r.stdout.splitlines() if "bitrix24: pipeline" in ln)
        self.assertIn("@canceled→LOSE", line)
        self.assertIn("D→FINAL_INVOICE", line)
        self.assertNotIn("@paid", line)


class PaidSet(B24Case):
    sections = {"bitrix24.map": {"@paid": "EXECUTING"}}

    def test_a_paid_order_before_paid_moves_to_it_and_one_past_it_stays(self):
        self.post(order("9101", version=1, status="N", paid=True))
        self.post(order("9102", version=1, status="F", paid=True))
        self.post(order("9103", version=1, status="D", paid=True))
        self.post(order("9104", version=1, status="N"))
        self.wait_done("9101", "9102", "9103", "9104")
        state = self.b24.state()
        self.assertEqual(self.the_deal("9101", state)["STAGE_ID"], "EXECUTING")  # NEW sorts before
        self.assertEqual(self.the_deal("9102", state)["STAGE_ID"], "WON")
        self.assertEqual(self.the_deal("9103", state)["STAGE_ID"], "FINAL_INVOICE")
        self.assertEqual(self.the_deal("9104", state)["STAGE_ID"], "NEW")  # not paid
        self.assertEqual(state["counts"]["by_method"].get("crm.status.list"), 1,
                         "the pipeline's stages are read once, not per order")

    def test_a_paid_orders_deal_never_moves_back_to_paid(self):
        self.post(order("9201", version=1, status="N", paid=True))
        deal = self.wait_stage("9201", "EXECUTING")
        self.post(order("9201", version=2, status="D", paid=True))
        self.wait_stage("9201", "FINAL_INVOICE")
        self.post(order("9201", version=3, status="F", paid=True))
        self.assertEqual(self.wait_stage("9201", "WON")["ID"], deal["ID"])

    def test_an_unreadable_pipeline_holds_a_paid_order_instead_of_guessing(self):
        self.b24.fault("error503", methods=["crm.status.list"])
        self.post(order("9301", version=1, status="N", paid=True))
        self.post(order("9302", version=1, status="N"))  # not paid: needs no pipeline
        self.wait_stage("9302", "NEW")

        def held():
            d = self.delivery("9301")
            text = str(d.get("last_error") or d.get("detail") or "")
            return d if "the pipeline's stages could not be read" in text else None
        wait_for(held, what="9301 held by the unreadable pipeline")
        self.assertEqual(self.deals_of("9301"), [], "no deal at a guessed stage")
        self.b24.fault("none")
        self.wait_stage("9301", "EXECUTING", timeout=30)
        self.assertIn("b24.pipeline_unread", self.daemon.read_log())

    def test_check_verifies_the_paid_stage(self):
        path = os.path.join(self.wd.path, "nosuch")
        os.mkdir(path)
        r = Daemon(path, sections={"bitrix24.map": {"@paid": "PAID_STAGE"}},
                   bitrix24=self.b24).cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("[bitrix24.map] @paid = PAID_STAGE: pipeline 0 has no stage PAID_STAGE",
                      r.stderr)
        r = self.daemon.cli("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("@paid→EXECUTING", r.stdout)


class PaidSetInSecondPipeline(B24Case):
    sections = {"bitrix24": {"category_id": "1"}, "bitrix24.map": {"@paid": "EXECUTING"}}

    def test_the_pipelines_own_stages_and_sorts_are_used(self):
        self.post(order("9401", version=1, status="N", paid=True))
        self.post(order("9402", version=1, status="D", paid=True))
        self.wait_done("9401", "9402")
        state = self.b24.state()
        self.assertEqual(self.the_deal("9401", state)["STAGE_ID"], "C1:EXECUTING")
        self.assertEqual(self.the_deal("9402", state)["STAGE_ID"], "C1:FINAL_INVOICE")
