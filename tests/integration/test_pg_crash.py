"""The crash loop with two daemons sharing one PostgreSQL (issue #14): SIGKILL to either at
random moments, faults in both emulators, clients posting to either as behind a load
balancer. Nothing acknowledged may be lost or wrong, no deal, contact or company
duplicated, and the two together must never go over the portal's request limit (the
emulated portal injects no QUERY_LIMIT_EXCEEDED here: every one it counts is real).

The seed is random and printed on failure; ORDERBRIDGE_CRASH_SEED=S repeats a run."""
import os
import random
import re
import unittest

import crash_loop
import pg
from harness import BIN

FIGURES = re.compile(r"^crash: kills=(\d+) acked=(\d+)((?: \w+=\d+)+)$")


class TwoDaemonCrashLoop(unittest.TestCase):
    def setUp(self):
        self.server = pg.Server()
        self.addCleanup(self.server.cleanup)

    def test_kill_9_either_daemon_loses_duplicates_and_overruns_nothing(self):
        env_seed = os.environ.get("ORDERBRIDGE_CRASH_SEED")
        seed = int(env_seed) if env_seed else random.randrange(1 << 30)
        lines = []
        ok, line = crash_loop.run(BIN, kills=4, n_orders=150, seed=seed, seconds=12,
                                  drain_timeout=90, log=lines.append,
                                  store=self.server.store(), daemons=2)
        print(f"\n  {line} (seed {seed})", end=" ")
        report = "\n".join(lines + [line])
        m = FIGURES.match(line)
        self.assertIsNotNone(m, report)
        self.assertEqual(int(m.group(1)), 4, report)
        self.assertGreaterEqual(int(m.group(2)), 140, report)
        others = dict(kv.split("=") for kv in m.group(3).split())
        self.assertEqual(others.get("daemons"), "2", report)
        self.assertIn("query_limit_exceeded", others, report)
        self.assertEqual({k for k, v in others.items() if v != "0" and k != "daemons"}, set(),
                         report)
        self.assertTrue(ok, report)


if __name__ == "__main__":
    unittest.main()
