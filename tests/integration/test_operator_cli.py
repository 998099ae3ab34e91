"""The operator's command line (issue 12): --version, each verb's --help with only its
own options, an unknown --sink refused naming the configured sinks, and `check` reporting
every problem in one pass as FILE:LINE: … without an "ok" before it."""
import os
import subprocess
import unittest

from harness import BIN, Workdir


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)


class OperatorCli(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir()
        self.addCleanup(self.wd.cleanup)
        self.conf = os.path.join(self.wd.path, "ob.conf")

    def write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def test_version_is_printed_by_the_option_and_the_verb(self):
        for args in (["--version"], ["version"]):
            r = run(*args)
            self.assertEqual(r.returncode, 0)
            self.assertRegex(r.stdout, r"^orderbridge [0-9]+\.[0-9]+\.[0-9]+\n$")

    def test_each_verbs_help_lists_only_its_own_options(self):
        status = run("status", "--help").stdout
        for opt in ("--json", "--sink", "--dead", "--limit"):
            self.assertIn(opt, status)
        self.assertNotIn("--repair", status)
        retry = run("retry", "--help").stdout
        self.assertIn("--sink", retry)
        for opt in ("--json", "--dead", "--repair", "--since"):
            self.assertNotIn(opt, retry)
        self.assertNotIn("--sink", run("check", "--help").stdout)

    def test_retry_with_an_unknown_sink_exits_2_naming_the_configured_ones(self):
        db = os.path.join(self.wd.path, "ob.db")
        self.write(f"[store]\npath = {db}\n[roistat]\nurl = http://127.0.0.1:9/api/v1\n"
                   "project = 1\napi_key_file = " + self.key() + "\n")
        r = run("retry", "-c", self.conf, "--sink", "foo")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("orderbridge retry: unknown sink foo (configured: roistat;", r.stderr)
        self.assertFalse(os.path.exists(db), "refused before the store is opened")

    def key(self):
        path = os.path.join(self.wd.path, "rs.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"k\n")
        os.close(fd)
        return path

    def test_check_reports_every_problem_with_file_line_and_never_ok(self):
        self.write("[server]\nmax_body_bytes = 12\n[roistat]\nurl = http://roistat.example.com/x\n"
                   "bogus = 1\nproject = 1\n")
        r = run("check", "-c", self.conf)
        self.assertEqual(r.returncode, 1)
        # a refused value, an unknown key, and what the [roistat] check finds: one pass
        self.assertIn(f"{self.conf}:2: [server] max_body_bytes = 12", r.stderr)
        self.assertIn(f"{self.conf}:5: [roistat] bogus: unknown key", r.stderr)
        self.assertIn(f"{self.conf}:4: [roistat] url: must be https://", r.stderr)
        self.assertIn("api_key_file: required", r.stderr)
        self.assertNotIn(": ok", r.stdout + r.stderr)
        self.write(f"[store]\npath = {self.wd.path}/ob.db\n")
        r = run("check", "-c", self.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[-1], f"{self.conf}: ok")


if __name__ == "__main__":
    unittest.main()
