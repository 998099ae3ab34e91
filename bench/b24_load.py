#!/usr/bin/env python3
"""Bitrix24 sink under load (issue #9): requests, commands and wall time against the
portal's limit, lone-order latency, and the CRM left behind checked order by order.

Against the Bitrix24 emulator (tests/emulators/bitrix24_emu.py) at rate 2 requests/s,
burst 50 (a cloud portal's ordinary plan), the daemon's [bitrix24] rate/burst the same;
release build, no Roistat, the harness's [delivery] settings (tests/integration/harness.py).

Load (fresh emulator and daemon):
  new orders      --orders N (2,000) new orders posted by 16 concurrent threads, as fast
                  as the site can, then waited for until every one is delivered.
                  70% new buyers, 30% repeat buyers (same phone OR same e-mail as an earlier
                  order of the workload, half each, at least 100 orders after the buyer's
                  first one; half the same-phone repeats write the
                  phone in another format), 10% legal entities (company + INN; some
                  companies repeat: a second employee of a known company, or a repeat
                  buyer), 1-10 product rows each, prices with kopecks; fixed seed.
  status changes  --rounds R (3) rounds, each changing the status of every order
                  (N->P, P->A, A->D: PREPARATION, EXECUTING, FINAL_INVOICE in the default
                  [bitrix24.map]; versions 2, 3, 4), same 16 threads, every round waited
                  for before the next (no change is coalesced away). Baskets unchanged.
  Each phase starts with a full bucket (an idle pause of burst/rate + 1 s before it), as
  the bound assumes.

Figures per phase (emulator counters, differences over the phase): HTTP requests (every
request that reached /rest/), CRM commands (methods run, batch commands included),
requests and commands per 100 orders or changes, commands per batch request,
QUERY_LIMIT_EXCEEDED answers (must be 0), wall time from the first POST to the daemon's
counts showing every order done and nothing pending/inflight/retrying/waiting (polled
every 0.1 s), bound = (commands/50 - burst)/rate s (the least time a client needs to run
that many commands in full batches through the bucket; 0 when they fit in the burst),
wall/bound; per-method command counts from /_emu/state counts.by_method.

Lone-order latency (fresh emulator and daemon, same limit): --latency-orders L (40) new
orders of new buyers with 3 rows, one at a time, --latency-gap G (3) s apart — a quiet shop,
whose portal's bucket refills between orders (a lone new buyer's order takes 4 requests:
look-up, contact, deal, rows; at 2 requests/s, orders closer than 2 s apart queue behind the
limit and the figure measures the limit, not the daemon); from the 202 answer to the
deal being in the emulator with its 3 rows (GET /_emu/state every 5 ms over one
keep-alive connection; the state stays small: at most L deals). p50/p99 nearest rank.

Checks at the end (non-zero exit after the figures are printed): exactly one deal per
order (ORIGINATOR_ID = site, ORIGIN_ID = order id) and no other; each at the stage of the
last round; OPPORTUNITY = the order's total to the kopeck; product rows = the order's rows
(name, price, quantity, in order); one contact per distinct buyer (repeat orders share it),
one company per distinct company, deals linked to them; a manager's contact 1, company 1
and deal 1 made before the run are untouched; 0 QUERY_LIMIT_EXCEEDED, 0 dead deliveries.

Usage: b24_load.py [--bin build/orderbridge] [--orders 2000] [--rounds 3]
                   [--latency-orders 40] [--latency-gap 3] [--skip-latency] [--quick]
                   [--seed 9]"""
import argparse
import concurrent.futures
import contextlib
import http.client
import io
import json
import math
import os
import random
import subprocess
import sys
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Bitrix24, Daemon, Workdir, order  # noqa: E402

RATE, BURST = 2, 50
THREADS = 16
PHASE_TIMEOUT = 600.0
SITE = "shop.example.ru"
# default [bitrix24.map] (src/sinks/bitrix24_conf.c): consecutive codes map to different stages
ROUND_STATUS = (("P", "PREPARATION"), ("A", "EXECUTING"), ("D", "FINAL_INVOICE"))
FIRST = ("Иван", "Пётр", "Анна", "Мария", "Сергей", "Ольга", "Дмитрий", "Елена", "Алексей",
         "Наталья", "Андрей", "Татьяна")
LAST = ("Петров", "Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов",
        "Новиков", "Морозов")
