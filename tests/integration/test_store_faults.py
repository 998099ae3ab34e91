"""Store faults: the disk under the store is full. Ingest answers 503 and
acknowledges nothing it did not store; nothing acknowledged before is lost; service
resumes by itself when the fault clears. The store lives on a small tmpfs of its own
(mounting needs root, as in CI; elsewhere these tests are skipped and say why). A
read-only remount cannot be simulated the same way: Linux refuses it while the daemon
holds the database open for writing ("mount point is busy")."""
import json
import os
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import uuid

from harness import Daemon, Roistat, Workdir, capture, http, obpost, order, wait_for


def post_with_headers(daemon, snapshot):
    """A signed POST /v1/orders: (status, parsed answer, headers) — the harness's post
    does not return the headers, and the contract's 503 promises Retry-After."""
    body = json.dumps(snapshot).encode()
    webhook_id, ts = "msg_" + uuid.uuid4().hex, int(time.time())
    req = urllib.request.Request(daemon.base + "/v1/orders", data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": obpost.sign(daemon.key, webhook_id, ts, body)})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), e.headers
    capture(raw)
    return status, json.loads(raw), headers


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def fill(path):
    """Writes a filler file until the filesystem is full."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


class StoreFaults(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir()
        self.mnt = os.path.join(self.wd.path, "store")
        ok, why = mount_tmpfs(self.mnt, "4m")
        if not ok:
            self.wd.cleanup()
            self.skipTest(f"cannot mount a tmpfs for the store ({why})")
        self.roistat = Roistat(self.wd.path)
        self.daemon = Daemon(self.wd.path, roistat=self.roistat,
                             sections={"store": {"path": os.path.join(self.mnt, "ob.db")}})
        self.daemon.start()

    def tearDown(self):
        try:
            self.daemon.stop()
        finally:
            self.roistat.stop()
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)
            self.wd.cleanup()

    def post_many(self, prefix, n):
        return {f"{prefix}{i}": self.daemon.post(order(f"{prefix}{i}")) for i in range(n)}

    def assert_refused_and_not_stored(self, answers):
        for oid, (status, answer) in answers.items():
            self.assertEqual(status, 503, (oid, answer))
            self.assertEqual(answer["error"], "store_unavailable")
            self.assertIsNone(self.daemon.order_state(oid), f"{oid} was refused yet stored")

    def test_a_full_disk_refuses_with_503_keeps_what_was_acked_and_recovers(self):
        before = self.post_many("a", 20)
        self.assertTrue(all(s == 202 for s, _ in before.values()))
        filler = fill(self.mnt)
        # a big basket makes sure the snapshot cannot fit in what is left
        big = order("full1")
        big["order"]["items"] = [{"product_id": str(i), "name": "Item " * 40,
                                  "price": "1.00", "quantity": "1"} for i in range(900)]
        status, answer, headers = post_with_headers(self.daemon, big)
        self.assertEqual((status, answer.get("error")), (503, "store_unavailable"), answer)
        # README: "`503` + `Retry-After`: the store could not commit" — seconds, a positive integer
        retry_after = headers.get("Retry-After")
        self.assertIsNotNone(retry_after, "503 store_unavailable without Retry-After")
        self.assertRegex(retry_after, r"^[1-9][0-9]*$")
        refused = self.post_many("full", 5)
        refused = {k: v for k, v in refused.items() if v[0] != 202}
        self.assertGreater(len(refused), 0, "the disk was not full enough to refuse")
        self.assertEqual(http("GET", self.daemon.base + "/healthz")[0], 503)
        os.unlink(filler)
        self.assert_refused_and_not_stored(refused)
        # the fault cleared: the same daemon accepts again, no restart
        after = self.post_many("b", 10)
        self.assertTrue(all(s == 202 for s, _ in after.values()), after)
        # /healthz caches its store probe for 3 s: healthy again within a few seconds
        wait_for(lambda: http("GET", self.daemon.base + "/healthz")[0] == 200, timeout=10,
                 what="/healthz 200 once the disk has room")
        wait_for(lambda: all(k in self.roistat.orders() for k in list(before) + list(after)),
                 timeout=30, what="every acknowledged order delivered")


if __name__ == "__main__":
    unittest.main()
