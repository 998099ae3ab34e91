"""The order pipeline end to end: the real daemon, the Roistat emulator, signed HTTP."""
import concurrent.futures
import json
import os
import socket
import subprocess
import time
import unittest

from harness import BIN, ROOT, DaemonCase, Roistat, Workdir, http, obpost, order, wait_for


def raw_status(port, request):
    """Sends raw bytes, returns the answer's HTTP status (for what urllib cannot send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while b"\r\n" not in data:
            got = s.recv(4096)
            if not got:
                break
            data += got
    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else 0


class PipelineCase(DaemonCase):
    roistat_args = {"rate": 10}

    def tearDown(self):
        self.daemon.stop()
        self.assert_no_secret_in(self.daemon.read_log())

    def assert_no_secret_in(self, text):
        for secret in (self.roistat.key, self.daemon.secret, self.daemon.admin_token,
                       self.daemon.secret[len("whsec_"):]):
            self.assertNotIn(secret, text, "a secret reached the log or an answer")

    def roistat_order(self, order_id, **want):
        def match():
            o = self.roistat.orders().get(order_id)
            if o and all(o.get(k) == v for k, v in want.items()):
                return o
            return None
        return wait_for(match, what=f"Roistat order {order_id} with {want}")


class EndToEnd(PipelineCase):
    def test_new_order_reaches_roistat_with_every_field(self):
        status, answer = self.daemon.post(order("123", roistat_visit="4521890"))
        self.assertEqual((status, answer["order_id"], answer["accepted"]), (202, "123", True))
        o = self.roistat_order("123")
        self.assertEqual(o["status"], "new")
        self.assertEqual(o["price"], "4990.00")
        self.assertEqual(o["roistat"], "4521890")
        self.assertEqual(o["date_create"], 1773385200)  # 2026-03-13T10:00:00+03:00
        self.assertEqual(o["name"], "Order A-123")
        self.assertEqual(o["fields"]["currency"], "RUB")
        self.assertEqual(o["fields"]["buyer_phone"], "+7 900 123-45-67")
        self.assertEqual(o["fields"]["account_number"], "A-123")
        statuses = {s["id"]: s["type"] for s in self.roistat.state()["statuses"]}
        self.assertEqual(statuses, {"new": "progress", "confirmed": "paid",
                                    "canceled": "canceled"})

    def test_status_walk_paid_then_canceled_updates_the_same_roistat_order(self):
        self.daemon.post(order("7", version=1, status="N"))
        self.roistat_order("7", status="new")
        self.daemon.post(order("7", version=2, status="N", paid=True))
        self.roistat_order("7", status="confirmed", price="4990.00")
        self.daemon.post(order("7", version=3, status="C", canceled=True))
        o = self.roistat_order("7", status="canceled")
        self.assertEqual(o["price"], "0", "a cancelled order carries no revenue")
        self.assertEqual(len(self.roistat.orders()), 1)

    def test_an_invalid_visit_is_dropped_and_the_order_kept(self):
        status, _ = self.daemon.post(order("8", roistat_visit="12;DROP TABLE"))
        self.assertEqual(status, 202)
        o = self.roistat_order("8")
        self.assertNotIn("roistat", o)
        self.assertIn("ingest.visit_dropped order_id=8", self.daemon.read_log())

    def test_the_readmes_curl_example_is_accepted(self):
        body = os.path.join(self.wd.path, "order.json")
        with open(body, "w") as f:
            json.dump(order("9"), f)
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "curl-post.sh"),
                            self.daemon.base + "/v1/orders", self.daemon.secret_file, body],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip().splitlines()[-1], "202", r.stdout + r.stderr)
        self.roistat_order("9")

    def test_healthz_answers_ok(self):
        self.assertEqual(http("GET", self.daemon.base + "/healthz"),
                         (200, {"status": "ok"}))


class Idempotency(PipelineCase):
    def test_a_repeated_webhook_id_is_answered_as_before_and_stored_once(self):
        snap = json.dumps(order("50")).encode()
        first = self.daemon.post(snap, webhook_id="msg_same")
        again = self.daemon.post(snap, webhook_id="msg_same")
        self.assertEqual(first[0], 202)
        self.assertEqual(again[0], 202)
        self.assertTrue(again[1]["duplicate"])
        self.roistat_order("50")
        history = self.daemon.order_state("50")["history"]
        self.assertEqual(len(history), 1, "the replay must not be stored again")

    def test_a_reused_webhook_id_with_another_body_is_refused(self):
        self.daemon.post(order("51"), webhook_id="msg_reuse")
        status, answer = self.daemon.post(order("51", version=2, status="P"),
                                          webhook_id="msg_reuse")
        self.assertEqual((status, answer["error"], answer["field"]),
                         (409, "webhook_id_reused", "webhook-id"))
        self.assertEqual(self.daemon.order_state("51")["snapshot"]["order"]["version"], 1)

    def test_the_same_snapshot_posted_twice_updates_roistat_once(self):
        self.daemon.post(order("52"))
        self.daemon.post(order("52"))
        self.roistat_order("52")
        time.sleep(0.5)
        self.assertEqual(self.roistat.orders()["52"]["updates"], 1)


class Stale(PipelineCase):
    def test_an_older_snapshot_changes_nothing(self):
        self.assertEqual(self.daemon.post(order("60", version=5, status="F"))[0], 202)
        status, answer = self.daemon.post(order("60", version=3, status="N"))
        self.assertEqual((status, answer.get("stale")), (200, True))
        self.roistat_order("60", status="confirmed")
        time.sleep(0.5)
        self.assertEqual(self.roistat.orders()["60"]["status"], "confirmed")

    def test_without_version_updated_at_orders_snapshots(self):
        a = order("61", status="P", updated_at="2026-03-13T10:10:00+03:00")
        b = order("61", status="N", updated_at="2026-03-13T10:05:00+03:00")
        del a["order"]["version"], b["order"]["version"]
        self.assertEqual(self.daemon.post(a)[0], 202)
        self.assertEqual(self.daemon.post(b)[0], 200)
        self.assertEqual(self.daemon.order_state("61")["snapshot"]["order"]["status"], "P")


class BadInput(PipelineCase):
    def expect(self, status, answer, code, field=None):
        self.assertEqual(status, code, answer)
        if field:
            self.assertEqual(answer.get("field"), field, answer)

    def test_each_invalid_field_is_named(self):
        cases = [
            ("price", "49.999", "order.price"),
            ("price", 4990, "order.price"),
            ("currency", "rub", "order.currency"),
            ("created_at", "yesterday", "order.created_at"),
            ("id", "1/../2", "order.id"),
            ("id", "1' OR '1'='1", "order.id"),
            ("status", "", "order.status"),
        ]
        for key, value, field in cases:
            with self.subTest(key=key, value=value):
                snap = order("70")
                snap["order"][key] = value
                status, answer = self.daemon.post(snap)
                self.expect(status, answer, 400, field)
                self.assertEqual(answer["error"], "invalid_field")
        snap = order("70")
        snap["order"]["items"][0]["quantity"] = "0"
        self.expect(*self.daemon.post(snap), 400, "order.items[0].quantity")
        snap = order("70")
        del snap["order"]["price"]
        self.expect(*self.daemon.post(snap), 400, "order.price")
        self.expect(*self.daemon.post(b"{not json"), 400, "(body)")
        other = order("70")
        other["site"] = "other.example.ru"
        self.expect(*self.daemon.post(other), 400, "site")
        self.assertIsNone(self.daemon.order_state("70"), "nothing invalid may be stored")

    def test_signatures_are_checked(self):
        body = json.dumps(order("71")).encode()
        self.expect(*obpost.post(self.daemon.base + "/v1/orders", b"x" * 32, body), 401,
                    "webhook-signature")
        self.expect(*self.daemon.post(body, timestamp=int(time.time()) - 301), 401,
                    "webhook-timestamp")
        self.expect(*self.daemon.post(body, timestamp=int(time.time()) + 301), 401,
                    "webhook-timestamp")
        headers = {"Content-Type": "application/json"}
        self.expect(*http("POST", self.daemon.base + "/v1/orders", body, headers), 401)
        # a signature for another body
        ts = int(time.time())
        sig = obpost.sign(self.daemon.key, "msg_x", ts, body)
        altered = body.replace(b"4990.00", b"1.00")
        self.expect(*http("POST", self.daemon.base + "/v1/orders", altered,
                          dict(headers, **{"webhook-id": "msg_x", "webhook-timestamp": str(ts),
                                           "webhook-signature": sig})), 401)
        self.assertIsNone(self.daemon.order_state("71"))

    def test_transport_level_refusals(self):
        base = self.daemon.base
        # a declared length over the cap is refused before the body is read
        self.assertEqual(raw_status(self.daemon.port, b"POST /v1/orders HTTP/1.1\r\n"
                                    b"Host: x\r\nContent-Type: application/json\r\n"
                                    b"Content-Length: 5000000\r\n\r\n"), 413)
        # a chunked body that grows over the cap is refused when it does (its webhook
        # headers are well-formed and current, or it would be refused on them, unread)
        chunk = b"a" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
        ts = str(int(time.time()))
        sig = obpost.sign(self.daemon.key, "msg_chunked", ts, b"")
        self.assertEqual(raw_status(self.daemon.port, b"POST /v1/orders HTTP/1.1\r\n"
                                    b"Host: x\r\nContent-Type: application/json\r\n"
                                    b"webhook-id: msg_chunked\r\nwebhook-timestamp: "
                                    + ts.encode() + b"\r\nwebhook-signature: "
                                    + sig.encode() + b"\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n" + body), 413)
        self.expect(*self.daemon.post(order("72"), headers={"Content-Type": "text/plain"}),
                    415, "Content-Type")
        self.expect(*http("GET", base + "/v1/orders"), 405)
        self.expect(*http("DELETE", base + "/healthz"), 405)
        self.expect(*http("GET", base + "/nope"), 404)
        # the daemon still serves after all that
        self.assertEqual(self.daemon.post(order("72"))[0], 202)


class AdminEndpoint(PipelineCase):
    def test_order_state_needs_the_bearer_token(self):
        self.daemon.post(order("80"))
        url = self.daemon.base + "/v1/orders/80"
        self.assertEqual(http("GET", url)[0], 401)
        self.assertEqual(http("GET", url, headers={"Authorization": "Bearer wrong"})[0], 403)
        auth = {"Authorization": "Bearer " + self.daemon.admin_token}
        wait_for(lambda: http("GET", url, headers=auth)[1]["deliveries"][0]["state"] == "done",
                 what="delivered state")
        status, doc = http("GET", url, headers=auth)
        self.assertEqual(status, 200)
        lower = {"Authorization": "bearer " + self.daemon.admin_token}
        self.assertEqual(http("GET", url, headers=lower)[0], 200,
                         "the auth scheme name is case-insensitive")
        self.assertEqual(doc["snapshot"]["order"]["id"], "80")
        self.assertEqual(doc["deliveries"][0]["sink"], "roistat")
        self.assertEqual(http("GET", self.daemon.base + "/v1/orders/nope", headers=auth)[0], 404)
        self.assertEqual(http("GET", self.daemon.base + "/v1/orders/a%27b", headers=auth)[0],
                         400)


class RemoteDown(PipelineCase):
    def test_changes_made_while_roistat_is_down_arrive_as_one_update(self):
        self.daemon.post(order("90", version=1))
        self.roistat_order("90", status="new")
        self.roistat.fault("error500")
        for v, st in enumerate(["P", "A", "D", "F", "F"], start=2):
            self.assertEqual(self.daemon.post(order("90", version=v, status=st))[0], 202)
        wait_for(lambda: (self.daemon.delivery("90") or {}).get("state") == "retrying",
                 what="retrying")
        self.assertEqual(self.roistat.orders()["90"]["status"], "new")
        self.roistat.fault("none")
        self.roistat_order("90", status="confirmed")
        wait_for(lambda: self.daemon.delivery("90")["state"] == "done", what="done")
        self.assertEqual(self.roistat.orders()["90"]["updates"], 2,
                         "five changes while down must arrive as one update")
        self.assertGreaterEqual(self.daemon.delivery("90")["done_rev"], 6)

    def test_connection_resets_and_lost_answers_are_retried_without_duplicates(self):
        self.roistat.fault("reset", count=2)
        self.daemon.post(order("91"))
        self.roistat_order("91")
        self.roistat.fault("lost", count=1)
        self.daemon.post(order("91", version=2, status="P"))
        wait_for(lambda: self.daemon.delivery("91")["state"] == "done" and
                 self.daemon.delivery("91")["done_rev"] > 1, what="delivered after lost answer")
        self.assertEqual(len(self.roistat.orders()), 1)

    def test_a_rate_limited_answer_is_retried(self):
        self.roistat.control("fault", {"mode": "none"})
        # the emulator's limit is 10/s; a daemon honouring it never sees a 429
        for i in range(30):
            self.daemon.post(order(f"r{i}"))
        wait_for(lambda: len(self.roistat.orders()) == 30, what="30 orders")
        self.assertEqual(self.roistat.state()["counts"]["rate_limited"], 0)


class RateLimitedBatching(PipelineCase):
    sections = {"roistat": {"batch_size": "1"}}

    def test_one_order_per_request_stays_under_roistats_rate_limit(self):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: self.daemon.post(order(f"b{i}")), range(40)))
        wait_for(lambda: len(self.roistat.orders()) == 40, timeout=30, what="40 orders")
        counts = self.roistat.state()["counts"]
        self.assertEqual(counts["rate_limited"], 0)
        self.assertGreaterEqual(counts["add_orders"], 40)


class VisitWaiting(PipelineCase):
    def test_an_unseen_visit_is_sent_again_later(self):
        self.roistat.control("visits", {"waiting": ["777"]})
        self.daemon.post(order("95", roistat_visit="777"))
        wait_for(lambda: (self.daemon.delivery("95") or {}).get("state") == "waiting",
                 what="waiting for the visit")
        self.assertNotIn("95", self.roistat.orders())
        self.roistat.control("visits", {"waiting": []})
        self.roistat_order("95", roistat="777")


class DeadLetters(PipelineCase):
    def test_an_unmapped_status_is_a_dead_letter_with_its_reason_and_can_be_retried(self):
        self.daemon.post(order("99", status="ZZ"))
        wait_for(lambda: (self.daemon.delivery("99") or {}).get("state") == "dead",
                 what="dead letter")
        st = self.daemon.order_state("99")
        self.assertIn('"ZZ" has no entry in [roistat.map]', st["dead_letters"][0]["reason"])
        text = self.daemon.cli("status", "99").stdout
        self.assertIn("dead", text)
        self.assertIn("has no entry in [roistat.map]", text)
        self.assertIn("dead", self.daemon.cli("status").stdout)
        # a newer snapshot with a known status revives it
        self.daemon.post(order("99", version=2, status="N"))
        self.roistat_order("99", status="new")
        r = self.daemon.cli("retry")
        self.assertEqual(r.returncode, 0)


class RoistatRefusals(PipelineCase):
    def test_a_refused_order_is_found_in_its_batch_and_dead_lettered_alone(self):
        self.daemon.post(order("first"))
        self.roistat_order("first")  # the status dictionary is set by now
        # the next two requests are refused as invalid: the batch's, then the first
        # order's on its own; the others then go through one by one
        self.roistat.fault("error400", count=2)
        path = os.path.join(self.wd.path, "three.jsonl")
        with open(path, "w") as f:
            for i in range(3):
                f.write(json.dumps(order(f"v{i}")) + "\n")
        self.assertEqual(self.daemon.cli("import", path).returncode, 0)  # one batch of 3
        wait_for(lambda: all((self.daemon.delivery(f"v{i}") or {}).get("state") in
                             ("done", "dead") for i in range(3)), timeout=30,
                 what="every order settled")
        states = {f"v{i}": self.daemon.delivery(f"v{i}")["state"] for i in range(3)}
        self.assertEqual(states, {"v0": "dead", "v1": "done", "v2": "done"})
        reason = self.daemon.order_state("v0")["dead_letters"][0]["reason"]
        self.assertIn("HTTP 400 request_data_validation_error", reason)
        self.assertIn("field price is invalid", reason)
        self.assertEqual(set(self.roistat.orders()), {"first", "v1", "v2"})


class LateApply(PipelineCase):
    sections = {"roistat": {"timeout_ms": "1000"}, "delivery": {"confirm_after_s": "4"}}

    def test_a_request_applied_after_we_gave_up_cannot_leave_roistat_behind(self):
        self.daemon.post(order("first"))
        self.roistat_order("first")
        # the next request is answered too late: Roistat applies version 1 after 2.5 s,
        # long after the daemon gave up (1 s) and delivered version 1, then version 2
        self.roistat.fault("slow", count=1, delay_ms=2500, methods=["add-orders"])
        self.daemon.post(order("late", version=1, status="N"))
        wait_for(lambda: (self.daemon.delivery("late") or {}).get("state") == "waiting",
                 what="delivered after an uncertain attempt, confirmation pending")
        self.daemon.post(order("late", version=2, status="A", paid=True))
        wait_for(lambda: self.roistat.orders().get("late", {}).get("status") == "new",
                 timeout=10, what="the late request overwriting version 2 with version 1")
        wait_for(lambda: self.daemon.delivery("late")["state"] == "done", timeout=15,
                 what="the confirmation send")
        self.assertEqual(self.roistat.orders()["late"]["status"], "confirmed",
                         "the remote must end on the latest snapshot")
        self.assertIn("outcome is unknown", json.dumps(self.daemon.order_state("late")))


class Restart(PipelineCase):
    def test_work_in_flight_at_a_kill_is_delivered_after_restart(self):
        self.roistat.fault("hang")
        self.daemon.post(order("100"))
        wait_for(lambda: (self.daemon.delivery("100") or {}).get("state") == "inflight",
                 what="in flight")
        self.daemon.kill9()
        self.roistat.fault("none")
        self.daemon.start()
        self.roistat_order("100")
        self.assertIn("dispatch.requeued sink=roistat count=1", self.daemon.read_log())

    def test_every_acknowledged_order_survives_kill_9_in_the_middle_of_a_burst(self):
        """SIGKILL while requests are in flight, at a random moment of a 32-client burst
        (after 20 to 300 of 400 answers): every order answered 202 — the daemon sent that
        answer, so before it died — is in the store after the restart and reaches Roistat.
        Orders whose request got no answer may or may not be there."""
        import random
        import sqlite3
        import threading
        rng = random.Random()
        kill_after = rng.randint(20, 300)
        self.roistat.fault("error503")
        acked, lost, lock, killed = [], [], threading.Lock(), threading.Event()

        def one(i):
            oid = f"k{i}"
            try:
                status, _ = self.daemon.post(order(oid), timeout=20)
            except OSError:  # reset, refused, or the connection closed by the kill
                with lock:
                    lost.append(oid)
                return
            with lock:
                if status == 202:
                    acked.append(oid)
                else:
                    lost.append(oid)
                if len(acked) >= kill_after and not killed.is_set():
                    killed.set()
                    self.daemon.proc.kill()  # SIGKILL, from this client's thread
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(one, range(400)))
        self.assertTrue(killed.is_set(), "the burst ended before the kill")
        self.daemon.kill9()  # reaps the killed process (a second SIGKILL is harmless)
        self.assertGreater(len(lost), 0, f"the kill after {kill_after} answers came after the "
                                         "last request: nothing was in flight")
        self.roistat.fault("none")
        self.daemon.start()
        with sqlite3.connect(self.daemon.db, timeout=30) as db:
            stored = {oid for (oid,) in db.execute("SELECT order_id FROM orders")}
        missing = sorted(set(acked) - stored)
        self.assertEqual(missing, [], f"answered 202, then lost by SIGKILL after {kill_after} "
                                      f"answers ({len(acked)} acked, {len(lost)} unanswered)")
        wait_for(lambda: set(acked) <= set(self.roistat.orders()), timeout=90,
                 what="every acknowledged order in Roistat")
        print(f"\n  SIGKILL after {kill_after} answers: {len(acked)} acked, {len(lost)} "
              f"unanswered, {len(stored) - len(acked)} stored without an answer", end=" ")

    def test_statuses_are_sent_again_only_when_the_configuration_changes(self):
        self.daemon.post(order("110"))
        self.roistat_order("110")
        self.daemon.stop()
        self.daemon.start()
        self.daemon.post(order("111"))
        self.roistat_order("111")
        self.assertEqual(self.roistat.state()["counts"]["set_statuses"], 1)
        self.daemon.stop()
        with open(self.daemon.conf, "a") as f:
            f.write("\n[roistat.statuses]\nnew = progress, Новый\nok = paid, Оплачен\n"
                    "no = canceled, Отменён\n[roistat.map]\n@canceled = no\n@paid = ok\n"
                    "N = new\nP = new\nA = ok\nD = ok\nF = ok\nC = no\n")
        self.daemon.start()
        self.daemon.post(order("112", status="F"))
        self.roistat_order("112", status="ok")
        self.assertEqual(self.roistat.state()["counts"]["set_statuses"], 2)
        self.assertEqual({s["name"] for s in self.roistat.state()["statuses"]},
                         {"Новый", "Оплачен", "Отменён"})


class Import(PipelineCase):
    def test_import_stores_valid_lines_reports_bad_ones_and_the_daemon_delivers(self):
        path = os.path.join(self.wd.path, "backfill.jsonl")
        with open(path, "w") as f:
            for i in range(300):
                f.write(json.dumps(order(f"imp{i}", status="F")) + "\n")
            f.write('{"site":"shop.example.ru","order":{"id":"bad"}}\n')
            f.write("\n")
        r = self.daemon.cli("import", path)
        self.assertEqual(r.returncode, 1, "a bad line makes the exit status 1")
        self.assertIn("import.invalid line=301 field=order.status", r.stderr)
        self.assertIn("import.done lines=302 accepted=300 stale=0 invalid=1", r.stderr)
        wait_for(lambda: len(self.roistat.orders()) == 300, timeout=30, what="300 imported")
        again = self.daemon.cli("import", path)
        self.assertIn("accepted=0 stale=300", again.stderr)


class GroupCommit(PipelineCase):
    sections = {"log": {"level": "debug"}}

    def test_concurrent_posts_are_all_committed_several_per_transaction(self):
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda i: self.daemon.post(order(f"g{i}")), range(300)))
        self.assertTrue(all(s == 202 for s, _ in answers))
        counts = self.daemon.counts()["roistat"]
        states = ("pending", "inflight", "retrying", "waiting", "done", "dead")
        self.assertEqual(sum(counts[k] for k in states), 300, counts)
        self.assertEqual(counts["dead"], 0)
        wait_for(lambda: len(self.roistat.orders()) == 300, timeout=30, what="300 delivered")
        jobs = [int(line.split(" jobs=")[1].split()[0])
                for line in self.daemon.read_log().splitlines() if " ingest.commit " in line]
        self.assertEqual(sum(jobs), 300)
        self.assertLess(len(jobs), 300, "32 concurrent clients must share commits")


class Cli(unittest.TestCase):
    def run_bin(self, *args):
        return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)

    def test_help_explains_every_verb(self):
        out = self.run_bin("--help").stdout
        for verb in ("serve", "check", "import", "status", "retry"):
            self.assertIn(verb, out)
            self.assertEqual(self.run_bin(verb, "--help").returncode, 0)
        self.assertIn("batch_size", self.run_bin("--keys").stdout)

    def test_check_names_file_line_and_key(self):
        wd = Workdir()
        try:
            conf = os.path.join(wd.path, "bad.conf")
            with open(conf, "w") as f:
                f.write("[server]\nlisten = 127.0.0.1:8088\nmax_body_bytes = 12\n"
                        "[roistat]\nurl = http://roistat.example.com/api/v1\nbogus = 1\n"
                        "[nosuch]\nx = 1\n")
            r = self.run_bin("check", "-c", conf)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{conf}:3: [server] max_body_bytes = 12: must be between", r.stderr)
            self.assertIn(f"{conf}:6: [roistat] bogus: unknown key", r.stderr)
            self.assertIn(f"{conf}:7: [nosuch]: unknown section", r.stderr)
            with open(conf, "w") as f:
                f.write("[roistat]\nurl = http://roistat.example.com/api/v1\nproject = 1\n")
            r = self.run_bin("check", "-c", conf)
            self.assertIn(":2: [roistat] url: must be https:// unless the host is a loopback",
                          r.stderr)
            self.assertIn("api_key_file: required", r.stderr)
            self.assertEqual(self.run_bin("check", "-c", "/nonexistent.conf").returncode, 1)
        finally:
            wd.cleanup()

    def test_an_unknown_sink_is_refused_by_status_and_retry_naming_the_known_ones(self):
        wd = Workdir()
        try:
            conf, db = os.path.join(wd.path, "ok.conf"), os.path.join(wd.path, "ob.db")
            with open(conf, "w") as f:
                f.write(f"[store]\npath = {db}\n")
            for verb in ("status", "retry"):
                r = self.run_bin(verb, "-c", conf, "--sink", "roistatt")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"orderbridge {verb}: unknown sink roistatt (configured: none; "
                              "every kind: roistat, bitrix24, site)", r.stderr)
                self.assertEqual(r.stdout, "")
            self.assertFalse(os.path.exists(db), "refused before the store is opened")
            # a known sink, enabled or not, is one row; without --sink every kind is shown
            r = self.run_bin("status", "-c", conf, "--json", "--sink", "bitrix24")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(list(json.loads(r.stdout)), ["bitrix24"])
            r = self.run_bin("status", "-c", conf, "--json")
            self.assertEqual(list(json.loads(r.stdout)), ["roistat", "bitrix24", "site"])
            r = self.run_bin("status", "-c", conf, "--sink", "roistat")
            self.assertEqual([line.split()[0] for line in r.stdout.splitlines()],
                             ["sink", "roistat"])
            r = self.run_bin("retry", "-c", conf, "--sink", "roistat")
            self.assertEqual((r.returncode, r.stdout), (0, "0 deliveries moved back to pending\n"))
        finally:
            wd.cleanup()

    def test_check_and_stages_name_the_sinks_that_are_off(self):
        wd = Workdir()
        try:
            conf = os.path.join(wd.path, "ok.conf")
            with open(conf, "w") as f:
                f.write(f"[store]\npath = {wd.path}/ob.db\n[roistat]\nenabled = no\n")
            r = self.run_bin("check", "-c", conf)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.splitlines()[1:], ["  roistat: disabled",
                                                         "  bitrix24: disabled",
                                                         "  site: disabled", f"{conf}: ok"])
            r = self.run_bin("stages", "-c", conf)
            self.assertEqual(r.returncode, 1)
            self.assertIn("orderbridge stages: [bitrix24] is not configured", r.stderr)
        finally:
            wd.cleanup()


if __name__ == "__main__":
    unittest.main()
