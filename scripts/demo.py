#!/usr/bin/env python3
"""`make demo`: the whole pipeline on loopback with embedded defaults.

Starts the Roistat emulator and orderbridge (SQLite store under ./var/demo), posts a set
of sample orders through the real signed ingest API, waits until delivery settles, and
prints what the emulated Roistat holds next to what the site sent. Then stops everything.
"""
import argparse
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Bitrix24, Daemon, Roistat, order, wait_for  # noqa: E402


def step(text):
    print(f"\n--- {text}")


def show(status, answer):
    print(f"    → HTTP {status} {answer}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)

    work = os.path.join(ROOT, "var", "demo")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    roistat = Roistat(work)
    bitrix24 = Bitrix24(work)
    daemon = Daemon(work, roistat=roistat, bitrix24=bitrix24)
    sent = {}  # order id → the snapshot the site last had accepted
    try:
        daemon.start()
        print(f"orderbridge listening on {daemon.base} (store {daemon.db})")
        print(f"Roistat emulator on {roistat.base}, Bitrix24 emulator on {bitrix24.base}")
        print(f"config {daemon.conf}")

        step("1001: a new order, then the same order paid")
        s = order("1001", version=1, status="N", roistat_visit="4521890")
        show(*daemon.post(s))
        s = order("1001", version=2, status="P", paid=True, roistat_visit="4521890")
        show(*daemon.post(s))
        sent["1001"] = s

        step("1002: placed, then cancelled")
        show(*daemon.post(order("1002", version=1, status="N", price="1250.50",
                                roistat_visit="4521891")))
        s = order("1002", version=2, status="N", canceled=True, price="1250.50",
                  roistat_visit="4521891")
        show(*daemon.post(s))
        sent["1002"] = s

        step("1003: the same snapshot re-posted twice (same webhook-id: a sender's retry)")
        s = order("1003", version=1, status="N", price="399.00", roistat_visit="4521892")
        body = harness.json.dumps(s).encode()
        show(*daemon.post(body, webhook_id="msg_demo_1003"))
        show(*daemon.post(body, webhook_id="msg_demo_1003"))
        show(*daemon.post(body, webhook_id="msg_demo_1003"))
        sent["1003"] = s

        step("1004: snapshots arriving out of order (version 3, then the older version 2)")
        s = order("1004", version=3, status="F", price="15000.00", paid=True,
                  roistat_visit="4521893")
        show(*daemon.post(s))
        show(*daemon.post(order("1004", version=2, status="D", price="15000.00",
                                roistat_visit="4521893")))
        sent["1004"] = s

        step("1006: a repeat customer (same phone, written differently), a discount, a "
             "coupon and a delivery; 1007: a company")
        s = order("1006", version=1, status="N", price="780.00", roistat_visit="4521894")
        s["order"]["buyer"]["phone"] = "8 (900) 123-45-67"
        s["order"]["items"] = [{"product_id": "77", "name": "Teapot", "price": "340.00",
                                "base_price": "390.00", "quantity": "2"}]
        s["order"]["delivery"] = {"name": "Courier", "price": "100.00"}
        s["order"]["discount"] = "100.00"
        s["order"]["coupons"] = ["SPRING50"]
        show(*daemon.post(s))
        sent["1006"] = s
        s = order("1007", version=1, status="A", paid=True, price="120000.00",
                  roistat_visit="4521895")
        s["order"]["buyer"] = {"type": "legal", "name": "Olga Smirnova",
                               "phone": "+7 495 111-22-33", "email": "olga@romashka.ru",
                               "company": "OOO Romashka", "inn": "7701234567"}
        s["order"]["items"] = [{"product_id": "9", "name": "Office kettle", "price": "6000.00",
                                "quantity": "20"}]
        show(*daemon.post(s))
        sent["1007"] = s

        step("1005: an invalid snapshot (price with three decimals) is refused, nothing stored")
        show(*daemon.post(order("1005", price="10.005")))

        wait_for(lambda: all(
            (daemon.delivery(i) or {}).get("state") == "done" and
            (daemon.delivery(i, "bitrix24") or {}).get("state") == "done" for i in sent),
            timeout=30, what="delivery")
        time.sleep(0.3)

        print("\n=== what the site sent vs what Roistat now holds")
        got = roistat.orders()
        hdr = f"{'order':<6} {'site: status/flags':<24} {'price':>10} {'visit':>8}  |  " \
              f"{'Roistat: status':<16} {'price':>10} {'visit':>8} {'updates':>7}  match"
        print(hdr)
        print("-" * len(hdr))
        ok = True
        for oid, s in sent.items():
            o = s["order"]
            flags = o["status"] + (" canceled" if o["canceled"] else "") + \
                (" paid" if o["paid"] else "")
            r = got.get(oid, {})
            want_price = "0" if o["canceled"] else o["price"]
            match = r.get("price") == want_price and r.get("roistat") == o["roistat_visit"]
            ok &= match
            print(f"{oid:<6} {flags:<24} {o['price']:>10} {o['roistat_visit']:>8}  |  "
                  f"{r.get('status', '-'):<16} {r.get('price', '-'):>10} "
                  f"{r.get('roistat', '-'):>8} {r.get('updates', 0):>7}  "
                  f"{'yes' if match else 'NO'}")
        print(f"1005   (refused: price)  {'10.005':>10}  |  "
              f"{'not in Roistat' if '1005' not in got else 'PRESENT?!'}")
        counts = roistat.state()["counts"]
        print(f"\nRoistat saw {counts['add_orders']} add-orders requests, "
              f"{counts['set_statuses']} set-statuses; statuses: "
              + ", ".join(f"{s['id']}={s['type']}" for s in roistat.state()["statuses"]))
        crm = bitrix24.state()
        print("\n=== what the emulated Bitrix24 CRM now holds")
        for cid, c in crm["contacts"].items():
            phones = ", ".join(p["VALUE"] for p in c.get("PHONE", []))
            emails = ", ".join(e["VALUE"] for e in c.get("EMAIL", []))
            print(f"contact {cid}: {c.get('NAME')}  {phones}  {emails}")
        for cid, c in crm["companies"].items():
            print(f"company {cid}: {c.get('TITLE')}")
        for did, dl in crm["deals"].items():
            o = sent.get(dl.get("ORIGIN_ID"), {}).get("order", {})
            print(f"deal {did}: {dl['TITLE']:<12} order {dl.get('ORIGIN_ID'):<5} "
                  f"stage {dl['STAGE_ID']:<14} {dl['OPPORTUNITY']:>9} {dl['CURRENCY_ID']} "
                  f"contact {dl.get('CONTACT_ID')} company {dl.get('COMPANY_ID')} "
                  f"visit {dl.get('UF_CRM_ROISTAT')}")
            for row in crm["productrows"].get(did, []):
                off = f" (−{row['DISCOUNT_SUM']} each)" if row.get("DISCOUNT_SUM") else ""
                print(f"        row: {row['PRODUCT_NAME']} × {row['QUANTITY']} @ {row['PRICE']}{off}")
            if o and dl["OPPORTUNITY"] != o["price"]:
                ok = False
        deals_per_order = {}
        for dl in crm["deals"].values():
            deals_per_order[dl.get("ORIGIN_ID")] = deals_per_order.get(dl.get("ORIGIN_ID"), 0) + 1
        ok &= all(deals_per_order.get(i) == 1 for i in sent)
        print(f"\nBitrix24 saw {crm['counts']['http_requests']} HTTP requests carrying "
              f"{crm['counts']['commands']} commands for {len(sent)} orders "
              f"(one call per step would have taken about {4 * len(sent)})")

        print("\n=== orderbridge status")
        print(daemon.cli("status").stdout, end="")
        print("\n=== orderbridge status 1002")
        print(daemon.cli("status", "1002").stdout, end="")
        print(f"\nlog: {daemon.log_path}")
        return 0 if ok and "1005" not in got else 1
    finally:
        daemon.stop(check=False)
        roistat.stop()
        bitrix24.stop()


if __name__ == "__main__":
    sys.exit(main())