GOODS = ("Чайник", "Кофемолка", "Блендер", "Тостер", "Утюг", "Пылесос", "Миксер", "Фен",
         "Кабель USB-C", "Лампа", "Сковорода", "Набор ножей", "Термос", "Весы кухонные")


class CheckFailed(Exception):
    pass


def rub(kopecks):
    return f"{kopecks // 100}.{kopecks % 100:02d}"


# --- the workload -------------------------------------------------------------------------

REPEAT_GAP = 100


def workload(n, seed):
    """[{"id", "buyer", "items", "price", "person", "company"}]: deterministic for (n, seed).
    person/company are keys: orders with the same key must share one contact/company."""
    rng = random.Random(seed)
    legal = [i < round(n * 0.10) for i in range(n)]
    repeat = [i < round(n * 0.30) for i in range(n)]
    rng.shuffle(legal)
    rng.shuffle(repeat)
    persons = []        # {"key", "legal", "name", "phone_digits", "email", "company"}
    companies = []      # {"key", "title", "inn"}
    out = []
    kinds = 0
    for i in range(n):
        # a repeat buyer comes back later: at least REPEAT_GAP orders after the buyer's
        # first one (an order and its repeat posted within the same few milliseconds race
        # each other, which no shop sees, and no look-up can join two contacts made by
        # orders that each bring a key the other lacks)
        pool = [p for p in persons if p["legal"] == legal[i] and p["first"] <= i - REPEAT_GAP]
        if repeat[i] and not pool:
            # no earlier buyer of this type yet: swap with the next new order of this type
            j = next((j for j in range(i + 1, n) if not repeat[j] and legal[j] == legal[i]),
                     None)
            repeat[i] = False
            if j is not None:
                repeat[j] = True
        if repeat[i]:
            p = rng.choice(pool)
            kind = ("phone", "email")[kinds % 2]
            kinds += 1
            d = p["phone_digits"]
            if kind == "phone":   # same phone (half of them written another way), new e-mail
                phone = (f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}" if kinds % 4 == 1
                         else f"+7 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}")
                email = f"{p['key']}.{i}@mail.example.ru"
            else:                 # same e-mail, a phone never seen before
                phone = f"+7 926 {i // 10000:03d}-{(i // 100) % 100:02d}-{i % 100:02d}"
                email = p["email"]
            person, company = p, p["company"]
        else:
            k = len(persons)
            d = f"916{k:07d}"
            company = None
            if legal[i]:
                if companies and rng.random() < 0.3:   # another employee of a known company
                    company = rng.choice(companies)
                else:
                    c = len(companies)
                    company = {"key": f"co{c}", "title": f"ООО «Альфа-{c}»",
                               "inn": f"77{c:08d}"}
                    companies.append(company)
            person = {"key": f"p{k}", "legal": legal[i], "phone_digits": d, "first": i,
                      "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                      "email": f"buyer{k}@example.ru", "company": company}
            persons.append(person)
            phone = f"+7 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}"
            email = person["email"]
        items, total = [], 0
        for _ in range(rng.randint(1, 10)):
            pid = rng.randint(1, 5000)
            price = rng.randint(1000, 5_000_000)          # 10.00 .. 50,000.00 RUB
            qty = rng.choice((1, 1, 1, 1, 2, 2, 3, 5))
            total += price * qty
            items.append({"product_id": str(pid), "name": f"{rng.choice(GOODS)} арт. {pid}",
                          "price": rub(price), "quantity": str(qty)})
        buyer = {"type": "legal" if legal[i] else "individual", "name": person["name"],
                 "phone": phone, "email": email,
                 "company": company["title"] if company else None,
                 "inn": company["inn"] if company else None}
        out.append({"id": str(100001 + i), "buyer": buyer, "items": items, "price": rub(total),
                    "person": person["key"], "company": company["key"] if company else None})
    return out


def snapshot(o, version=1, status="N"):
    minute = f"{4 + version:02d}"
    return order(o["id"], version=version, status=status, price=o["price"], buyer=o["buyer"],
                 items=o["items"], updated_at=f"2026-03-13T10:{minute}:00+03:00")


# --- talking to the emulator and the daemon --------------------------------------------------

def get_json(port, path, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


def full_state(b24):
    return get_json(b24.port, "/_emu/state")


def post(daemon, snap):
    status, answer = daemon.post(snap)
    if status != 202:
        raise RuntimeError(f"POST {snap['order']['id']} v{snap['order']['version']}: "
                           f"{status} {answer}")


def post_all(daemon, snaps):
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda s: post(daemon, s), snaps))


