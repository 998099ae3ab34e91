"""Remote outages: Roistat or Bitrix24 down for a stretch that spans many backoff periods.

The backlog is kept (status shows it retrying), retried with backoff and jitter (the remote
sees a handful of requests during the outage, fewer in its second half than in its first,
not one per order or per poll), and delivered in full when the remote returns, paced so
that no burst trips the remote's rate limit (the emulators run at the real limits: Roistat
10 requests/s, Bitrix24 a leaky bucket of 2/s with a burst of 50). While Bitrix24 is down,
Roistat keeps receiving orders: one sink's outage does not hold the other back.

Small [delivery] backoff_min_ms/backoff_max_ms (200 ms .. 3.2 s) make a 12-second outage
"long": it covers the whole doubling ladder and then some periods at the cap.
"""
import collections
import concurrent.futures
import time
import unittest

from harness import Bitrix24, Daemon, Roistat, Workdir, order, wait_for

OUTAGE_S = 12.0
BACKOFF = {"backoff_min_ms": "200", "backoff_max_ms": "3200", "poll_interval_ms": "100",
           "visit_wait_s": "1"}
N_ORDERS = 200
# A shop's status changes while the remote is down: (order index, [(version, status,
# paid, canceled)]) for some of the backlog.
CHANGES = [(i, [(2, "P", False, False), (3, "A", True, False)]) for i in range(0, 40)] + \
          [(i, [(2, "N", False, True)]) for i in range(40, 50)]
# Hammering: one request per poll interval for the whole outage, before counting batches.
HAMMERING = OUTAGE_S / 0.1


def snapshot(i, version=1, status="N", paid=False, canceled=False):
    k = i % 40  # 40 customers, so repeat buyers share a contact
    return order(f"out{i}", version=version, status=status, paid=paid, canceled=canceled,
                 price=f"{1000 + i}.00", roistat_visit=str(5000000 + i),
                 buyer={"type": "individual", "name": f"Buyer {k}",
                        "phone": f"+7 916 555-{k // 10:02d}-{k % 10:02d}",
                        "email": f"buyer{k}@example.ru", "company": None, "inn": None},
                 items=[{"product_id": "7", "name": "Kettle", "price": f"{1000 + i}.00",
                         "quantity": "1"}])


def final_state(i):
    """(status, paid, canceled) of order i after all CHANGES."""
    last = (1, "N", False, False)
    for idx, steps in CHANGES:
        if idx == i:
            last = steps[-1]
    return last[1:]


class OutageCase(unittest.TestCase):
    sections = None

    def setUp(self):
        self.wd = Workdir()
        self.roistat = Roistat(self.wd.path, rate=10)
        self.b24 = None
        if self.with_b24:
            self.b24 = Bitrix24(self.wd.path, rate=2, burst=50)
        sections = {"delivery": dict(BACKOFF)}
        for name, keys in (self.sections or {}).items():
            sections.setdefault(name, {}).update(keys)
        self.daemon = Daemon(self.wd.path, sections=sections, roistat=self.roistat,
                             bitrix24=self.b24)
        self.daemon.start()

    def tearDown(self):
        try:
            self.daemon.stop()
        finally:
            self.roistat.stop()
            if self.b24:
                self.b24.stop()
            self.wd.cleanup()

    def post_all(self, snaps):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(self.daemon.post, snaps))
        self.assertEqual(collections.Counter(s for s, _ in answers), {202: len(snaps)}, answers)

    def run_outage(self, requests, sink):
        """Posts the backlog and the status changes while the remote is down (the fault is
        already on); returns the remote's request counts at the start, the middle and the
        end of the outage."""
        t0 = time.monotonic()
        seen = [requests()]
        self.post_all([snapshot(i) for i in range(N_ORDERS)])
        time.sleep(max(0.0, t0 + OUTAGE_S / 3 - time.monotonic()))
        self.post_all([snapshot(i, v, st, paid, canceled)
                       for i, steps in CHANGES for v, st, paid, canceled in steps[:1]])
        time.sleep(max(0.0, t0 + OUTAGE_S / 2 - time.monotonic()))
        seen.append(requests())
        self.post_all([snapshot(i, v, st, paid, canceled)
                       for i, steps in CHANGES for v, st, paid, canceled in steps[1:]])
        time.sleep(max(0.0, t0 + OUTAGE_S - time.monotonic()))
        seen.append(requests())
        # the backlog is kept, and retrying
        counts = self.daemon.counts()[sink]
        self.assertEqual(counts["done"], 0, counts)
        self.assertEqual(counts["dead"], 0, counts)
        self.assertEqual(counts["pending"] + counts["inflight"] + counts["retrying"], N_ORDERS,
                         counts)
        self.assertGreater(counts["retrying"], 0, counts)
        d = self.daemon.delivery("out0", sink)
        self.assertIn(d["state"], ("retrying", "inflight", "pending"), d)
        self.assertEqual(self.daemon.order_state("out0")["snapshot"]["order"]["version"], 3)
        return seen

    def assert_backed_off(self, seen, what):
        first, second = seen[1] - seen[0], seen[2] - seen[1]
        total = first + second
        msg = (f"{what}: {first} requests in the outage's first half, {second} in its second "
               f"(hammering would be {HAMMERING:.0f} or more)")
        print(f"\n  {msg}", end=" ")
        self.assertGreater(total, 0, "the remote was not even tried: " + msg)
        self.assertLessEqual(total, 30, msg)
        self.assertLess(total, HAMMERING / 4, msg)
        self.assertLessEqual(second, first, "the retries must thin out: " + msg)

    def assert_roistat_complete(self, timeout=60):
        def complete():
            have = self.roistat.orders()
            return len(have) == N_ORDERS and all(
                have.get(f"out{i}", {}).get("status") == self.roistat_status(i)
                for i in range(N_ORDERS))
        wait_for(complete, timeout=timeout, interval=0.5, what="every order in Roistat")
        have = self.roistat.orders()
        for i in range(N_ORDERS):
            status, paid, canceled = final_state(i)
            self.assertEqual(have[f"out{i}"]["price"], "0" if canceled else f"{1000 + i}.00")
            self.assertEqual(have[f"out{i}"]["roistat"], str(5000000 + i))

    @staticmethod
    def roistat_status(i):
        status, paid, canceled = final_state(i)
        return "canceled" if canceled else "confirmed" if paid else "new"

    def wait_drained(self, sink, timeout):
        wait_for(lambda: (lambda c: c["done"] == N_ORDERS and c["dead"] == 0)(
            self.daemon.counts()[sink]), timeout=timeout, interval=0.5,
            what=f"{sink}: every order done")


