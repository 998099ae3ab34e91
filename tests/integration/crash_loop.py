#!/usr/bin/env python3
"""Crash loop: the proof that an acknowledged order reaches Roistat and Bitrix24 exactly
as the site last described it, whatever happens in between.

    crash_loop.py --bin BIN --kills K --orders N [--seed S] [--seconds T] [--clients C]
                  [--no-late-applies] [--keep]

Starts both emulators and the daemon (Roistat and Bitrix24 enabled, fast delivery), then
C client threads post signed snapshots for N orders over about T seconds: new orders,
status walks N -> P -> A -> D -> F with rising versions, repeat customers (one phone in
several spellings, one e-mail in several cases), legal entities, cancellations, basket
changes, stale re-posts and pairs of versions racing each other. Meanwhile the daemon is
killed with SIGKILL K times at random moments and restarted, and the emulators inject
faults at random (5xx, QUERY_LIMIT_EXCEEDED, hangs, resets, and "lost": applied, answer
dropped; unless --no-late-applies, also Roistat answers so slow that the request is applied after
the daemon gave up on it or was killed). Bitrix24 also fails single commands inside a batch
(or a direct call): every create method (crm.contact.add, crm.company.add, crm.deal.add,
crm.deal.productrows.set, crm.deal.update), with the error keyed to its command, as an
unkeyed list, or omitted (neither result nor error). On a real portal a reference to a
failed command resolves to record 1, so the portal starts with a MANAGER's contact 1,
company 1 and deal 1 (with a product row), which nothing may touch. Clients retry on
connection errors and 503 with the same webhook-id, as the site module's spool does.

For every order the client side records the latest snapshot the daemon ACKNOWLEDGED (the
highest version answered 202; a "200 stale" only says the daemon had something at least
as new). After the chaos the faults are cleared, the backlog drains (`orderbridge status
--json` shows nothing pending, in flight, retrying or waiting), the daemon stops cleanly,
and the checker compares, order by order, that snapshot with what the remotes hold:

  Roistat   status per the default map, price ("0" when cancelled), visit;
  Bitrix24  exactly one deal per ORIGIN_ID, STAGE_ID per the default map, OPPORTUNITY,
            UF_CRM_ROISTAT, TITLE, product rows = the basket, CONTACT_ID names a contact
            that holds the buyer's phone or e-mail, COMPANY_ID a company with the buyer's
            company title for legal buyers; no two contacts share a normalised phone or
            e-mail, no two companies a title; no deal holds product rows of another order.
  Manager   deal 1 (its fields and product rows), contact 1 and company 1 exactly as the
            manager made them, and no other deal or contact bound to them.

Ingest answers are checked on the way: a stale snapshot must not be answered 202, a
snapshot must not be called stale when nothing as new was sent, nothing else but 202, 200
and 503 may come back. Differences are printed (the first few in detail), then ONE line:

    crash: kills=20 acked=5000 lost=0 wrong=0 duplicate_deals=0 duplicate_contacts=0 ...
           manager_touched=0 foreign_rows=0 unexpected_exits=0

and the exit status is 1 on any loss, wrong value, duplicate or unexpected daemon exit.
The orders, snapshots and the order of posts per client, the kill times and the fault
schedule are all drawn from --seed; only the timing between threads varies. On failure
the work directory (daemon and emulator logs, the SQLite store) is kept and named.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from decimal import ROUND_HALF_UP, Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import Bitrix24, Daemon, Roistat, free_port, obpost  # noqa: E402
from harness import http as http_call  # noqa: E402

SITE = "shop.example.ru"
# The defaults of [roistat.map] and [bitrix24.map], read as the daemon reads them: the
# cancelled flag first, then the paid flag (Roistat's only: [bitrix24.map] has no default
# @paid), then the status code.
ROISTAT_MAP = {"@canceled": "canceled", "@paid": "confirmed", "N": "new", "P": "new",
               "A": "confirmed", "D": "confirmed", "F": "confirmed", "C": "canceled"}
B24_MAP = {"@canceled": "LOSE", "N": "NEW", "P": "PREPARATION",
           "A": "EXECUTING", "D": "FINAL_INVOICE", "F": "WON", "C": "LOSE"}
WALK = ("N", "P", "A", "D", "F")

FIRST = ("Ivan", "Olga", "Petr", "Anna", "Sergey", "Maria", "Dmitry", "Elena", "Алексей",
         "Наталья", "Михаил", "Татьяна")
LAST = ("Petrov", "Ivanova", "Sidorov", "Smirnova", "Kuznetsov", "Попов", "Волкова",
        "Соколов", "Lebedeva", "Новиков")
PRODUCTS = [(str(100 + i), name, price) for i, (name, price) in enumerate((
    ("Kettle", "2495.00"), ("Toaster", "1890.00"), ("Мясорубка", "5490.00"),
    ("Blender", "3299.90"), ("Iron", "1249.50"), ("Чайник \"Ретро\"", "3100.00"),
    ("Mixer", "899.99"), ("Coffee beans 1 kg", "1350.00"), ("Tea & herbs", "249.00"),
    ("Vacuum cleaner", "12990.00"), ("Lamp", "799.00"), ("Кофеварка", "8990.00"),
    ("Scales", "650.00"), ("Filter 50/50", "120.10"), ("Pan 28 cm", "2100.00"),
    ("Knife set", "4300.00"), ("Cable, 2 m", "199.00"), ("Mug", "350.00"),
    ("Cheese (weighed)", "1200.00"), ("Apples (weighed)", "159.90")))]
WEIGHED = {"Cheese (weighed)", "Apples (weighed)"}


# --- the orders ------------------------------------------------------------------------

def phone_spellings(d):
    """Ways a shop's customers write one Russian mobile number (d: its 10 digits)."""
    return [f"+7 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}", f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
            f"8{d}", f"+7{d}", f"7{d}", f"+7 ({d[:3]}) {d[3:6]} {d[6:8]} {d[8:]}", d,
            f"8-{d[:3]}-{d[3:6]}-{d[6:]}"]