def wait_settled(daemon, n, timeout=PHASE_TIMEOUT):
    deadline = time.monotonic() + timeout
    c = None
    while time.monotonic() < deadline:
        c = daemon.counts()["bitrix24"]
        if c.get("dead"):
            raise CheckFailed(f"{c['dead']} deliveries went to dead letters: {c}")
        if c["done"] == n and c["pending"] + c["inflight"] + c["retrying"] + c["waiting"] == 0:
            return
        time.sleep(0.1)
    raise CheckFailed(f"not all delivered after {timeout:.0f} s: {c}")


def start(wd, sentinels=False):
    b24 = Bitrix24(wd.path, rate=RATE, burst=BURST)
    if sentinels:
        # a manager's own records, ids 1: no order of the workload may touch them
        b24.control("contact", {"fields": {
            "NAME": "Manager's own contact",
            "PHONE": [{"VALUE": "+7 495 000-00-01", "VALUE_TYPE": "WORK"}],
            "EMAIL": [{"VALUE": "manager@portal.example.ru", "VALUE_TYPE": "WORK"}]}})
        b24.control("company", {"fields": {"TITLE": "Manager's own company"}})
        b24.control("deal", {"fields": {"TITLE": "Manager's own deal", "CONTACT_ID": "1",
                                        "COMPANY_ID": "1", "OPPORTUNITY": "1.00",
                                        "IS_MANUAL_OPPORTUNITY": "Y"}})
    daemon = Daemon(wd.path, bitrix24=b24,
                    sections={"bitrix24": {"rate": str(RATE), "burst": str(BURST)}})
    daemon.start()
    return b24, daemon


# --- figures ------------------------------------------------------------------------------

def delta(before, after):
    cb, ca = before["counts"], after["counts"]
    d = {k: ca[k] - cb[k] for k in ("http_requests", "commands", "query_limit_exceeded",
                                    "faulted")}
    mb, ma = cb.get("by_method", {}), ca.get("by_method", {})
    d["by_method"] = {m: ma.get(m, 0) - mb.get(m, 0) for m in ma if ma.get(m, 0) != mb.get(m, 0)}
    d["batches"] = d["by_method"].get("batch", 0)
    singles = d["http_requests"] - d["batches"] - d["query_limit_exceeded"] - d["faulted"]
    d["batch_commands"] = d["commands"] - singles
    return d


def bound(commands):
    return max(0.0, (commands / 50 - BURST) / RATE)


def figures(what, n, d, post_s, wall_s):
    b = bound(d["commands"])
    return {"what": what, "n": n, "requests": d["http_requests"], "commands": d["commands"],
            "req100": 100 * d["http_requests"] / n, "cmd100": 100 * d["commands"] / n,
            "per_batch": d["batch_commands"] / d["batches"] if d["batches"] else 0.0,
            "qle": d["query_limit_exceeded"], "post_s": post_s, "wall_s": wall_s,
            "bound_s": b, "ratio": wall_s / b if b > 0 else None,
            "by_method": d["by_method"]}


def sum_figures(what, rows):
    n = sum(r["n"] for r in rows)
    d = {"http_requests": sum(r["requests"] for r in rows),
         "commands": sum(r["commands"] for r in rows),
         "query_limit_exceeded": sum(r["qle"] for r in rows), "by_method": {}}
    batches = batch_cmds = 0
    for r in rows:
        for m, c in r["by_method"].items():
            d["by_method"][m] = d["by_method"].get(m, 0) + c
        batches += r["by_method"].get("batch", 0)
        batch_cmds += r["per_batch"] * r["by_method"].get("batch", 0)
    out = {"what": what, "n": n, "requests": d["http_requests"], "commands": d["commands"],
           "req100": 100 * d["http_requests"] / n, "cmd100": 100 * d["commands"] / n,
           "per_batch": batch_cmds / batches if batches else 0.0,
           "qle": d["query_limit_exceeded"], "post_s": sum(r["post_s"] for r in rows),
           "wall_s": sum(r["wall_s"] for r in rows),
           "bound_s": sum(r["bound_s"] for r in rows), "by_method": d["by_method"]}
    out["ratio"] = out["wall_s"] / out["bound_s"] if out["bound_s"] > 0 else None
    return out


