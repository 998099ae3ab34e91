"""systemd integration (issue #12): what systemd sees of the daemon, without systemd.

A fake $NOTIFY_SOCKET (an AF_UNIX datagram socket the test binds, as systemd does) must
receive READY=1 only once the listener answers, WATCHDOG=1 every half $WATCHDOG_USEC while
every delivery loop is alive and none while one is wedged, and STOPPING=1 on SIGTERM. With
$JOURNAL_STREAM naming stderr, each log line carries its sd-daemon priority ("<3>" error,
"<4>" warn, "<6>" info, "<7>" debug), and without it none. A secret comes from
$CREDENTIALS_DIRECTORY (LoadCredential=) when no *_file key names it. SIGHUP applies a new
[log] level and keeps the running configuration when the new file is broken. The unit in
contrib/ passes `systemd-analyze verify` and scores an exposure of at most 2.0.
"""
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import Daemon, Roistat, Workdir, free_port, http, order, wait_for, write_private

WATCHDOG_USEC = 200000          # pings every 100 ms; a loop is wedged after 20 x 200 ms
PREFIX = re.compile(r"^<([0-7])>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\w+) ")


class NotifySocket:
    """What systemd listens on: every datagram the daemon sends, in order. A thread reads
    them as they come, as systemd does (a full socket would block the sender)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                self.queue.put(self.sock.recv(4096).decode())
            except OSError:
                return

    def recv(self, timeout):
        """The next datagram's text, or None after `timeout` seconds."""
        try:
            return self.queue.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return None

    def drain(self):
        got = []
        while True:
            try:
                got.append(self.queue.get_nowait())
            except queue.Empty:
                return got

    def messages_for(self, seconds):
        got, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None:
                got.append(msg)
        return got

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Notify(unittest.TestCase):
    """One daemon under a fake systemd: READY, the watchdog (alive, wedged, alive again),
    then STOPPING. The tests run in their numbered order on the one daemon."""

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        cls.roistat = Roistat(cls.wd.path)
        cls.notify = NotifySocket(os.path.join(cls.wd.path, "notify.sock"))
        cls.port = free_port()
        # a pass that hangs on the remote stays in the pass (timeout far above the stall)
        cls.daemon = Daemon(cls.wd.path, roistat=cls.roistat,
                            sections={"server": {"listen": f"127.0.0.1:{cls.port}"},
                                      "roistat": {"timeout_ms": "300000"}},
                            env={"NOTIFY_SOCKET": cls.notify.path,
                                 "WATCHDOG_USEC": str(WATCHDOG_USEC)})
        d = cls.daemon
        d.log = open(d.log_path, "ab")
        d.log_offset = d.log.tell()
        d.proc = subprocess.Popen([harness.BIN, "serve", "-c", d.conf], stdout=d.log,
                                  stderr=subprocess.STDOUT, env=d.env)
        # at the moment READY=1 arrives: does the listener answer, what has been logged
        cls.ready_msg = cls.notify.recv(30)
        cls.log_at_ready = d.read_log()
        try:
            cls.health_at_ready = http("GET", f"http://127.0.0.1:{cls.port}/healthz")[0]
        except OSError as e:
            cls.health_at_ready = repr(e)
        d.wait_ready()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.roistat.stop()
            cls.notify.close()
            cls.wd.cleanup()

    def test_1_ready_is_sent_once_the_listener_answers(self):
        self.assertIsNotNone(self.ready_msg, "no READY=1 within 30 s")
        self.assertEqual(self.ready_msg.split("\n")[0], "READY=1")
        self.assertIn("STATUS=ready", self.ready_msg)
        # everything serve starts is up before READY: the sink's loop, then the listener
        self.assertIn("dispatch.started sink=roistat", self.log_at_ready)
        self.assertIn(" serve.ready ", self.log_at_ready)
        self.assertIn(self.health_at_ready, (200, 503), "the listener did not answer at READY")

    def test_2_watchdog_pings_every_half_interval_while_loops_are_alive(self):
        self.notify.drain()
        got = self.notify.messages_for(1.0)
        pings = [m for m in got if m == "WATCHDOG=1"]
        # one per 100 ms: 10 in a second, give or take a loaded machine
        self.assertGreaterEqual(len(pings), 5, got)
        self.assertLessEqual(len(pings), 12, got)
        self.assertNotIn("READY=1", "".join(got))  # READY once, not again

    def test_3_a_wedged_delivery_loop_stops_the_pings_until_it_comes_back(self):
        d, rs = self.daemon, self.roistat
        rs.fault("hang")  # every request held until the fault changes
        self.assertEqual(d.post(order("wd-1"))[0], 202)
        wait_for(lambda: " watchdog.withheld " in d.read_log(), timeout=20,
                 what="watchdog.withheld")
        line = [ln for ln in d.read_log().splitlines() if " watchdog.withheld " in ln][0]
        self.assertIn("sink=roistat", line)
        self.assertIn("in_pass=yes", line)
        self.notify.drain()
        got = self.notify.messages_for(1.0)
        self.assertNotIn("WATCHDOG=1", got)  # systemd would restart us now
        rs.fault("none")  # the held request ends (dropped): the pass returns
        wait_for(lambda: "WATCHDOG=1" in (self.notify.recv(1) or ""), timeout=10,
                 what="WATCHDOG=1 again")
        wait_for(lambda: " watchdog.resumed " in d.read_log(), what="watchdog.resumed")
        wait_for(lambda: "wd-1" in rs.orders(), what="the order delivered after all")

    def test_4_sigterm_sends_stopping(self):
        d = self.daemon
        self.notify.drain()
        d.stop()
        got = self.notify.drain()
        self.assertTrue(any(m.split("\n")[0] == "STOPPING=1" for m in got), got)
        self.assertEqual(sum(m.startswith("STOPPING=1") for m in got), 1, got)  # once
        # no priority prefixes: stderr is a file, not the journal
        for line in d.read_log().splitlines():
            self.assertFalse(line.startswith("<"), line)