class RoistatDown(OutageCase):
    with_b24 = False
    # five orders per add-orders request: the backlog of 200 needs 40 requests once
    # Roistat is back, four seconds' worth at its limit of 10/s
    sections = {"roistat": {"batch_size": "5"}}

    def test_a_long_roistat_outage_keeps_the_backlog_and_delivers_it_within_the_limit(self):
        self.roistat.fault("error503")
        seen = self.run_outage(lambda: self.roistat.state()["counts"]["requests"], "roistat")
        self.assertEqual(self.roistat.orders(), {}, "nothing is stored while Roistat is down")
        self.assert_backed_off(seen, "Roistat down (503)")
        last_error = self.daemon.delivery("out0", "roistat")["last_error"]
        self.assertIn("503", last_error or "")

        back = time.monotonic()
        self.roistat.fault("none")
        self.assert_roistat_complete()
        self.wait_drained("roistat", 30)
        elapsed = time.monotonic() - back
        counts = self.roistat.state()["counts"]
        self.assertEqual(counts["rate_limited"], 0, "the backlog tripped Roistat's rate limit")
        self.assertGreaterEqual(counts["add_orders"], N_ORDERS // 5)
        # 40 requests at 10/s cannot all go in the first second after the outage, and must
        # not take much longer than the remaining backoff plus 4 seconds either
        self.assertLess(elapsed, 20, f"the backlog took {elapsed:.1f}s")


class Bitrix24Down(OutageCase):
    with_b24 = True
    # three orders per pass: the backlog needs well over 50 calls (a write batch per pass,
    # plus the look-ups for new buyers), more than the portal's burst of 50, so the
    # client-side leaky bucket has to pace what comes after the burst at 2 calls/s
    sections = {"bitrix24": {"orders_per_batch": "3", "timeout_ms": "1000"}}

    def b24_requests(self):
        return self.b24.state()["counts"]["http_requests"]

    def outage_and_recovery(self, mode):
        self.b24.fault(mode)
        seen = self.run_outage(self.b24_requests, "bitrix24")
        self.assertEqual(self.b24.deals(), {}, "nothing is created while Bitrix24 is down")
        self.assert_backed_off(seen, f"Bitrix24 down ({mode})")
        # Roistat was not held back by the other sink's outage
        self.assert_roistat_complete(timeout=5)
        self.assertIsNotNone(self.daemon.delivery("out0", "bitrix24")["last_error"])

        before = self.b24_requests()
        back = time.monotonic()
        self.b24.fault("none")
        self.wait_drained("bitrix24", 120)
        elapsed = time.monotonic() - back
        state = self.b24.state()
        calls = state["counts"]["http_requests"] - before
        print(f"recovery: {calls} calls in {elapsed:.1f}s", end=" ")
        self.assertEqual(state["counts"]["query_limit_exceeded"], 0,
                         "the backlog tripped Bitrix24's rate limit")
        by_origin = collections.defaultdict(list)
        for d in state["deals"].values():
            by_origin[d["ORIGIN_ID"]].append(d)
        self.assertEqual(len(by_origin), N_ORDERS)
        self.assertTrue(all(len(v) == 1 for v in by_origin.values()), "a duplicate deal")
        for i in range(N_ORDERS):
            status, paid, canceled = final_state(i)
            deal = by_origin[f"out{i}"][0]
            # no default @paid for Bitrix24: a paid order's deal follows its status code
            want = "LOSE" if canceled else \
                {"N": "NEW", "P": "PREPARATION", "A": "EXECUTING"}[status]
            self.assertEqual(deal["STAGE_ID"], want, f"out{i}")
            self.assertEqual(deal["OPPORTUNITY"], f"{1000 + i}.00")
            self.assertEqual(deal["UF_CRM_ROISTAT"], str(5000000 + i))
        self.assertEqual(len(state["contacts"]), 40, "one contact per repeat buyer")
        # more than a burst, so the pacing at 2/s shows in the time it took
        self.assertGreater(calls, 55, "the backlog should need more than a burst")
        self.assertGreaterEqual(elapsed, (calls - 50) / 2.0 * 0.9, (calls, elapsed))

    def test_a_hanging_bitrix24_is_retried_with_backoff_and_caught_up_within_its_limit(self):
        self.outage_and_recovery("hang")

    def test_a_bitrix24_resetting_connections_is_retried_with_backoff_and_caught_up(self):
        self.outage_and_recovery("reset")


if __name__ == "__main__":
    unittest.main()
