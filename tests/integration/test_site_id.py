"""The site id is compared whole (issue #10, planted bugs): a daemon configured with
`[site] id = shop.example.ru` takes snapshots of that site only. A prefix in either
direction ("shop.example.ru.evil", "shop.example.r"), a different case or a trailing dot is
another site: 400 invalid_field naming `site`, over HTTP and in `orderbridge import` alike,
and nothing is stored. The expectations are the README's contract (400, field "site"), not
anything the daemon computes."""
import json
import os
import unittest

from harness import OneDaemon, order

SITE = "shop.example.ru"
OTHERS = ["shop.example.ru.evil", "shop.example.r", "shop.example.ru.", "SHOP.EXAMPLE.RU",
          "shop.example.rux", "xshop.example.ru", "shop", ""]


def of_site(order_id, site):
    snap = order(order_id)
    snap["site"] = site
    return snap


class SiteId(OneDaemon):
    sections = {"site": {"id": SITE}}

    def test_a_snapshot_of_another_site_is_400_naming_the_site_and_not_stored(self):
        for i, site in enumerate(OTHERS):
            with self.subTest(site=site):
                status, answer = self.daemon.post(of_site(f"other{i}", site))
                self.assertEqual(status, 400, answer)
                self.assertEqual((answer.get("error"), answer.get("field")),
                                 ("invalid_field", "site"), answer)
                self.assertIsNone(self.daemon.order_state(f"other{i}"),
                                  f"a snapshot of {site!r} was stored")

    def test_a_snapshot_of_this_site_is_accepted(self):
        status, answer = self.daemon.post(of_site("mine", SITE))
        self.assertEqual(status, 202, answer)
        self.assertIsNotNone(self.daemon.order_state("mine"))

    def test_import_refuses_another_site_line_by_line(self):
        path = os.path.join(self.wd.path, "sites.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(of_site("imp-mine", SITE)) + "\n")
            for i, site in enumerate(OTHERS[:2]):
                f.write(json.dumps(of_site(f"imp-other{i}", site)) + "\n")
        r = self.daemon.cli("import", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("import.invalid line=2 order_id=imp-other0 field=site", r.stderr)
        self.assertIn("import.invalid line=3 order_id=imp-other1 field=site", r.stderr)
        self.assertIn("accepted=1 stale=0 invalid=2", r.stderr)
        self.assertIsNotNone(self.daemon.order_state("imp-mine"))
        for i in range(2):
            self.assertIsNone(self.daemon.order_state(f"imp-other{i}"))


if __name__ == "__main__":
    unittest.main()
