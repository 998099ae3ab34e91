"""Which snapshot of an order is newer, through HTTP: the README's table ("Whether a
snapshot replaces the stored one"), each pair posted both ways round to a running daemon.
The expectations are the table's, written out here, not computed by the product: a key
both snapshots carry decides (`version` first, then `updated_at`), equal is stale, and with
no key in common (one has only `version`, the other only `updated_at`) the incoming one is
accepted whichever came first."""
import itertools
import unittest

from harness import OneDaemon, order

T0 = "2026-03-13T10:05:00+03:00"
T_LATER = "2026-03-13T10:06:00+03:00"
T_EARLIER = "2026-03-13T10:04:00+03:00"


def keyed(order_id, status, version=None, updated_at=None):
    """A valid snapshot carrying only the ordering keys given."""
    snap = order(order_id, status=status)
    del snap["order"]["version"], snap["order"]["updated_at"]
    if version is not None:
        snap["order"]["version"] = version
    if updated_at is not None:
        snap["order"]["updated_at"] = updated_at
    return snap


# (why, keys of A, keys of B, A posted over B is accepted, B posted over A is accepted)
TABLE = [
    ("version only, greater", dict(version=5), dict(version=4), True, False),
    ("version only, the same", dict(version=4), dict(version=4), False, False),
    ("updated_at only, later", dict(updated_at=T_LATER), dict(updated_at=T0), True, False),
    ("updated_at only, the same", dict(updated_at=T0), dict(updated_at=T0), False, False),
    ("both: version decides against the time", dict(version=5, updated_at=T_EARLIER),
     dict(version=4, updated_at=T0), True, False),
    ("both: equal version, later time", dict(version=4, updated_at=T_LATER),
     dict(version=4, updated_at=T0), False, False),
    ("version only vs both: greater", dict(version=5), dict(version=4, updated_at=T0),
     True, False),
    ("version only vs both: the same", dict(version=4), dict(version=4, updated_at=T0),
     False, False),
    ("updated_at only vs both: later", dict(updated_at=T_LATER),
     dict(version=9, updated_at=T0), True, False),
    ("updated_at only vs both: the same", dict(updated_at=T0), dict(version=9, updated_at=T0),
     False, False),
    ("no common key: small version, late time", dict(version=1), dict(updated_at=T_LATER),
     True, True),
    ("no common key: large version, early time", dict(version=1000000),
     dict(updated_at=T_EARLIER), True, True),
]


class Ordering(OneDaemon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ids = itertools.count(1)

    def post_pair(self, first, second):
        """Posts `first` then `second` for a fresh order; returns the second's answer and
        the status of the snapshot stored at the end ("first" or "second")."""
        order_id = f"ord{next(self.ids)}"
        status, answer = self.daemon.post(keyed(order_id, "F", **first))
        self.assertEqual(status, 202, answer)
        status, answer = self.daemon.post(keyed(order_id, "S", **second))
        return order_id, status, answer

    def expect(self, why, first, second, accepted):
        order_id, status, answer = self.post_pair(first, second)
        got = (status, answer.get("order_id"), answer.get("accepted"), answer.get("stale"))
        want = (202, order_id, True, None) if accepted else (200, order_id, None, True)
        self.assertEqual(got, want, f"{why}: {first} then {second}")

    def test_the_readme_table_both_ways_round(self):
        for why, a, b, a_over_b, b_over_a in TABLE:
            with self.subTest(why=why, order="b then a"):
                self.expect(why, b, a, a_over_b)
            with self.subTest(why=why, order="a then b"):
                self.expect(why, a, b, b_over_a)

    def test_a_version_only_snapshot_after_an_updated_at_only_one_is_stored(self):
        # the report: the site switched from updated_at to version (module upgrade)
        for first, second in ((dict(updated_at=T_LATER), dict(version=1)),
                              (dict(version=7), dict(updated_at=T_EARLIER))):
            with self.subTest(first=first, second=second):
                order_id, status, answer = self.post_pair(first, second)
                self.assertEqual(status, 202, answer)
                stored = self.daemon.order_state(order_id)["snapshot"]["order"]
                self.assertEqual(stored["status"], "S", "the later arrival is the one kept")


if __name__ == "__main__":
    unittest.main()
