"""Two-way sync, end to end: the real daemon, the Bitrix24 portal emulator, and a stand-in
for the shop's status endpoint (site_standin.py, which follows the module's
StatusEndpoint.php). What a shop owner sees: the deal's id on the order, the order moving
when a manager moves the deal, once, and not bouncing back; refusals in `status`.
"""
import os
import unittest

from harness import (SECRETS, Daemon, DaemonCase, Workdir, buyer, make_secret, order,
                     wait_for, write_private)
from site_standin import SiteStandIn


class TwoWayCase(DaemonCase):
    """A portal emulator, the site stand-in, and a daemon with the Bitrix24 and site sinks."""
    bitrix24_args = {"rate": 20, "burst": 50}

    def before_daemon(self):
        secret = make_secret()
        SECRETS.update((secret, secret[len("whsec_"):]))
        path = os.path.join(self.wd.path, "site-status.secret")
        write_private(path, secret + "\n")
        self.site = SiteStandIn(secret)
        self.addCleanup(self.site.stop)
        self.sections = {"site": {"status_url": self.site.url, "status_secret_file": path}}

    def post(self, snapshot):
        status, answer = self.daemon.post(snapshot)
        self.assertEqual(status, 202, answer)

    def delivery(self, order_id, sink):
        return self.daemon.delivery(order_id, sink=sink) or {}

    def wait_done(self, order_id, sink, timeout=20):
        def done():
            d = self.delivery(order_id, sink)
            return d.get("state") == "done" and d["done_rev"] == d["want_rev"]
        wait_for(done, timeout=timeout, what=f"{sink} delivery of {order_id}")

    def deal_of(self, order_id):
        return wait_for(lambda: self.b24.deal_for(order_id), what=f"the deal of {order_id}")[0]


class DealIdReachesTheSite(TwoWayCase):
    def test_the_site_learns_the_deal_once_with_a_link_to_the_portal(self):
        self.site.add("101")
        self.post(order("101", buyer=buyer("Ivan", "+7 999 111 22 33")))
        deal = self.deal_of("101")
        wait_for(lambda: self.site.orders["101"]["deal_id"] == deal["ID"],
                 what="the deal id on the site's order")
        told = [r for r in self.site.requests if r.get("order_id") == "101"]
        self.assertEqual(len(told), 1, told)
        self.assertNotIn("status", told[0])
        self.assertNotIn("canceled", told[0])
        self.assertEqual(told[0]["deal_url"], f"{self.b24.base}/crm/deal/details/{deal['ID']}/")
        self.wait_done("101", "site")
        # the next snapshot changes the deal, and the site hears nothing new
        self.post(order("101", version=2, status="P", buyer=buyer("Ivan", "+7 999 111 22 33")))
        self.wait_done("101", "bitrix24")
        self.wait_done("101", "site")
        self.assertEqual(len([r for r in self.site.requests if r.get("order_id") == "101"]), 1)
        links = {l["kind"]: l["remote_id"] for l in self.daemon.order_state("101")["links"]}
        self.assertEqual(links.get("site.deal"), deal["ID"], links)


class AnAmbiguousWayBackIsRefused(unittest.TestCase):
    def test_check_names_the_stage_two_statuses_share_until_site_map_settles_it(self):
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        url_file = os.path.join(wd.path, "b24.url")
        write_private(url_file, "https://portal.example.ru/rest/1/c0de/\n")
        sections = {"site": {"status_url": "https://shop.example.ru/status.php"},
                    "bitrix24": {"webhook_url_file": url_file},
                    "bitrix24.map": {"D": "EXECUTING"}}
        daemon = Daemon(wd.path, sections=sections)
        r = daemon.cli("check")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("[bitrix24.map] sends both A and D to stage EXECUTING", r.stderr + r.stdout)
        sections["site.map"] = {"EXECUTING": "D"}
        daemon = Daemon(wd.path, sections=sections)
        r = daemon.cli("check")
        self.assertNotIn("sends both", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
