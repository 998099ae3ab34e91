"""The PostgreSQL store (issue #14), end to end against a real PostgreSQL started by
scripts/pg.sh: the pipeline and the operator's verbs on it, two daemons sharing one
database (one delivers each sink, the other takes over when it dies or stops), the
database restarted under load, a SQLite store moved in with its queue, and the errors
`check` gives for a server it cannot use."""
import json
import os
import subprocess
import threading
import time
import unittest

import harness
from harness import Bitrix24, Daemon, Roistat, Workdir, order, wait_for
import pg

SERVER = None


def setUpModule():
    global SERVER
    SERVER = pg.Server()


def tearDownModule():
    if SERVER:
        SERVER.cleanup()


def all_done(daemon, n, sinks=("roistat",)):
    c = daemon.counts()
    return all(c[s]["done"] == n and c[s]["pending"] + c[s]["inflight"] + c[s]["retrying"]
               + c[s]["waiting"] == 0 for s in sinks) and c


def log_has(daemon, text):
    return text in daemon.read_log()


class PgCase(unittest.TestCase):
    roistat_args = {}
    bitrix24_args = None
    sections = None

    def setUp(self):
        self.wd = Workdir()
        self.addCleanup(self.wd.cleanup)
        self.roistat = Roistat(self.wd.path, **self.roistat_args)
        self.addCleanup(self.roistat.stop)
        self.b24 = None
        if self.bitrix24_args is not None:
            self.b24 = Bitrix24(self.wd.path, **self.bitrix24_args)
            self.addCleanup(self.b24.stop)
        self.store = SERVER.store()

    def daemon(self, name="a", secret=None, sections=None, store=None, start=True):
        d = Daemon(os.path.join(self.wd.path, name), roistat=self.roistat, bitrix24=self.b24,
                   store=store or self.store, secret=secret,
                   sections=dict(self.sections or {}, **(sections or {})))
        self.addCleanup(d.stop)
        if start:
            d.start()
        return d


class Pipeline(PgCase):
    """One daemon on PostgreSQL: what it does on SQLite, it does here."""
    bitrix24_args = {}

    def test_orders_reach_both_remotes_and_the_operator_verbs_work(self):
        d = self.daemon()
        for i in range(1, 4):
            self.assertEqual(d.post(order(f"P{i}", version=1))[0], 202)
        self.assertEqual(d.post(order("P1", version=2, status="P", paid=True))[0], 202)
        self.assertEqual(d.post(order("P1", version=1))[0], 200)  # stale
        wait_for(lambda: all_done(d, 3, ("roistat", "bitrix24")), timeout=30,
                 what="three orders delivered to both sinks")
        rs = self.roistat.orders()
        self.assertEqual(sorted(rs), ["P1", "P2", "P3"])
        deals = self.b24.deals()
        self.assertEqual(sorted(x["ORIGIN_ID"] for x in deals.values()), ["P1", "P2", "P3"])
        # one order's report: both snapshots and each sink's delivery
        st = d.order_state("P1")
        self.assertEqual([h["version"] for h in st["history"]][:3], [1, 2, 1])
        self.assertEqual({x["sink"]: x["state"] for x in st["deliveries"]},
                         {"roistat": "done", "bitrix24": "done"})
        # the status shows who plays each role
        roles = d.counts()["roles"]
        self.assertEqual(set(roles) >= {"roistat", "bitrix24"}, True, roles)
        self.assertTrue(all(r["owner"].split(":")[1] == str(d.proc.pid) for n, r in
                            roles.items() if n in ("roistat", "bitrix24")), roles)
        text = d.cli("status", check=True).stdout
        self.assertIn("role: roistat played by", text)
        # import: a backfill file goes through the same store
        path = os.path.join(self.wd.path, "old.jsonl")
        with open(path, "w") as f:
            for i in (4, 5):
                f.write(json.dumps(order(f"P{i}")) + "\n")
        r = d.cli("import", path, check=True)
        self.assertIn("2", r.stdout + r.stderr)
        wait_for(lambda: all_done(d, 5, ("roistat", "bitrix24")), timeout=30,
                 what="imported orders delivered")
        # reconcile reads the remotes back and finds them in step
        r = d.cli("reconcile", "--since", "2020-01-01")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("drift=0", r.stdout)
        # /metrics counts what the store holds
        status, text = harness.http("GET", d.base + "/metrics")
        self.assertEqual(status, 200)
        self.assertIn('orderbridge_deliveries{sink="roistat",state="done"} 5', text)

    def test_a_dead_letter_is_retried_from_the_cli(self):
        d = self.daemon(sections={"delivery": dict(Daemon.FAST_DELIVERY, lifetime_s="1")})
        self.roistat.fault("error500", count=0)
        self.assertEqual(d.post(order("D1"))[0], 202)
        wait_for(lambda: d.counts()["roistat"]["dead"] == 1, timeout=20, what="a dead letter")
        dead = d.cli("status", "--dead", check=True).stdout
        self.assertIn("D1", dead)
        self.roistat.fault("none")
        r = d.cli("retry", "--sink", "roistat", check=True)
        self.assertIn("1 deliveries moved back", r.stdout)
        wait_for(lambda: all_done(d, 1), timeout=20, what="the retried order delivered")
        self.assertEqual(sorted(self.roistat.orders()), ["D1"])


