"""The status page, GET / behind the admin token: who may see it, that its numbers are the
store's, that a dead letter shows the remote's words and its Retry button re-arms the
delivery (only with the page's CSRF token), that an order's history is shown escaped, and
the same in headless Chromium (tests/integration/status_page.js), which keeps screenshots
in var/test-artifacts/. One daemon and one Roistat emulator for the whole class."""
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import unittest
import urllib.parse

from harness import ROOT, Daemon, Roistat, Workdir, capture, order, wait_for

SITE = os.path.join(ROOT, "tests", "site")
ARTIFACTS = os.path.join(ROOT, "var", "test-artifacts")
REFUSAL = "Emulated validation error: field price is invalid"  # roistat_emu.py error400


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", errors="replace")

    def __repr__(self):
        return f"<{self.status} {self.text[:300]!r}>"


class StatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        try:
            cls.roistat = Roistat(cls.wd.path)
            # a poll a minute: what the tests see delivered within seconds after Retry, the
            # page's wake-up of the dispatcher sent
            cls.daemon = Daemon(cls.wd.path, roistat=cls.roistat,
                                sections={"delivery": {"poll_interval_ms": "60000"}}).start()
        except BaseException:
            cls.wd.cleanup()
            raise
        cls.basic = "Basic " + base64.b64encode(
            f"operator:{cls.daemon.admin_token}".encode()).decode()
        # the first order sets Roistat's status dictionary: later faults hit add-orders
        cls.daemon.post(order("warm-up"))
        wait_for(lambda: "warm-up" in cls.roistat.orders(), what="the first order in Roistat")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
            cls.roistat.stop()
        finally:
            cls.wd.cleanup()

    # ---- helpers ----

    def request(self, method, path, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            a = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()
        capture(a.body)
        return a

    def page(self, query=""):
        a = self.request("GET", "/" + query, {"Authorization": self.basic})
        return a

    def post_retry(self, fields):
        return self.request("POST", "/retry", {"Authorization": self.basic,
                                               "Content-Type":
                                                   "application/x-www-form-urlencoded"},
                            urllib.parse.urlencode(fields).encode())

    def counts_on_page(self, text, sink):
        row = re.search(r'<tr id="queue-%s">(.*?)</tr>' % sink, text)
        self.assertIsNotNone(row, f"no queue row for {sink}")
        return {k: int(v) for k, v in
                re.findall(r'<td class="n" data-count="(\w+)">(\d+)</td>', row.group(1))}

    def csrf_of(self, text):
        tokens = set(re.findall(r'name="csrf" value="([0-9a-f]{64})"', text))
        self.assertEqual(len(tokens), 1, "one CSRF token on the page")
        return tokens.pop()

    def make_dead(self, order_id):
        """An order Roistat refuses once (HTTP 400, its validation error): a dead letter.
        Nothing else may be owed then, or the refusal could hit that order instead."""
        wait_for(lambda: all(c["pending"] + c["inflight"] + c["retrying"] + c["waiting"] == 0
                             for c in [self.daemon.counts()["roistat"]]),
                 what="nothing owed to Roistat")
        self.roistat.fault("error400", count=1)
        self.daemon.post(order(order_id))
        wait_for(lambda: (self.daemon.delivery(order_id) or {}).get("state") == "dead",
                 what=f"{order_id} dead")
        self.roistat.fault("none")

    # ---- tests ----

    def test_without_credentials_401_asks_for_basic_wrong_ones_403_right_ones_200(self):
        token = self.daemon.admin_token
        a = self.request("GET", "/")
        self.assertEqual(a.status, 401, a)
        self.assertEqual(a.headers.get("www-authenticate"), 'Basic realm="orderbridge"')
        self.assertNotIn("Queue", a.text)
        for auth in ("Bearer wrong", "Bearer " + token + "x", "Basic " +
                     base64.b64encode(b"operator:wrong").decode(),
                     "Basic " + base64.b64encode(f"{token}:x".encode()).decode()):
            with self.subTest(auth=auth.replace(token, "T")):
                a = self.request("GET", "/", {"Authorization": auth})
                self.assertEqual(a.status, 403, a)
                self.assertNotIn("Queue", a.text)
        for auth in ("Bearer " + token, self.basic,
                     "Basic " + base64.b64encode(f":{token}".encode()).decode()):
            with self.subTest(auth=auth.replace(token, "T")):
                a = self.request("GET", "/", {"Authorization": auth})
                self.assertEqual(a.status, 200, a)
                self.assertIn("<h2>Queue</h2>", a.text)
                self.assertEqual(a.headers["content-type"], "text/html; charset=utf-8")
                self.assertEqual(a.headers["content-security-policy"],
                                 "default-src 'none'; style-src 'unsafe-inline'; "
                                 "form-action 'self'; frame-ancestors 'none'")
                self.assertEqual(a.headers["x-content-type-options"], "nosniff")
                self.assertEqual(a.headers["cache-control"], "no-store")
                self.assertEqual(a.headers["referrer-policy"], "no-referrer")
                self.assertNotIn(token, a.text)
        # the order report takes Basic too now, and tells missing from wrong
        self.assertEqual(self.request("GET", "/v1/orders/warm-up",
                                      {"Authorization": self.basic}).status, 200)
        self.assertEqual(self.request("GET", "/v1/orders/warm-up",
                                      {"Authorization": "Bearer no"}).status, 403)

    def test_the_queue_numbers_are_the_stores(self):
        for i in range(3):
            self.daemon.post(order(f"q{i}"))
        wait_for(lambda: all(f"q{i}" in self.roistat.orders() for i in range(3)),
                 what="three orders in Roistat")

        def same():
            states = ("pending", "inflight", "retrying", "waiting", "done", "dead")
            store = {k: self.daemon.counts()["roistat"][k] for k in states}
            shown = self.counts_on_page(self.page().text, "roistat")
            return (store, shown) if store == shown else None
        store, shown = wait_for(same, what="the page's counts equal to `status --json`")
        self.assertGreaterEqual(shown["done"], 4)
        self.assertEqual(set(shown), {"pending", "inflight", "retrying", "waiting", "done",
                                      "dead"})

    def test_a_dead_letter_shows_the_remotes_words_and_retry_needs_the_csrf_token(self):
        self.make_dead("dl1")
        text = self.page().text
        row = re.search(r'<tr class="dead-letter" data-order="dl1" data-sink="roistat">(.*?)'
                        r'</tr>', text)
        self.assertIsNotNone(row, "the dead letter's row")
        self.assertIn(REFUSAL, row.group(1))
        self.assertIn('<button type="submit">Retry</button>', row.group(1))
        csrf = self.csrf_of(text)
        for fields in ({"order": "dl1", "sink": "roistat"},
                       {"order": "dl1", "sink": "roistat", "csrf": "0" * 64},
                       {"order": "dl1", "sink": "roistat", "csrf": csrf[:-1]},
                       {"order": "dl1", "sink": "roistat", "csrf": csrf + "0"}):
            with self.subTest(csrf=fields.get("csrf", "none")[:8]):
                a = self.post_retry(fields)
                self.assertEqual(a.status, 403, a)
                self.assertIn("csrf", a.text)
        self.assertEqual(self.daemon.delivery("dl1")["state"], "dead")
        a = self.request("POST", "/retry", {"Content-Type": "application/x-www-form-urlencoded"},
                         urllib.parse.urlencode({"order": "dl1", "sink": "roistat",
                                                 "csrf": csrf}).encode())
        self.assertEqual(a.status, 401, "the token is not a credential")
        for fields, field in (({"order": "<dl1>", "sink": "roistat"}, "order"),
                              ({"sink": "roistat"}, "order"),
                              ({"order": "dl1", "sink": "nosuch"}, "sink"),
                              ({"order": "dl1"}, "sink")):
            with self.subTest(fields=fields):
                a = self.post_retry(dict(fields, csrf=csrf))
                self.assertEqual(a.status, 400, a)
                self.assertIn(f"<code>{field}</code>", a.text)
                self.assertNotIn("<dl1>", a.text)
        self.assertEqual(self.daemon.delivery("dl1")["state"], "dead")
        a = self.post_retry({"order": "dl1", "sink": "roistat", "csrf": csrf})
        self.assertEqual(a.status, 303, a)
        self.assertEqual(a.headers["location"], "/?order=dl1")
        wait_for(lambda: "dl1" in self.roistat.orders(), timeout=10,
                 what="dl1 delivered after the retry, long before the next poll")
        wait_for(lambda: self.daemon.delivery("dl1")["state"] == "done", what="dl1 done")
        text = self.page("?order=dl1").text
        self.assertIn('<tr id="delivery-roistat" data-state="done">', text)
        self.assertNotIn('data-order="dl1"', text, "the dead letter is still listed")

    def test_an_orders_history_is_shown_escaped(self):
        self.daemon.post(order("h1", version=1, buyer={"type": "individual",
                                                        "name": "<script>alert(1)</script>",
                                                        "phone": None, "email": "a@b.ru",
                                                        "company": None, "inn": None}))
        self.daemon.post(order("h1", version=2, status="P"))
        self.daemon.post(order("h1", version=1))  # stale
        wait_for(lambda: self.daemon.delivery("h1")["state"] == "done", what="h1 done")
        a = self.page("?order=h1")
        self.assertEqual(a.status, 200, a)
        self.assertIn("<h2>Order h1</h2>", a.text)
        history = re.search(r"<h3>Snapshots received</h3><table>.*?<tbody>(.*?)</tbody>",
                            a.text).group(1)
        outcomes = re.findall(r"<td>(accepted|stale)</td>", history)
        self.assertEqual(sorted(outcomes), ["accepted", "accepted", "stale"], history)
        self.assertIn('data-state="done"', a.text)
        self.assertIn("<h3>Attempts (newest first)</h3><table>", a.text)
        self.daemon.post(order("h2", buyer={"type": "individual",
                                            "name": "<script>alert(1)</script>", "phone": None,
                                            "email": "a@b.ru", "company": None, "inn": None}))
        wait_for(lambda: self.daemon.delivery("h2")["state"] == "done", what="h2 done")
        a = self.page("?order=h2")
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", a.text)
        self.assertNotIn("<script>", a.text)

    def test_a_bad_order_id_is_400_naming_the_field_and_an_unknown_one_404(self):
        for q in ("?order=a%3Cb", "?order=" + "x" * 65, "?order=a%20b", "?order=%00"):
            with self.subTest(q=q):
                a = self.page(q)
                self.assertEqual(a.status, 400, a)
                self.assertIn("<code>order</code>", a.text)
                self.assertNotIn("<h2>Queue</h2>", a.text)
        a = self.page("?order=no-such")
        self.assertEqual(a.status, 404, a)
        self.assertIn("No such order in the store.", a.text)
        self.assertIn("<h2>Queue</h2>", a.text)
        self.assertEqual(self.page("?order=").status, 200)

    def test_in_chromium_the_retry_button_moves_the_order_to_delivered(self):
        if not os.path.isdir(os.path.join(SITE, "node_modules", "playwright-core")):
            subprocess.run(["sh", os.path.join(ROOT, "scripts", "install-site-deps.sh")],
                           check=False, timeout=600)
        node = shutil.which("node")
        self.assertIsNotNone(node, "node is needed (scripts/install-site-deps.sh)")
        self.make_dead("br1")
        os.makedirs(ARTIFACTS, exist_ok=True)
        for name in os.listdir(ARTIFACTS):
            if name.startswith("status-page"):
                os.unlink(os.path.join(ARTIFACTS, name))
        env = dict(os.environ, PAGE_BASE=self.daemon.base, PAGE_ORDER="br1",
                   PAGE_ARTIFACTS=ARTIFACTS)
        # the token goes by the environment, never on a command line
        env["PAGE_TOKEN"] = self.daemon.admin_token
        r = subprocess.run([node, os.path.join(ROOT, "tests", "integration", "status_page.js")],
                           capture_output=True, text=True, env=env, timeout=120)
        capture(r.stdout)
        capture(r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        steps = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        self.assertEqual([s["step"] for s in steps], ["dead", "retried", "delivered"], steps)
        self.assertIn(REFUSAL, steps[0]["words"])
        self.assertIn("br1", self.roistat.orders())
        self.assertEqual(self.daemon.delivery("br1")["state"], "done")
        for shot in ("status-page.png", "status-page-dead.png", "status-page-delivered.png"):
            path = os.path.join(ARTIFACTS, shot)
            self.assertTrue(os.path.exists(path), shot)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", shot)


if __name__ == "__main__":
    unittest.main()
