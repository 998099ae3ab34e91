"""GET /metrics against the real daemon and the Roistat emulator, parsed with Prometheus'
own text parser (Debian's python3-prometheus-client), each value checked against the store
and against what the test did."""
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

from harness import DaemonCase, http, order, query, wait_for

sys.path.append("/usr/lib/python3/dist-packages")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def other_address():
    """A non-loopback address of this machine, or None."""
    try:
        for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split():
            if "." in a and not a.startswith("127."):
                return a
    except OSError:
        pass
    return None


class Metrics(DaemonCase):
    roistat_args = {"rate": 10}
    sections = {"server": {"listen": "0.0.0.0:0"}, "delivery": {"reconcile_interval": "0"}}

    def scrape(self, base=None, headers=None):
        req = urllib.request.Request((base or self.daemon.base) + "/metrics", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, None, e.read().decode()

    def test_values_match_the_store_and_the_requests(self):
        ids = ["mx-7731", "mx-7732", "mx-7733"]
        for i in ids:
            self.assertEqual(self.daemon.post(order(i))[0], 202)
        self.assertEqual(self.daemon.post(order("mx-7731"))[0], 200)  # stale
        db = self.daemon.db
        wait_for(lambda: query(db, "SELECT count(*) FROM deliveries WHERE state='done'")[0][0] == 3,
                 what="3 deliveries done")
        status, ctype, text = self.scrape()
        self.assertEqual((status, ctype), (200, "text/plain; version=0.0.4; charset=utf-8"))
        m = samples(text)
        for state in ("pending", "inflight", "retrying", "waiting", "done", "dead"):
            n = query(db, "SELECT count(*) FROM deliveries WHERE sink='roistat' AND state=?", state)[0][0]
            self.assertEqual(m[("orderbridge_deliveries", (("sink", "roistat"), ("state", state)))], n, state)
        for outcome, n in query(db, "SELECT outcome, count(*) FROM attempts WHERE sink='roistat' GROUP BY outcome"):
            self.assertEqual(m[("orderbridge_delivery_attempts_total",
                                (("outcome", outcome), ("sink", "roistat")))], n)
        self.assertEqual(m[("orderbridge_http_requests_total", (("code", "202"), ("route", "/v1/orders")))], 3)
        self.assertEqual(m[("orderbridge_http_requests_total", (("code", "200"), ("route", "/v1/orders")))], 1)
        calls = self.roistat.state()["counts"]["requests"]
        self.assertEqual(m[("orderbridge_remote_request_duration_seconds_count", (("sink", "roistat"),))], calls)
        self.assertEqual(m[("orderbridge_dead_letters", (("sink", "roistat"),))], 0)
        self.assertEqual(m[("orderbridge_sink_paused", (("reason", "remote"), ("sink", "roistat")))], 0)
        self.assertGreater(m[("orderbridge_store_size_bytes", ())], 0)
        self.assertEqual(m[("orderbridge_intake_commit_duration_seconds_count", ())], 4)
        self.assertGreaterEqual(m[("orderbridge_ratelimit_tokens", (("sink", "roistat"),))], 0)
        self.assertEqual(m[("orderbridge_build_info", (("version", "0.1.0"),))], 1)
        for secret in ("mx-77", "900 123", "9001234567", self.roistat.key, self.daemon.admin_token,
                       self.daemon.secret):
            self.assertNotIn(secret, text)

    def test_a_dead_letter_a_refused_key_and_the_oldest_owed_age(self):
        """The failure side: a refusal counted as a dead letter, a refused key as
        paused{reason="auth"}, and the order it leaves owed as its age, each against the
        store."""
        db = self.daemon.db
        self.roistat.fault("error400", count=1)
        self.assertEqual(self.daemon.post(order("mx-dead"))[0], 202)
        wait_for(lambda: (self.daemon.delivery("mx-dead") or {}).get("state") == "dead",
                 what="mx-dead dead")
        self.roistat.fault("answer_error", error="authentication_failed",
                           description="Invalid API key")
        self.assertEqual(self.daemon.post(order("mx-owed"))[0], 202)

        def paused():
            m = samples(self.scrape()[2])
            return m[("orderbridge_sink_paused", (("reason", "auth"), ("sink", "roistat")))] == 1 and m
        m = wait_for(paused, what="paused{reason=auth} 1")
        self.assertEqual(m[("orderbridge_sink_paused", (("reason", "remote"), ("sink", "roistat")))], 0)
        dead = query(db, "SELECT count(*) FROM deliveries WHERE sink='roistat' AND state='dead'")[0][0]
        self.assertEqual(dead, 1)
        self.assertEqual(m[("orderbridge_dead_letters", (("sink", "roistat"),))], dead)
        self.assertEqual(m[("orderbridge_deliveries", (("sink", "roistat"), ("state", "dead")))], dead)
        self.assertEqual(m[("orderbridge_deliveries", (("sink", "roistat"), ("state", "done")))], 0)
        owed = query(db, "SELECT count(*) FROM deliveries WHERE sink='roistat' AND "
                         "state IN ('pending','inflight','retrying','waiting')")[0][0]
        self.assertEqual(owed, 1)
        time.sleep(1.2)
        age = samples(self.scrape()[2])[("orderbridge_delivery_oldest_pending_age_seconds",
                                          (("sink", "roistat"),))]
        self.assertGreaterEqual(age, 1.0)
        self.assertLess(age, 60)
        self.assertGreaterEqual(m[("orderbridge_delivery_attempts_total",
                                   (("outcome", "permfail"), ("sink", "roistat")))], 1)
        self.roistat.fault("none")

    def test_a_peer_not_on_loopback_needs_the_token(self):
        addr = other_address()
        if not addr:
            self.skipTest("no non-loopback address on this machine")
        base = f"http://{addr}:{self.daemon.port}"
        self.assertEqual(self.scrape(base)[0], 401)
        self.assertEqual(self.scrape(base, {"Authorization": "Bearer wrong-token-0123456789"})[0], 401)
        status, _, text = self.scrape(base, {"Authorization": "Bearer " + self.daemon.admin_token})
        self.assertEqual(status, 200)
        self.assertIn("orderbridge_build_info", text)


if __name__ == "__main__":
    unittest.main()