# --- the load run ---------------------------------------------------------------------------

def load_run(n, rounds, seed, rows, failures):
    orders = workload(n, seed)
    wd = Workdir()
    b24 = daemon = None
    try:
        b24, daemon = start(wd, sentinels=True)
        sentinel = full_state(b24)
        time.sleep(2)                      # the daemon's start-up calls: let the bucket refill
        phases = [("new orders", 1, "N", "NEW")]
        for r in range(rounds):
            status, stage = ROUND_STATUS[r % len(ROUND_STATUS)]
            phases.append((f"status changes, round {r + 1} (→{status})", r + 2, status, stage))
        before = full_state(b24)
        for k, (what, version, status, stage) in enumerate(phases):
            if k > 0:
                time.sleep(BURST / RATE + 1)   # a full bucket at the start of every phase
            snaps = [snapshot(o, version, status) for o in orders]
            t0 = time.monotonic()
            post_all(daemon, snaps)
            post_s = time.monotonic() - t0
            wait_settled(daemon, n)
            wall_s = time.monotonic() - t0
            after = full_state(b24)
            rows.append(figures(what, n, delta(before, after), post_s, wall_s))
            print(f"  {what}: {rows[-1]['requests']} requests, {rows[-1]['commands']} "
                  f"commands, {wall_s:.1f} s", file=sys.stderr, flush=True)
            before = after
        check_crm(before, sentinel, orders, phases[-1][3], failures)
        c = daemon.counts()["bitrix24"]
        if c.get("dead"):
            failures.append(f"{c['dead']} dead deliveries")
    finally:
        if daemon:
            daemon.stop()
        if b24:
            b24.stop()
        wd.cleanup()


def check_crm(state, sentinel, orders, stage, failures):
    """Appends one line per kind of failure (how many, and up to 3 examples)."""
    found = {}

    def fail(kind, example):
        found.setdefault(kind, []).append(example)

    for kind in ("contacts", "companies", "deals"):
        if state[kind].get("1") != sentinel[kind]["1"]:
            fail(f"the manager's {kind[:-1]} 1 was changed", str(state[kind].get("1")))
    if state["productrows"].get("1"):
        fail("the manager's deal 1 got product rows", str(state["productrows"]["1"]))
    by_origin = {}
    for d in state["deals"].values():
        if d.get("ORIGINATOR_ID") == SITE:
            by_origin.setdefault(d.get("ORIGIN_ID"), []).append(d)
        elif d["ID"] != "1":
            fail("deals with another ORIGINATOR_ID", f"deal {d['ID']}")
    ids = {o["id"] for o in orders}
    for extra in sorted(set(by_origin) - ids):
        fail("deals for an unknown ORIGIN_ID", repr(extra))
    contact_of, company_of, orders_of = {}, {}, {}
    for o in orders:
        deals = by_origin.get(o["id"], [])
        if len(deals) != 1:
            fail("orders without exactly one deal", f"{o['id']}: {len(deals)} deals")
            continue
        d = deals[0]
        if d["STAGE_ID"] != stage:
            fail(f"deals not at {stage}", f"{o['id']} (deal {d['ID']}) at {d['STAGE_ID']}")
        if Decimal(str(d["OPPORTUNITY"])) != Decimal(o["price"]):
            fail("deals whose OPPORTUNITY is not the order's total",
                 f"{o['id']}: {d['OPPORTUNITY']} != {o['price']}")
        got = [(r["PRODUCT_NAME"], Decimal(str(r["PRICE"])), Decimal(str(r["QUANTITY"])))
               for r in state["productrows"].get(d["ID"], [])]
        want = [(it["name"], Decimal(it["price"]), Decimal(it["quantity"])) for it in o["items"]]
        if got != want:
            fail("deals whose product rows are not the order's", f"{o['id']}: {got} != {want}")
        contact = str(d.get("CONTACT_ID"))
        contact_of.setdefault(o["person"], set()).add(contact)
        orders_of.setdefault(o["person"], []).append((o, contact))
        company = str(d.get("COMPANY_ID") or "0")
        if o["company"]:
            company_of.setdefault(o["company"], set()).add(company)
        elif company != "0":
            fail("individuals' deals with a company", f"{o['id']}: COMPANY_ID {company}")

    def comms(cid):
        c = state["contacts"].get(cid) or {}
        return "/".join(m["VALUE"] for m in (c.get("PHONE") or []) + (c.get("EMAIL") or []))

    for key, got in contact_of.items():
        if len(got) != 1 or got & {"0", "None", "1"}:
            fail("buyers whose orders went to more than one contact (or none, or the "
                 "manager's)", f"{key}: " + "; ".join(
                     f"{o['id']} ({o['buyer']['phone']}, {o['buyer']['email']}) → contact "
                     f"{c} [{comms(c)}]" for o, c in orders_of[key]))
    for key, got in company_of.items():
        if len(got) != 1 or got & {"0", "1"}:
            fail("companies whose orders went to more than one company (or none, or the "
                 "manager's)", f"{key}: {sorted(got)}")
    for what, links, table in (("buyers", contact_of, "contacts"),
                               ("companies", company_of, "companies")):
        single = [next(iter(v)) for v in links.values() if len(v) == 1]
        if len(set(single)) != len(single):
            fail(f"distinct {what} merged into one of the {table}",
                 f"{len(single)} {what} with one each, in {len(set(single))} {table}")
        have = len(state[table]) - 1                      # without the manager's own
        if have != len(links):
            fail(f"{table} in the portal != distinct {what}",
                 f"{have} {table} for {len(links)} distinct {what}")
    for kind, examples in found.items():
        failures.append(f"{kind}: {len(examples)}; e.g. " + " | ".join(examples[:3]))