class JournalPriorities(unittest.TestCase):
    """stderr is "the journal" ($JOURNAL_STREAM names its device and inode): each line
    starts with the priority of its level. A refused Roistat key pauses the sink (error),
    an invalid order is a warning, a commit is debug."""

    def test_each_line_carries_the_priority_of_its_level(self):
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        rs = Roistat(wd.path)
        self.addCleanup(rs.stop)
        wrong = os.path.join(wd.path, "wrong.key")
        write_private(wrong, "rs-key-not-the-right-one\n")
        d = Daemon(wd.path, roistat=rs, sections={"roistat": {"api_key_file": wrong},
                                                  "log": {"level": "debug"}})
        open(d.log_path, "ab").close()
        st = os.stat(d.log_path)
        d.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        d.start()
        self.addCleanup(d.stop)
        self.assertEqual(d.post(order("jp-1"))[0], 202)
        bad = order("jp-2")
        bad["order"]["price"] = "12,50"
        self.assertEqual(d.post(bad)[0], 400)
        wait_for(lambda: " dispatch.pause " in d.read_log(), what="the sink paused (auth)")
        by_event = {}
        for line in d.read_log().splitlines():
            m = PREFIX.match(line)
            self.assertIsNotNone(m, "a line without its priority: " + line)
            want = {"debug": "7", "info": "6", "warn": "4", "error": "3"}[m.group(2)]
            self.assertEqual(m.group(1), want, line)
            by_event.setdefault(line.split()[2], m.group(1))
        self.assertEqual(by_event.get("dispatch.pause"), "3")   # refused key: error
        self.assertEqual(by_event.get("ingest.invalid"), "4")   # bad field: warning
        self.assertEqual(by_event.get("serve.ready"), "6")
        self.assertEqual(by_event.get("ingest.commit"), "7")

    def test_a_journal_stream_that_is_not_stderr_gives_plain_lines(self):
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        other = os.stat(wd.path)  # a real device and inode, not stderr's
        d = Daemon(wd.path, env={"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})
        d.start()
        self.addCleanup(d.stop)
        wait_for(lambda: " serve.ready " in d.read_log(), what="serve.ready")
        lines = d.read_log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT", line)


class Credentials(unittest.TestCase):
    """No api_key_file in [roistat]: the key is $CREDENTIALS_DIRECTORY/roistat_api_key."""

    def test_the_roistat_key_comes_from_the_credential_and_is_never_logged(self):
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        rs = Roistat(wd.path)
        self.addCleanup(rs.stop)
        creds = os.path.join(wd.path, "credentials")
        os.mkdir(creds, 0o700)
        write_private(os.path.join(creds, "roistat_api_key"), rs.key + "\n", 0o400)
        env = {"CREDENTIALS_DIRECTORY": creds}
        d = Daemon(wd.path, sections={"roistat": {"url": rs.url, "project": rs.PROJECT}},
                   env=env)
        d.env.pop("ORDERBRIDGE_ROISTAT_API_KEY", None)
        d.start()
        self.addCleanup(d.stop)
        self.assertEqual(d.post(order("cred-1", price="100.00"))[0], 202)
        wait_for(lambda: "cred-1" in rs.orders(), what="the order at Roistat")
        self.assertEqual(d.delivery("cred-1")["state"], "done")
        self.assertNotIn(rs.key, d.read_log())

        # a credential others can read is refused like a key file, naming it, not its text
        write_private(os.path.join(creds, "roistat_api_key"), rs.key + "\n", 0o644)
        r = d.cli("check")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("[roistat] api_key_file: credential roistat_api_key", r.stderr)
        self.assertIn("chmod 600", r.stderr)
        self.assertNotIn(rs.key, r.stderr + r.stdout)

        # without the credential (and no file, no environment) the key is missing
        os.unlink(os.path.join(creds, "roistat_api_key"))
        r = d.cli("check")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("api_key", r.stderr)


class Reload(unittest.TestCase):
    """SIGHUP: the [log] level of the file now; a broken file changes nothing."""

    def test_sighup_applies_the_log_level_and_keeps_running_on_a_broken_file(self):
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        d = Daemon(wd.path)
        d.start()
        self.addCleanup(d.stop)
        good = open(d.conf).read()

        self.assertEqual(d.post(order("hup-1"))[0], 202)
        self.assertNotIn(" ingest.commit ", d.read_log())  # info: no debug lines

        with open(d.conf, "a") as f:
            f.write("\n[log]\nlevel = loud\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: " serve.reload_failed " in d.read_log(), what="serve.reload_failed")
        line = [ln for ln in d.read_log().splitlines() if " serve.reload_failed " in ln][0]
        self.assertIn("[log] level", line)
        self.assertIn("kept=running", line)
        self.assertIsNone(d.proc.poll())
        self.assertEqual(http("GET", d.base + "/healthz")[0], 200)
        self.assertEqual(d.post(order("hup-2"))[0], 202)
        self.assertNotIn(" ingest.commit ", d.read_log())  # still info

        with open(d.conf, "w") as f:
            f.write(good + "\n[log]\nlevel = debug\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "serve.reloaded" in d.read_log(), what="serve.reloaded")
        self.assertIn("log_level=debug", d.read_log())
        self.assertEqual(d.post(order("hup-3"))[0], 202)
        wait_for(lambda: " ingest.commit " in d.read_log(), what="a debug line")


class UnitFile(unittest.TestCase):
    """contrib/orderbridge.service.in, rendered with a real binary for @bindir@."""

    def render(self, wd):
        bindir = os.path.join(wd.path, "bin")
        os.mkdir(bindir)
        shutil.copy(harness.BIN, os.path.join(bindir, "orderbridge"))
        with open(os.path.join(harness.ROOT, "contrib", "orderbridge.service.in")) as f:
            text = f.read()
        self.assertIn("@bindir@/orderbridge serve -c ", text)
        unit = os.path.join(wd.path, "orderbridge.service")
        with open(unit, "w") as f:
            f.write(text.replace("@bindir@", bindir))
        return unit

    def test_the_unit_verifies_and_its_exposure_is_at_most_2(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (apt-get install systemd)")
        wd = Workdir()
        self.addCleanup(wd.cleanup)
        unit = self.render(wd)
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                            "--no-pager", unit], capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for orderbridge\.service: (\d+\.\d)", r.stdout)
        self.assertIsNotNone(m, r.stdout[-2000:] + r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)
        # orderbridge(8) is installed by the package, not here: --man=no
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("orderbridge.service:", r.stdout + r.stderr)  # no warning either


if __name__ == "__main__":
    unittest.main()