class TwoDaemons(PgCase):
    """Two daemons on one database behind one load balancer: either takes orders, one at a
    time delivers each sink, and the other takes a sink over when its server dies (after
    [store] claim_ttl_s) or stops (at once)."""
    bitrix24_args = {}

    def holder(self, a, b, role="roistat"):
        owner = a.counts()["roles"][role]["owner"]
        return a if owner.split(":")[1] == str(a.proc.pid) else b

    def test_either_takes_orders_and_a_killed_holder_is_replaced(self):
        a = self.daemon("a")
        b = self.daemon("b", secret=a.secret)
        for i in range(10):
            self.assertEqual((a if i % 2 else b).post(order(f"T{i}"))[0], 202)
        wait_for(lambda: all_done(a, 10, ("roistat", "bitrix24")), timeout=30,
                 what="orders taken by either daemon delivered")
        holder = self.holder(a, b)
        other = b if holder is a else a
        # the other daemon did not deliver roistat: no role.taken for it in its log
        self.assertNotIn("role.taken role=roistat", other.read_log())
        holder.kill9()
        t0 = time.monotonic()
        for i in range(10, 15):
            self.assertEqual(other.post(order(f"T{i}"))[0], 202)
        wait_for(lambda: all_done(other, 15, ("roistat", "bitrix24")), timeout=30,
                 what="the survivor delivers after the claim lapses")
        took = time.monotonic() - t0
        self.assertIn("role.taken role=roistat", other.read_log())
        self.assertLess(took, 3 + 10, "taken over within the claim's ttl (3 s) and a pass")
        self.assertEqual(sorted(self.roistat.orders()),
                         sorted(f"T{i}" for i in range(15)))
        origins = [x["ORIGIN_ID"] for x in self.b24.deals().values()]
        self.assertEqual(len(origins), len(set(origins)), "one deal per order")
        self.assertEqual(len(origins), 15)

    def test_a_stopped_holder_hands_its_sinks_over_at_once(self):
        a = self.daemon("a")
        b = self.daemon("b", secret=a.secret)
        self.assertEqual(a.post(order("S1"))[0], 202)
        wait_for(lambda: all_done(a, 1), timeout=20, what="S1 delivered")
        holder = self.holder(a, b)
        other = b if holder is a else a
        holder.stop()
        self.assertEqual(other.post(order("S2"))[0], 202)
        t0 = time.monotonic()
        wait_for(lambda: all_done(other, 2), timeout=20, what="S2 delivered by the other")
        # a released claim is free at once: no wait for the 3 s ttl
        self.assertLess(time.monotonic() - t0, 2.5)

    def test_two_daemons_starting_at_once_on_an_empty_database_both_serve(self):
        store = SERVER.store()
        a = self.daemon("a", store=store, start=False)
        b = self.daemon("b", store=store, secret=a.secret, start=False)
        for d in (a, b):
            d.log = open(d.log_path, "ab")
            d.log_offset = d.log.tell()
            d.proc = subprocess.Popen([harness.BIN, "serve", "-c", d.conf], stdout=d.log,
                                      stderr=subprocess.STDOUT, env=d.env)
        a.wait_ready()
        b.wait_ready()
        db = store["url"].rsplit("/", 1)[1]
        self.assertEqual(SERVER.psql("SELECT count(*) FROM orderbridge_schema", db=db), "1")
        self.assertEqual(a.post(order("R1"))[0], 202)
        self.assertEqual(b.post(order("R2"))[0], 202)
        wait_for(lambda: all_done(a, 2, ("roistat", "bitrix24")), timeout=20,
                 what="both delivered")


class Restart(PgCase):
    """PostgreSQL restarted under load: ingest answers 503 while it is down, nothing it
    acknowledged is lost, and delivery resumes by itself."""

    def test_database_restart_under_load(self):
        d = self.daemon()
        acked, answers, stop = set(), {}, threading.Event()

        def client():
            i = 0
            while not stop.is_set():
                i += 1
                oid = f"L{i}"
                try:
                    status, _ = d.post(order(oid), timeout=5)
                except OSError:
                    status = "conn"
                answers[status] = answers.get(status, 0) + 1
                if status == 202:
                    acked.add(oid)
                time.sleep(0.01)

        t = threading.Thread(target=client)
        t.start()
        try:
            wait_for(lambda: len(acked) >= 20, timeout=20, what="orders before the restart")
            SERVER.kill()
            time.sleep(3)
            during = dict(answers)
            SERVER.start()
            n_before = len(acked)
            wait_for(lambda: len(acked) >= n_before + 20, timeout=40,
                     what="orders accepted again after the restart")
        finally:
            stop.set()
            t.join()
        self.assertGreater(during.get(503, 0), 0, f"503 while the database was down: {answers}")
        self.assertEqual(set(answers) - {202, 503}, set(), answers)
        n = len(acked)
        wait_for(lambda: d.counts()["roistat"]["done"] >= n, timeout=60,
                 what="delivery resumed by itself")
        ids = set(self.roistat.orders())
        self.assertEqual(acked - ids, set(), "every acknowledged order delivered")
        self.assertIn("503", json.dumps(answers))