# --- lone orders ----------------------------------------------------------------------------

def latency_run(count, seed, failures, gap=3.0):
    rng = random.Random(seed + 1)
    wd = Workdir()
    b24 = daemon = None
    samples = []
    try:
        b24, daemon = start(wd)
        time.sleep(2)
        before = full_state(b24)
        conn = http.client.HTTPConnection("127.0.0.1", b24.port, timeout=30)
        for i in range(count):
            oid = str(900001 + i)
            items, total = [], 0
            for _ in range(3):
                price, qty = rng.randint(1000, 5_000_000), rng.randint(1, 3)
                total += price * qty
                items.append({"product_id": str(rng.randint(1, 5000)), "name": f"Товар {i}",
                              "price": rub(price), "quantity": str(qty)})
            buyer = {"type": "individual", "name": f"Тихий покупатель {i}",
                     "phone": f"+7 985 {i:03d}-00-00", "email": f"quiet{i}@example.ru",
                     "company": None, "inn": None}
            post(daemon, order(oid, price=rub(total), buyer=buyer, items=items))
            t0 = time.monotonic()
            deadline = t0 + 30
            while True:
                conn.request("GET", "/_emu/state")
                state = json.loads(conn.getresponse().read())
                found = [d for d in state["deals"].values() if d.get("ORIGIN_ID") == oid]
                if found and len(state["productrows"].get(found[0]["ID"], [])) == 3:
                    samples.append((time.monotonic() - t0) * 1000)
                    break
                if time.monotonic() > deadline:
                    raise CheckFailed(f"lone order {oid}: no deal with its rows after 30 s")
                time.sleep(0.005)
            time.sleep(gap)
        conn.close()
        wait_settled(daemon, count)
        after = full_state(b24)
        d = delta(before, after)
        deals = [x for x in after["deals"].values() if x.get("ORIGINATOR_ID") == SITE]
        if len(deals) != count or len({x["ORIGIN_ID"] for x in deals}) != count:
            failures.append(f"lone orders: {len(deals)} deals for {count} orders")
        if d["query_limit_exceeded"]:
            failures.append(f"lone orders: {d['query_limit_exceeded']} QUERY_LIMIT_EXCEEDED")
    finally:
        if daemon:
            daemon.stop()
        if b24:
            b24.stop()
        wd.cleanup()
    return samples, d


def nearest_rank(sorted_samples, p):
    return sorted_samples[max(0, math.ceil(p / 100 * len(sorted_samples)) - 1)]


# --- report ---------------------------------------------------------------------------------

