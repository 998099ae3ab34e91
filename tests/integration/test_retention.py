"""Retention: with [store] retain_days set, old superseded snapshot versions and old
attempts are pruned at start (and hourly), the latest version of every order stays, and a
store made without incremental vacuum is converted once, logged with its duration.
Old data is made by rewriting the timestamps of a stopped daemon's store."""
import sqlite3
import unittest

from harness import DaemonCase, order, query, wait_for

DAY_MS = 24 * 3600 * 1000


class PruneAtStart(DaemonCase):
    roistat_args = {}
    sections = {"store": {"retain_days": "1"}}

    def test_old_versions_go_the_latest_stays_and_the_store_is_converted(self):
        ids = [f"r{i}" for i in range(5)]
        for v in (1, 2, 3):
            for i in ids:
                self.assertEqual(self.daemon.post(order(i, version=v))[0], 202)
            wait_for(lambda: all((self.daemon.delivery(i) or {}).get("state") == "done"
                                 and self.daemon.delivery(i)["done_rev"]
                                 == self.daemon.order_state(i)["rev"] for i in ids),
                     what=f"version {v} delivered")
        self.daemon.stop()
        db = self.daemon.db
        self.assertEqual(query(db, "SELECT count(*) FROM snapshots")[0][0], 15)
        # ten days older, and made the way an older orderbridge made files
        con = sqlite3.connect(db)
        con.execute("UPDATE snapshots SET received_at = received_at - ?", (10 * DAY_MS,))
        con.execute("UPDATE attempts SET at = at - ?", (10 * DAY_MS,))
        con.commit()
        con.execute("PRAGMA auto_vacuum=NONE")
        con.execute("VACUUM")
        con.close()
        self.assertEqual(query(db, "PRAGMA auto_vacuum")[0][0], 0)

        self.daemon.start()
        wait_for(lambda: " store.pruned " in self.daemon.read_log(), what="store.pruned")
        log = self.daemon.read_log()
        self.assertRegex(log, r"store\.converted auto_vacuum=incremental ms=\d+")
        self.assertRegex(log, r"store\.pruned versions=10 attempts=10 bytes_freed=\d+ ms=\d+")
        self.assertEqual(query(db, "PRAGMA auto_vacuum")[0][0], 2)
        self.assertEqual(query(db, "PRAGMA freelist_count")[0][0], 0)
        rows = query(db, "SELECT order_id, version FROM snapshots ORDER BY order_id")
        self.assertEqual(rows, [(i, 3) for i in ids])
        # one attempt per delivery is left, the last (ok, for version 3)
        self.assertEqual(query(db, "SELECT count(*) FROM attempts")[0][0], 5)
        st = self.daemon.order_state("r0")
        self.assertEqual([h["version"] for h in st["history"]], [3])
        self.assertEqual(st["deliveries"][0]["state"], "done")
        # the store still takes and delivers new versions
        self.assertEqual(self.daemon.post(order("r0", version=4))[0], 202)
        wait_for(lambda: (self.daemon.delivery("r0") or {}).get("done_rev")
                 == self.daemon.order_state("r0")["rev"], what="version 4 delivered")


if __name__ == "__main__":
    unittest.main()