class Move(PgCase):
    """An SQLite store moved into PostgreSQL with `migrate --from`: every order, its
    history, each delivery in its state (done, retrying, dead), and the daemon on
    PostgreSQL carries on from there."""

    def test_migrate_from_sqlite_keeps_the_queue(self):
        old = Daemon(os.path.join(self.wd.path, "old"), roistat=self.roistat,
                     sections={"delivery": dict(Daemon.FAST_DELIVERY, lifetime_s="2",
                                                backoff_min_ms="500", backoff_max_ms="500")})
        self.addCleanup(old.stop)
        old.start()
        for i in (1, 2):
            self.assertEqual(old.post(order(f"M{i}"))[0], 202)
        self.assertEqual(old.post(order("M1", version=2, status="P"))[0], 202)
        wait_for(lambda: all_done(old, 2), timeout=20, what="two delivered")
        self.roistat.fault("error500", count=0)
        self.assertEqual(old.post(order("M3"))[0], 202)
        wait_for(lambda: old.counts()["roistat"]["dead"] == 1, timeout=20, what="M3 dead")
        self.assertEqual(old.post(order("M4"))[0], 202)
        wait_for(lambda: old.counts()["roistat"]["retrying"] == 1, timeout=20,
                 what="M4 retrying")
        old.stop()
        before = {oid: old.order_state(oid) for oid in ("M1", "M2", "M3", "M4")}
        counts_before = old.counts()

        new = self.daemon("new", start=False)
        r = new.cli("migrate", "--from", old.db)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("copied 4 orders", r.stdout)
        self.assertIn("migrate.progress copied=4 total=4", r.stderr)
        after = {oid: new.order_state(oid) for oid in before}
        for oid in before:
            self.assertEqual(after[oid], before[oid], oid)
        moved = new.counts()["roistat"]
        for c in (moved, counts_before["roistat"]):
            c.pop("oldest_pending_age_s")  # an age: it grows while the test runs
        self.assertEqual(moved, counts_before["roistat"])
        # a second move into the same store is refused: it already holds orders
        r = new.cli("migrate", "--from", old.db)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds orders", r.stderr)
        # the daemon on PostgreSQL delivers what was owed, and a retry brings the dead back
        self.roistat.fault("none")
        new.start()
        new.cli("retry", check=True)
        wait_for(lambda: all_done(new, 4), timeout=30, what="the moved queue delivered")
        self.assertEqual(sorted(self.roistat.orders()),
                         ["M1", "M2", "M3", "M4"])


class Errors(unittest.TestCase):
    """What `check` and the verbs say about a PostgreSQL store they cannot use."""

    def setUp(self):
        self.wd = Workdir()
        self.addCleanup(self.wd.cleanup)

    def run_check(self, store, verb="check"):
        d = Daemon(self.wd.path, store=store)
        return d.cli(verb)

    def test_unreachable_server(self):
        port = harness.free_port()
        store = dict(SERVER.store(), url=f"postgresql://orderbridge@127.0.0.1:{port}/x")
        r = self.run_check(store)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, rf"\[store\] url: .*127\.0\.0\.1.*{port}")
        self.assertIn("refused", r.stderr.lower())

    def test_wrong_password(self):
        wrong = "wrong-pass-5bd1e0c2"
        harness.SECRETS.add(wrong)
        path = os.path.join(self.wd.path, "wrong.password")
        harness.write_private(path, wrong)
        r = self.run_check(dict(SERVER.store(), password_file=path))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("password authentication failed", r.stderr)
        self.assertNotIn(wrong, r.stdout + r.stderr)

    def test_password_in_the_url_is_refused(self):
        store = SERVER.store()
        store["url"] = store["url"].replace("orderbridge@", "orderbridge:hunter2@")
        harness.SECRETS.add("hunter2")
        r = self.run_check(store)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[store] url: holds a password", r.stderr)
        self.assertNotIn("hunter2", r.stdout + r.stderr)

    def test_schema_newer_than_this_program(self):
        store = SERVER.store()
        r = self.run_check(store)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("store: reached, schema up to date", r.stdout)
        db = store["url"].rsplit("/", 1)[1]
        SERVER.psql("UPDATE orderbridge_schema SET version = version + 1", db=db)
        r = self.run_check(store, "status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("newer orderbridge", r.stderr)
        r = self.run_check(store)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[store] url:", r.stderr)


if __name__ == "__main__":
    unittest.main()