def print_load(rows):
    print(f"| {RATE} req/s, burst {BURST} | count | HTTP requests | CRM commands | "
          "requests /100 | commands /100 | commands /batch | QUERY_LIMIT_EXCEEDED | "
          "posting s | wall s | bound s | wall/bound |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] else "— (fits the burst)"
        print(f"| {r['what']} | {r['n']:,} | {r['requests']:,} | {r['commands']:,} | "
              f"{r['req100']:.2f} | {r['cmd100']:.1f} | {r['per_batch']:.1f} | {r['qle']} | "
              f"{r['post_s']:.1f} | {r['wall_s']:.1f} | {r['bound_s']:.1f} | {ratio} |")
    methods = sorted({m for r in rows for m in r["by_method"]},
                     key=lambda m: (m == "batch", m))
    if methods:
        print()
        print("| method (commands; `batch` = batch requests) | "
              + " | ".join(r["what"] for r in rows) + " |")
        print("|---|" + "--:|" * len(rows))
        for m in methods:
            print(f"| {m} | " + " | ".join(f"{r['by_method'].get(m, 0):,}" for r in rows) + " |")


def git_rev():
    """The commit measured (with "+changes" for a dirty tree), or "unknown"."""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty=+changes"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        rev = ""
    return rev or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderbridge"))
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-orders", type=int, default=40)
    ap.add_argument("--latency-gap", type=float, default=3.0,
                    help="seconds between lone orders (a quiet shop)")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="300 orders, 1 round, 10 lone orders (a fast check)")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--results", metavar="FILE",
                    help="also append the figures, dated, to FILE (make bench: bench/RESULTS.md)")
    args = ap.parse_args()
    if args.quick:
        args.orders, args.rounds, args.latency_orders = 300, 1, 10
    if args.orders < 10 or args.rounds < 0 or args.latency_orders < 1:
        ap.error("--orders must be at least 10, --rounds at least 0, --latency-orders 1")
    harness.BIN = os.path.abspath(args.bin)
    started = time.monotonic()
    rows, failures, samples = [], [], None
    error = None
    try:
        print(f"load: {args.orders} orders, {args.rounds} rounds of status changes",
              file=sys.stderr, flush=True)
        load_run(args.orders, args.rounds, args.seed, rows, failures)
        if not args.skip_latency:
            print(f"lone orders: {args.latency_orders}", file=sys.stderr, flush=True)
            samples, lat = latency_run(args.latency_orders, args.seed, failures,
                                       args.latency_gap)
    except (CheckFailed, AssertionError, RuntimeError, OSError) as e:
        error = f"{type(e).__name__}: {e}"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        print(f"Bitrix24 sink, {os.path.relpath(harness.BIN, os.getcwd())}, "
              f"{args.orders:,} orders, seed {args.seed}, emulator and daemon at {RATE} req/s "
              f"burst {BURST}, {THREADS} posting threads")
        print()
        if rows:
            changes = rows[1:]
            if len(changes) > 1:
                rows = rows + [sum_figures(f"status changes, all {len(changes)} rounds", changes)]
            print_load(rows)
            print()
        if samples:
            s = sorted(samples)
            print(f"| lone orders (new buyer, 3 rows, {args.latency_gap:g} s apart) | count | p50 ms | p99 ms | max ms | "
                  "mean ms | HTTP requests /order | commands /order |")
            print("|---|--:|--:|--:|--:|--:|--:|--:|")
            print(f"| 202 answer → deal with its rows in the portal | {len(s)} | "
                  f"{nearest_rank(s, 50):.0f} | {nearest_rank(s, 99):.0f} | {s[-1]:.0f} | "
                  f"{sum(s) / len(s):.0f} | {lat['http_requests'] / len(s):.2f} | "
                  f"{lat['commands'] / len(s):.2f} |")
            print()
    sys.stdout.write(report.getvalue())
    if args.results:
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(f"\n## Bitrix24 load (bench/b24_load.py), "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {git_rev()}\n\n"
                    + report.getvalue())
    for r in rows:
        if r["qle"]:
            failures.append(f"{r['what']}: {r['qle']} QUERY_LIMIT_EXCEEDED answers")
    if error:
        failures.insert(0, error)
    print(f"run time {time.monotonic() - started:.0f} s")
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("checks passed: one deal per order at the last stage, totals and rows exact, one "
          "contact per buyer and one company per company, manager's records untouched, "
          "no QUERY_LIMIT_EXCEEDED")


if __name__ == "__main__":
    main()