def email_spellings(e):
    local, domain = e.split("@")
    return [e, f"{local.capitalize()}@{domain}", f"{local}@{domain.upper()}", f" {e} ",
            e.upper()]


def norm_phone(value):
    """The checker's own normalisation: +7 and the ten national digits."""
    if not isinstance(value, str):
        return None
    d = re.sub(r"\D", "", value.split("#")[0])
    if len(d) == 11 and d[0] == "8":
        d = "7" + d[1:]
    elif len(d) == 10:
        d = "7" + d
    return "+" + d if 11 <= len(d) <= 15 else None


def norm_email(value):
    return value.strip().lower() if isinstance(value, str) and "@" in value else None


def money(d):
    return str(d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def basket(rng):
    items = []
    for pid, name, price in rng.sample(PRODUCTS, rng.choice((1, 1, 2, 2, 3, 4))):
        qty = rng.choice(("0.5", "1.25", "2.125")) if name in WEIGHED else \
            str(rng.choice((1, 1, 1, 2, 3)))
        items.append({"product_id": pid, "name": name, "price": price, "quantity": qty})
    return items


def basket_total(items):
    return money(sum((Decimal(i["price"]) * Decimal(i["quantity"]) for i in items),
                     Decimal(0)))


class Order:
    """One order's buyer and its planned snapshots (versions 1..n)."""

    def __init__(self, oid, buyer, visit, created, plan):
        self.id, self.buyer, self.visit, self.created = oid, buyer, visit, created
        self.snapshots = {}
        for v, (status, paid, canceled, items) in enumerate(plan, start=1):
            o = {"id": oid, "account_number": f"A-{oid}", "version": v, "status": status,
                 "canceled": canceled, "paid": paid,
                 "created_at": created.format(0),
                 "updated_at": created.format(v * 7),
                 "price": basket_total(items), "currency": "RUB",
                 "buyer": buyer, "items": items}
            if visit is not None:
                o["roistat_visit"] = visit
            self.snapshots[v] = {"site": SITE, "order": o}

    @property
    def last(self):
        return len(self.snapshots)


class Created:
    """created_at/updated_at strings: a base time plus minutes."""

    def __init__(self, minute):
        self.minute = minute

    def format(self, plus):
        m = self.minute + plus
        return "2026-03-%02dT%02d:%02d:00+03:00" % (1 + m // 1440 % 28, m // 60 % 24, m % 60)


def build_orders(rng, n):
    n_people = max(3, n // 3)
    people = []
    for k in range(n_people):
        digits = "9%02d%07d" % (rng.randrange(100), k * 7919 % 10000000)
        people.append({"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "digits": digits,
                       "email": f"buyer{k}.{digits[-4:]}@example.ru"})
    regulars = people[:max(1, n_people // 10)]  # half of all orders come from a tenth
    companies = [(f"ООО \"Ромашка-{k}\"" if k % 2 else f"Vector Trade {k} LLC",
                  "77%08d" % (k * 104729 % 100000000)) for k in range(max(2, n // 25))]
    orders = []
    for i in range(n):
        oid = str(10000 + i)
        p = rng.choice(regulars) if rng.random() < 0.5 else rng.choice(people)
        r = rng.random()
        phone = rng.choice(phone_spellings(p["digits"])) if r < 0.92 else None
        email = rng.choice(email_spellings(p["email"])) if r < 0.80 or r >= 0.92 else None
        legal = rng.random() < 0.15
        company, inn = rng.choice(companies) if legal else (None, None)
        buyer = {"type": "legal" if legal else "individual", "name": p["name"],
                 "phone": phone, "email": email, "company": company, "inn": inn}
        visit = str(rng.randrange(1000000, 99999999)) if rng.random() < 0.85 else None
        items = basket(rng)
        steps = rng.choice((1, 2, 2, 3, 3, 4, 5, 5))
        change_at = rng.randrange(2, steps + 1) if steps > 1 and rng.random() < 0.25 else 0
        plan = []
        for k, status in enumerate(WALK[:steps], start=1):
            if k == change_at:
                items = basket(rng)
            plan.append((status, status in ("A", "D", "F"), False, items))
        if rng.random() < 0.15:  # a cancellation: the flag, with or without status C
            status, paid, _, items = plan[-1]
            plan.append(("C" if rng.random() < 0.5 else status, paid, True, items))
        orders.append(Order(oid, buyer, visit, Created(i % 20000), plan))
    return orders


Event = collections.namedtuple("Event", "order version kind webhook_id body")


def schedule(rng, orders, clients, seed):
    """Per client, the posts in the order it sends them. An order belongs to one client
    (the shop posts one order's changes in turn); its versions go out in order, orders
    interleave at random; now and then an old version is posted again ("stale") or two
    versions are sent at once ("race")."""
    plans = [[] for _ in range(clients)]
    for idx, o in enumerate(orders):
        plans[idx % clients].append(o)
    out = []
    for c, mine in enumerate(plans):
        nxt = {o.id: 1 for o in mine}
        live = list(mine)
        events, n_stale = [], 0
        while live:
            o = rng.choice(live)
            v = nxt[o.id]
            if v < o.last and rng.random() < 0.05:
                events.append([make_event(o, v, "race", seed), make_event(o, v + 1, "race", seed)])
                v += 2
            else:
                events.append([make_event(o, v, "post", seed)])
                v += 1
            if v > 2 and rng.random() < 0.10:
                n_stale += 1
                events.append([make_event(o, rng.randrange(1, v - 1), "stale", seed, n_stale)])
            nxt[o.id] = v
            if v > o.last:
                live.remove(o)
        out.append(events)
    return out


def make_event(order, version, kind, seed, n=0):
    body = json.dumps(order.snapshots[version], ensure_ascii=False).encode()
    wid = f"msg_{seed}_{order.id}_{version}" + (f"_stale{n}" if kind == "stale" else "")
    return Event(order.id, version, kind, wid, body)


# --- what the daemon answered ------------------------------------------------------------

class Ledger:
    """Per order: versions answered 202, versions sent, posts never answered, and any
    answer that breaks the ingest contract."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}                       # order id -> highest version answered 202
        self.sent = collections.defaultdict(collections.Counter)  # id -> version -> events
        self.unresolved = collections.defaultdict(set)
        self.bad = []                         # (order id, message)
        self.answers = collections.Counter()
        self.retries = 0

    def sending(self, ev):
        with self.lock:
            self.sent[ev.order][ev.version] += 1
            return self.acked.get(ev.order, 0)

    def answered(self, ev, acked_before, status, answer):
        with self.lock:
            if status == 202 and isinstance(answer, dict) and answer.get("accepted"):
                self.answers["202 duplicate" if answer.get("duplicate") else "202"] += 1
                if ev.version <= acked_before and not answer.get("duplicate"):
                    self.bad.append((ev.order, f"v{ev.version} ({ev.kind}) answered 202 although "
                                     f"v{acked_before} had been acknowledged before it was sent"))
                self.acked[ev.order] = max(self.acked.get(ev.order, 0), ev.version)
            elif status == 200 and isinstance(answer, dict) and answer.get("stale"):
                self.answers["200 stale"] += 1
                others = self.sent[ev.order]
                if not any(v > ev.version for v in others) and others[ev.version] < 2:
                    self.bad.append((ev.order, f"v{ev.version} ({ev.kind}) answered stale, but "
                                     "nothing as new was ever sent"))
            else:
                self.answers[str(status)] += 1
                self.bad.append((ev.order, f"v{ev.version} ({ev.kind}) answered {status}: "
                                 f"{str(answer)[:200]}"))

    def give_up(self, ev):
        with self.lock:
            self.unresolved[ev.order].add(ev.version)


# --- the chaos ---------------------------------------------------------------------------

class Chaos:
    """Owns the daemon: kills it at the scheduled moments, restarts it, and notices when
    it exits without being killed (a crash), restarting it then too."""

    def __init__(self, daemon, rng, kills, seconds, log):
        self.daemon, self.log = daemon, log
        times, t = [], 0.5
        for x in sorted(rng.uniform(0.5, max(1.0, seconds * 0.95)) for _ in range(kills)):
            t = max(x, t + 0.6)  # room for the restart
            times.append(t)
        self.kill_times = times
        self.pauses = [rng.uniform(0.0, 0.4) for _ in range(kills)]
        self.kills = 0
        self.unexpected = []  # (when, exit status, log tail)
        self.start_failures = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def _restart(self):
        for attempt in range(5):
            try:
                self.daemon.start()
                return True
            except AssertionError as e:
                self.start_failures.append(str(e)[-2000:])
                self.daemon.proc = None
                time.sleep(0.5)
        return False

    def _check_alive(self):
        p = self.daemon.proc
        if p is not None and p.poll() is not None:
            code = p.returncode
            self.daemon.log.close()
            self.daemon.proc = None
            tail = self.daemon.read_log()[-3000:]
            self.unexpected.append((time.time(), code, tail))
            self.log(f"crash-loop: the daemon exited by itself with status {code}; restarting")
            self._restart()

    def _run(self):
        t0 = time.monotonic()
        for when, pause in zip(self.kill_times, self.pauses):
            # a kill still due when the posting is over happens at once
            while time.monotonic() - t0 < when and not self.stop_flag.wait(0.05):
                self._check_alive()
            self._check_alive()
            if self.daemon.proc is None:
                continue
            self.daemon.kill9()
            self.kills += 1
            time.sleep(pause)
            if not self._restart():
                return
        while not self.stop_flag.wait(0.1):
            self._check_alive()

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        self._check_alive()


class Faults:
    """Switches faults on the emulators at random moments until stopped."""

    # (mode, least count, most count); count 0 = until the next switch. "lost" (applied,
    # answer dropped) is the one that tests exactly-once, so it comes up most often.
    ROISTAT = (("error500", 1, 4), ("error503", 1, 6), ("reset", 1, 3), ("lost", 1, 3),
               ("lost", 1, 3), ("hang", 0, 0))
    B24 = (("error500", 1, 4), ("error503", 1, 6), ("query_limit", 1, 4), ("reset", 1, 3),
           ("lost", 1, 3), ("lost", 1, 3), ("hang", 0, 0),
           # one command fails (count = commands), the rest of its batch runs on: the error
           # keyed to the command, the errors as a bare list, or no entry at all
           ("command_error:keyed", 1, 3), ("command_error:unkeyed", 1, 3),
           ("command_error:omit", 1, 3), ("command_error:keyed", 1, 3),
           ("command_error:unkeyed", 1, 3), ("command_error:omit", 1, 3))
    # every method that creates or writes a record; a failed one must neither be taken for
    # done nor, through a $result reference, write into record 1
    CREATE_METHODS = ("crm.contact.add", "crm.company.add", "crm.deal.add",
                      "crm.deal.productrows.set", "crm.deal.update")

    def __init__(self, roistat, b24, rng, late_applies=False, portal_limit=True):
        self.roistat, self.b24, self.rng = roistat, b24, rng
        if not portal_limit:  # the portal's limit is what the run measures: never faked
            self.B24 = tuple(f for f in self.B24 if f[0] != "query_limit")
        # late_applies adds Roistat "slow" answers (applied after 0.3-3 s): a request that
        # the daemon gave up on (its timeout is 2 s) or that a killed daemon left in
        # flight is then applied AFTER the restarted daemon delivered a newer snapshot.
        # The daemon sends the latest state once more [delivery] confirm_after_s after
        # such an attempt, so stragglers cannot leave a remote behind.
        if late_applies:
            self.ROISTAT = self.ROISTAT + (("slow", 1, 3), ("slow", 1, 3))
        self.slow = (300, 1500, 3000)
        self.stop_flag = threading.Event()
        self.applied = collections.Counter()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def _run(self):
        rng = self.rng
        while not self.stop_flag.wait(rng.uniform(0.2, 1.2)):
            for emu, name, table in ((self.roistat, "roistat", self.ROISTAT),
                                     (self.b24, "bitrix24", self.B24)):
                if rng.random() < 0.3:
                    emu.fault("none")
                    continue
                mode, low, high = rng.choice(table)
                spec = {"count": rng.randint(low, high) if high else 0}
                if mode == "slow":
                    spec["delay_ms"] = rng.choice(self.slow)
                labels = [mode]
                if mode.startswith("command_error:"):
                    variant = mode.split(":", 1)[1]
                    methods = rng.sample(self.CREATE_METHODS, rng.choice((1, 1, 2)))
                    spec.update(self.command_error(variant), methods=methods)
                    mode = "command_error"
                    labels = [f"{variant}:{m}" for m in methods]
                try:
                    emu.fault(mode, **spec)
                except Exception:  # the emulator is busy with a huge state; next time
                    continue
                for label in labels:
                    self.applied[f"{name}.{label}"] += 1

    @staticmethod
    def command_error(variant):
        """The fault's shape. A keyed error carries a code every client takes for "try
        again" (a permanent refusal would rightly dead-letter the order, and the checker
        would count it lost); unkeyed and omitted ones cannot be classified at all."""
        spec = {"code": "INTERNAL_SERVER_ERROR",
                "description": "injected: the command failed on the portal"}
        if variant == "unkeyed":
            spec["unkeyed"] = True
        elif variant == "omit":
            spec["omit"] = True
        return spec

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        for emu in (self.roistat, self.b24):
            emu.fault("none")


class Client(threading.Thread):
    """Posts its events in turn, paced over the chaos window, retrying each until it gets
    an answer (or the run's deadline passes)."""

    def __init__(self, urls, key, events, ledger, rng, seconds, give_up_at):
        super().__init__(daemon=True)
        self.urls, self.key, self.events, self.ledger = urls, key, events, ledger
        self.rng, self.seconds, self.give_up_at = rng, seconds, give_up_at

    def post(self, ev):
        acked_before = self.ledger.sending(ev)
        while True:
            if time.time() > self.give_up_at:
                self.ledger.give_up(ev)
                return
            try:
                # behind a load balancer each post goes to either daemon
                url = self.urls[0] if len(self.urls) == 1 else random.choice(self.urls)
                status, answer = obpost.post(url, self.key, ev.body, webhook_id=ev.webhook_id,
                                             timeout=20)
            except (OSError, http.client.HTTPException):
                status, answer = None, None
            if status is None or status == 503:
                with self.ledger.lock:
                    self.ledger.retries += 1
                time.sleep(self.rng.uniform(0.05, 0.25))
                continue
            harness.capture(answer)  # for run.py's search for secrets
            self.ledger.answered(ev, acked_before, status, answer)
            return

    def run(self):
        t0 = time.monotonic()
        n = max(1, len(self.events))
        for i, group in enumerate(self.events):
            wait = t0 + self.seconds * i / n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if len(group) == 1:
                self.post(group[0])
            else:
                racer = threading.Thread(target=self.post, args=(group[1],), daemon=True)
                racer.start()
                self.post(group[0])
                racer.join()


# --- the checker -------------------------------------------------------------------------

def map_status(table, snap):
    o = snap["order"]
    if o["canceled"]:
        return table["@canceled"]
    if o["paid"] and "@paid" in table:
        return table["@paid"]
    return table[o["status"]]


def dec(value):
    try:
        return Decimal(str(value))
    except Exception:
        return None


def roistat_diffs(snap, got):
    o = snap["order"]
    want_price = "0" if o["canceled"] else o["price"]
    diffs = []
    if got.get("status") != map_status(ROISTAT_MAP, snap):
        diffs.append(f"roistat status={got.get('status')!r}, want "
                     f"{map_status(ROISTAT_MAP, snap)!r}")
    if dec(got.get("price")) != Decimal(want_price):
        diffs.append(f"roistat price={got.get('price')!r}, want {want_price!r}")
    if got.get("roistat") != o.get("roistat_visit"):
        diffs.append(f"roistat visit={got.get('roistat')!r}, want {o.get('roistat_visit')!r}")
    return diffs


def b24_diffs(snap, deal, rows, contacts, companies):
    o = snap["order"]
    b = o["buyer"]
    diffs = []
    want = {"STAGE_ID": map_status(B24_MAP, snap), "TITLE": f"Order {o['account_number']}",
            "CATEGORY_ID": "0", "CURRENCY_ID": "RUB"}
    for k, v in want.items():
        if str(deal.get(k)) != v:
            diffs.append(f"bitrix24 {k}={deal.get(k)!r}, want {v!r}")
    if dec(deal.get("OPPORTUNITY")) != Decimal(o["price"]):
        diffs.append(f"bitrix24 OPPORTUNITY={deal.get('OPPORTUNITY')!r}, want {o['price']!r}")
    if (deal.get("UF_CRM_ROISTAT") or None) != o.get("roistat_visit"):
        diffs.append(f"bitrix24 UF_CRM_ROISTAT={deal.get('UF_CRM_ROISTAT')!r}, want "
                     f"{o.get('roistat_visit')!r}")
    have_rows = [(r.get("PRODUCT_NAME"), dec(r.get("PRICE")), dec(r.get("QUANTITY")))
                 for r in rows]
    want_rows = [(i["name"], Decimal(i["price"]), Decimal(i["quantity"])) for i in o["items"]]
    if have_rows != want_rows:
        diffs.append(f"bitrix24 product rows {have_rows}, want {want_rows}")
    phone, email = norm_phone(b.get("phone")), norm_email(b.get("email"))
    if phone or email:
        cid = str(deal.get("CONTACT_ID") or "")
        c = contacts.get(cid)
        if c is None:
            diffs.append(f"bitrix24 CONTACT_ID={deal.get('CONTACT_ID')!r} is no contact "
                         f"(buyer {b.get('phone')!r} / {b.get('email')!r})")
        else:
            phones = {norm_phone(m.get("VALUE")) for m in c.get("PHONE") or []}
            emails = {norm_email(m.get("VALUE")) for m in c.get("EMAIL") or []}
            if not ((phone and phone in phones) or (email and email in emails)):
                diffs.append(f"bitrix24 contact {cid} holds {sorted(filter(None, phones))} "
                             f"{sorted(filter(None, emails))}, not the buyer's {phone} / {email}")
    if b["type"] == "legal":
        co = companies.get(str(deal.get("COMPANY_ID") or ""))
        if co is None or co.get("TITLE") != b["company"]:
            diffs.append(f"bitrix24 COMPANY_ID={deal.get('COMPANY_ID')!r} "
                         f"({co and co.get('TITLE')!r}), want the company {b['company']!r}")
    elif str(deal.get("COMPANY_ID") or "0") != "0":
        diffs.append(f"bitrix24 COMPANY_ID={deal.get('COMPANY_ID')!r} for an individual buyer")
    return diffs


def shared_key_duplicates(records, keys_of):
    """How many records share a key (normalised phone, e-mail, title) with a record of a
    lower id; and the groups, for the report."""
    owner, dups, groups = {}, set(), collections.defaultdict(set)
    for rid in sorted(records, key=int):
        for key in keys_of(records[rid]):
            if key in owner:
                dups.add(rid)
                groups[key] |= {owner[key], rid}
            else:
                owner[key] = rid
    return len(dups), groups


def contact_keys(c):
    keys = {("phone", norm_phone(m.get("VALUE"))) for m in c.get("PHONE") or []}
    keys |= {("email", norm_email(m.get("VALUE"))) for m in c.get("EMAIL") or []}
    return {k for k in keys if k[1]}


def rows_key(rows):
    return tuple((r.get("PRODUCT_NAME"), dec(r.get("PRICE")), dec(r.get("QUANTITY")))
                 for r in rows)


def basket_key(items):
    return tuple((i["name"], Decimal(i["price"]), Decimal(i["quantity"])) for i in items)


def manager_diffs(manager, b24):
    """What happened to the manager's records (see make_manager_records): each a line."""
    out = []
    did, cid, coid = (str(manager[k]["ID"]) for k in ("deal", "contact", "company"))
    for kind, table, rid in (("deal", "deals", did), ("contact", "contacts", cid),
                             ("company", "companies", coid)):
        have = b24[table].get(rid)
        if have != manager[kind]:
            changed = sorted(k for k in set(have or {}) | set(manager[kind])
                             if (have or {}).get(k) != manager[kind].get(k))
            out.append(f"the manager's {kind} {rid} was changed: {changed}")
    if b24["productrows"].get(did, []) != manager["rows"]:
        out.append(f"the manager's deal {did} has other product rows: "
                   f"{list(rows_key(b24['productrows'].get(did, [])))}")
    for xid, d in sorted(b24["deals"].items(), key=lambda kv: int(kv[0])):
        if xid == did:
            continue
        if str(d.get("CONTACT_ID")) == cid or cid in [str(c) for c in d.get("CONTACT_IDS")
                                                      or []]:
            out.append(f"deal {xid} (order {d.get('ORIGIN_ID')}) is bound to the manager's "
                       f"contact {cid}")
        if str(d.get("COMPANY_ID")) == coid:
            out.append(f"deal {xid} (order {d.get('ORIGIN_ID')}) is bound to the manager's "
                       f"company {coid}")
    for xid, c in sorted(b24["contacts"].items(), key=lambda kv: int(kv[0])):
        if xid != cid and str(c.get("COMPANY_ID") or "") == coid:
            out.append(f"contact {xid} is bound to the manager's company {coid}")
    return out


def check(orders, ledger, rs_orders, b24, manager=None):
    """Returns (figures, detail lines). `manager`: the manager's records as made at the
    start (make_manager_records), or None when there are none."""
    by_id = {o.id: o for o in orders}
    deals = collections.defaultdict(list)
    for d in b24["deals"].values():
        if d.get("ORIGINATOR_ID") == SITE:
            deals[str(d.get("ORIGIN_ID"))].append(d)
    lost, wrong, details = [], [], []
    for oid in sorted(ledger.acked, key=int):
        o = by_id[oid]
        acked = ledger.acked[oid]
        candidates = [acked] + sorted(v for v in ledger.unresolved.get(oid, ()) if v > acked)
        got_rs = rs_orders.get(oid)
        got_deals = sorted(deals.get(oid, []), key=lambda d: int(d["ID"]))
        missing = [name for name, got in (("Roistat", got_rs), ("Bitrix24", got_deals)) if not got]
        if missing:
            lost.append(oid)
            details.append(f"LOST order {oid} (acknowledged v{acked}): not in "
                           + " nor ".join(missing))
            continue
        best = None
        for v in candidates:
            snap = o.snapshots[v]
            for deal in got_deals:  # with duplicates (counted apart), the best of them
                diffs = roistat_diffs(snap, got_rs) + b24_diffs(
                    snap, deal, b24["productrows"].get(str(deal["ID"]), []), b24["contacts"],
                    b24["companies"])
                if not diffs:
                    break
                best = best or (v, diffs)
            if not diffs:
                best = None
                break
        if best:
            wrong.append(oid)
            details.append(f"WRONG order {oid} (acknowledged v{acked}, deal "
                           f"{got_deals[0]['ID']}): " + "; ".join(best[1]))
    for oid, msg in ledger.bad:
        if oid not in wrong:
            wrong.append(oid)
        details.append(f"WRONG answer for order {oid}: {msg}")
    dup_deals = sum(len(v) - 1 for v in deals.values() if len(v) > 1)
    for oid, ds in sorted(deals.items()):
        if len(ds) > 1:
            details.append(f"DUPLICATE deals for order {oid}: ids {[d['ID'] for d in ds]}")
    dup_contacts, groups = shared_key_duplicates(b24["contacts"], contact_keys)
    for key, ids in sorted(groups.items()):
        details.append(f"DUPLICATE contacts for {key[0]} {key[1]}: ids {sorted(ids, key=int)}")
    dup_companies, cgroups = shared_key_duplicates(
        b24["companies"], lambda c: {c.get("TITLE", "").strip().lower()} - {""})
    for key, ids in sorted(cgroups.items()):
        details.append(f"DUPLICATE companies titled {key!r}: ids {sorted(ids, key=int)}")
    strays = sorted(set(deals) - set(ledger.acked) - set(ledger.unresolved))
    for oid in strays:
        details.append(f"STRAY deal for order {oid}, which was never acknowledged")
    manager_id = str(manager["deal"]["ID"]) if manager else None
    for xid, d in sorted(b24["deals"].items(), key=lambda kv: int(kv[0])):
        if d.get("ORIGINATOR_ID") != SITE and xid != manager_id:
            details.append(f"STRAY deal {xid} ({d.get('TITLE')!r}), neither an order's nor "
                           "the manager's")
    # product rows of another order: a deal whose rows are exactly another order's basket
    # and neither one of its own order's baskets nor a part of one (rows cut short are
    # "wrong", not foreign)
    own = collections.defaultdict(set)
    for o in orders:
        for snap in o.snapshots.values():
            own[o.id].add(basket_key(snap["order"]["items"]))
    owners = collections.defaultdict(set)
    for oid, keys in own.items():
        for k in keys:
            owners[k].add(oid)
    foreign = 0
    for xid, d in sorted(b24["deals"].items(), key=lambda kv: int(kv[0])):
        rows = rows_key(b24["productrows"].get(str(xid), []))
        oid = str(d.get("ORIGIN_ID")) if d.get("ORIGINATOR_ID") == SITE else None
        if not rows or (oid and any(set(rows) <= set(k) for k in own.get(oid, ()))):
            continue
        others = sorted(owners.get(rows, set()) - {oid}, key=lambda x: int(x))
        if others:
            foreign += 1
            details.append(f"FOREIGN product rows in deal {xid} (order {oid}): the basket of "
                           f"order(s) {others[:5]}")
    touched = manager_diffs(manager, b24) if manager else []
    for line in touched:
        details.append("MANAGER " + line)
    figures = {"lost": len(lost), "wrong": len(set(wrong)), "duplicate_deals": dup_deals,
               "duplicate_contacts": dup_contacts, "duplicate_companies": dup_companies,
               "manager_touched": len(touched), "foreign_rows": foreign}
    return figures, details


# --- the manager's records ---------------------------------------------------------------

MANAGER_PHONE = "+7 495 000-00-01"  # no buyer's: theirs are mobile numbers (9xx)


def make_manager_records(b24):
    """Contact 1, company 1 and deal 1 (with one product row), as a manager makes them in
    the CRM before the shop's first order: a reference to a failed command resolves to
    record 1 on a real portal, so these are the records such a defect writes into. Returns
    what they hold, for manager_diffs at the end."""
    cid = b24.control("contact", {"fields": {
        "NAME": "Manager's own client", "PHONE": [{"VALUE": MANAGER_PHONE,
                                                  "VALUE_TYPE": "WORK"}],
        "EMAIL": [{"VALUE": "client@manager.example", "VALUE_TYPE": "WORK"}]}})["id"]
    coid = b24.control("company", {"fields": {"TITLE": "Manager's own company"}})["id"]
    did = b24.control("deal", {"fields": {"TITLE": "Manager's deal", "CONTACT_ID": cid,
                                          "COMPANY_ID": coid,
                                          "COMMENTS": "negotiated by phone"}})["id"]
    if (str(cid), str(coid), str(did)) != ("1", "1", "1"):
        raise AssertionError(f"the manager's records are not the portal's first: {cid} "
                             f"{coid} {did}")
    status, answer = http_call("POST", b24.webhook_url + "crm.deal.productrows.set",
                               {"id": did, "rows": [{"PRODUCT_NAME": "Manager's service",
                                                     "PRICE": "1500.00", "QUANTITY": "1"}]},
                               {"Content-Type": "application/json"})
    if status != 200 or not isinstance(answer, dict) or answer.get("result") is not True:
        raise AssertionError(f"the manager's product row was refused: {status} {answer}")
    state = b24.state()
    return {"deal": state["deals"][str(did)], "contact": state["contacts"][str(cid)],
            "company": state["companies"][str(coid)],
            "rows": state["productrows"].get(str(did), [])}


# --- the run -----------------------------------------------------------------------------

def drained(daemon):
    r = daemon.cli("status", "--json")
    if r.returncode != 0:
        return None
    counts = json.loads(r.stdout)
    busy = {s: {k: v for k, v in c.items() if k in ("pending", "inflight", "retrying",
                                                       "waiting") and v}
            for s, c in counts.items()}
    return counts if not any(busy.values()) else None


def run(bin_path, kills, n_orders, seed=None, seconds=None, clients=8, drain_timeout=None,
        keep=False, late_applies=True, log=print, store=None, daemons=1):
    """Runs one crash loop; returns (ok, figures line). With `store` (a PostgreSQL [store]
    section) and daemons=2, two daemons share it behind one "load balancer" (each client
    post goes to either), the kills are shared out between them, and the emulated portal
    injects no QUERY_LIMIT_EXCEEDED of its own: every one it counts is the two daemons
    together going over its bucket, and the run fails on any."""
    seed = random.randrange(1 << 30) if seed is None else seed
    seconds = seconds if seconds is not None else max(10.0, n_orders / 40.0)
    drain_timeout = drain_timeout or 120.0 + n_orders / 10.0
    harness.BIN = os.path.abspath(bin_path)
    model_rng, kill_rng, fault_rng = (random.Random(f"{seed}/{k}") for k in ("model", "kill",
                                                                            "fault"))
    orders = build_orders(model_rng, n_orders)
    events = schedule(model_rng, orders, clients, seed)
    n_posts = sum(len(g) for evs in events for g in evs)
    log(f"crash-loop: seed={seed} orders={n_orders} snapshots={sum(o.last for o in orders)} "
        f"posts={n_posts} clients={clients} seconds={seconds:g} kills={kills} "
        f"bin={bin_path}")

    wd = tempfile.mkdtemp(prefix="ob-crash-")
    roistat = b24 = daemon = chaos = faults = None
    ds, chaoses = [], []
    ok = False
    line = "crash: not run"
    t_start = time.monotonic()
    try:
        roistat = Roistat(wd, rate=50)
        b24 = Bitrix24(wd, rate=10, burst=50)
        manager = make_manager_records(b24)
        ports = [free_port() for _ in range(daemons)]
        for k, port in enumerate(ports):
            ds.append(Daemon(os.path.join(wd, f"daemon{k}") if daemons > 1 else wd,
                             roistat=roistat, bitrix24=b24, store=store,
                             secret=ds[0].secret if ds else None, sections={
                "server": {"listen": f"127.0.0.1:{port}", "threads": "4"},
                # a straggler is applied at most 3 s after it was sent (Faults.slow): the
                # latest state is sent once more 4 s after an attempt whose outcome is
                # unknown
                "delivery": {"backoff_min_ms": "100", "backoff_max_ms": "1000",
                             "poll_interval_ms": "100", "visit_wait_s": "1",
                             "confirm_after_s": "4"},
                "roistat": {"rate": "40", "timeout_ms": "2000"},
                "bitrix24": {"rate": "8", "burst": "40", "timeout_ms": "2000"},
            }))
        daemon = ds[0]
        for d in ds:
            d.start()
        ledger = Ledger()
        shares = [kills // daemons + (1 if k < kills % daemons else 0) for k in range(daemons)]
        chaoses = [Chaos(d, kill_rng if k == 0 else random.Random(f"{seed}/kill{k}"),
                         shares[k], seconds, log) for k, d in enumerate(ds)]
        chaos = chaoses[0]
        faults = Faults(roistat, b24, fault_rng, late_applies, portal_limit=daemons == 1)
        give_up_at = time.time() + seconds + 120
        urls = [f"http://127.0.0.1:{port}/v1/orders" for port in ports]
        workers = [Client(urls, daemon.key, evs, ledger, random.Random(f"{seed}/client{c}"),
                          seconds, give_up_at) for c, evs in enumerate(events)]
        for c in chaoses:
            c.start()
        faults.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        t_posted = time.monotonic()
        faults.stop()
        for c in chaoses:
            c.stop()
        for d in ds:
            if d.proc is None:
                d.start()
        log(f"crash-loop: posted in {t_posted - t_start:.1f}s; answers "
            f"{dict(sorted(ledger.answers.items()))} retries={ledger.retries} "
            f"unresolved={sum(len(v) for v in ledger.unresolved.values())} "
            f"faults={sum(faults.applied.values())} {dict(sorted(faults.applied.items()))}")
        deadline = time.monotonic() + drain_timeout
        counts = None
        while time.monotonic() < deadline:
            counts = drained(daemon)
            if counts:
                break
            time.sleep(0.5)
        t_drained = time.monotonic()
        final = daemon.cli("status", "--json").stdout.strip()
        log(f"crash-loop: drain {'done' if counts else 'TIMED OUT'} in "
            f"{t_drained - t_posted:.1f}s: {final}")
        stop_error = None
        for d, c in zip(ds, chaoses):
            if d.proc.poll() is not None:
                c.unexpected.append((time.time(), d.proc.returncode, d.read_log()[-3000:]))
            try:
                d.stop()
            except AssertionError as e:
                stop_error = (stop_error or "") + str(e)[-3000:]
        rs_state = http_call("GET", roistat.base + "/_emu/state", timeout=300)[1]
        b24_state = http_call("GET", b24.base + "/_emu/state", timeout=300)[1]
        figures, details = check(orders, ledger, rs_state["orders"], b24_state, manager)
        for name, state in (("roistat", rs_state), ("bitrix24", b24_state)):
            with open(os.path.join(wd, name + "_state.json"), "w") as f:
                json.dump(state, f, ensure_ascii=False)
        with open(os.path.join(wd, "acked.json"), "w") as f:
            json.dump({"acked": ledger.acked, "unresolved": {k: sorted(v) for k, v in
                                                             ledger.unresolved.items()}}, f)
        dead = sum(c.get("dead", 0) for c in json.loads(final or "{}").values()) if final else 0
        if not counts:
            details.append(f"NOT DRAINED within {drain_timeout:g}s: {final}")
        if dead:
            details.append(f"DEAD letters after the drain: {dead}")
        unexpected = [u for c in chaoses for u in c.unexpected]
        n_kills = sum(c.kills for c in chaoses)
        for when, code, tail in unexpected:
            details.append(f"UNEXPECTED EXIT status {code}; log tail:\n{tail}")
        for text in (t for c in chaoses for t in c.start_failures):
            details.append(f"RESTART FAILED: {text}")
        if stop_error:
            details.append(f"CLEAN STOP FAILED: {stop_error}")
        daemon_log = []
        for d in ds:
            with open(d.log_path, errors="replace") as f:
                daemon_log += f.read().splitlines()
        asan = [ln for ln in daemon_log if "Sanitizer" in ln or "runtime error:" in ln]
        marks = collections.Counter()
        for ln in daemon_log:
            for mark in ("dispatch.requeued", "b24.deal_found", "b24.deal_created",
                         "deliver.ok", "deliver.not_ok", "dispatch.pause"):
                if f" {mark} " in ln:
                    marks[mark] += 1
        log(f"crash-loop: daemon log: {dict(sorted(marks.items()))}")
        for ln in asan[:20]:
            details.append("SANITIZER: " + ln.rstrip())
        line = ("crash: kills={} acked={} lost={lost} wrong={wrong} duplicate_deals="
                "{duplicate_deals} duplicate_contacts={duplicate_contacts} "
                "duplicate_companies={duplicate_companies} manager_touched={manager_touched} "
                "foreign_rows={foreign_rows} unexpected_exits={}".format(
                    n_kills, len(ledger.acked), len(unexpected), **figures))
        over_limit = b24_state["counts"]["query_limit_exceeded"]
        if daemons > 1:
            line += f" daemons={daemons} query_limit_exceeded={over_limit}"
            if over_limit:
                details.append(f"OVER THE PORTAL'S LIMIT: {over_limit} requests refused with "
                               "QUERY_LIMIT_EXCEEDED (none was injected)")
        ok = (not details and all(v == 0 for v in figures.values()) and counts is not None
              and not unexpected and n_kills == kills)
        if n_kills != kills:
            details.append(f"only {n_kills} of {kills} kills happened")
        if details:
            with open(os.path.join(wd, "problems.txt"), "w") as f:
                f.write("\n".join(details) + "\n")
            log(f"crash-loop: {len(details)} problem(s) (all in problems.txt); the first of "
                "each kind:")
            kinds = collections.Counter()
            for d in details:
                kind = d.split(" ", 1)[0]
                kinds[kind] += 1
                if kinds[kind] <= 5:
                    log("  " + d)
        b24_counts = b24_state["counts"]
        log(f"crash-loop: roistat orders={len(rs_state['orders'])} counts={rs_state['counts']}; "
            f"bitrix24 deals={len(b24_state['deals'])} contacts={len(b24_state['contacts'])} "
            f"companies={len(b24_state['companies'])} http_requests="
            f"{b24_counts['http_requests']} commands={b24_counts['commands']} "
            f"query_limit_exceeded={b24_counts['query_limit_exceeded']}; "
            f"total {time.monotonic() - t_start:.1f}s")
        return ok, line
    finally:
        for part in [faults] + chaoses:
            if part and part.thread.is_alive():
                part.stop_flag.set()
        for d in ds:
            if d.proc is not None:
                try:
                    d.kill9()
                except Exception:
                    pass
        for emu in (roistat, b24):
            if emu:
                emu.stop()
        if ok and not keep:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            log(f"crash-loop: work directory kept: {wd} (orderbridge.log, *_emu.py.log, "
                f"orderbridge.db); reproduce with --seed {seed}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=harness.BIN, help="the orderbridge binary")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs during the run")
    ap.add_argument("--orders", type=int, default=1000, help="distinct orders")
    ap.add_argument("--seed", type=int, help="the seed (random and printed when absent)")
    ap.add_argument("--seconds", type=float,
                    help="length of the chaos window (default: orders/40, at least 10)")
    ap.add_argument("--clients", type=int, default=8, help="client threads")
    ap.add_argument("--drain-timeout", type=float, help="seconds to wait for the backlog")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--no-late-applies", dest="late_applies", action="store_false",
                    help="leave out the slow Roistat answers that outlast the daemon's "
                    "timeout (so that Roistat applies a request after the daemon gave up)")
    args = ap.parse_args(argv)
    ok, line = run(args.bin, args.kills, args.orders, args.seed, args.seconds, args.clients,
                   args.drain_timeout, args.keep, args.late_applies,
                   log=lambda s: print(s, flush=True))
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
