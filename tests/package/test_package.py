#!/usr/bin/env python3
"""Packaging: what `meson install` and the .deb put on a machine, and that it works there.

Usage: test_package.py --build BUILD_DIR   (a configured and built tree, e.g. build-asan)
Ends with "package: N passed, M failed". Builds the .deb once (DEB_BUILD_OPTIONS=nocheck,
from a copy of the tracked files, so the tree stays clean), installs it with dpkg -i and
purges it at the end: run it as root on a throwaway machine (CI is one).
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = None  # from --build
WORK = None   # a temp dir for the whole run


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def meson_version():
    return json.loads(run("meson", "introspect", "--projectinfo", BUILD).stdout)["version"]


def routes():
    """(methods, path, prefix) of every row of src/http/route.c's table."""
    table = open(os.path.join(ROOT, "src/http/route.c")).read()
    body = re.search(r"routes\[\] = \{(.*?)\};", table, re.S).group(1)
    out = []
    for name in re.findall(r"&(route_\w+)", body):
        for f in glob.glob(os.path.join(ROOT, "src/http/route_*.c")):
            src = open(f).read()
            m = re.search(r"const struct http_route %s = \{(.*?)\};" % name, src, re.S)
            if not m:
                continue
            methods = re.search(r'\.methods = "([^"]+)"', m.group(1)).group(1)
            path = re.search(r"\.path = (\w+|\"[^\"]*\")", m.group(1)).group(1)
            if not path.startswith('"'):  # a macro of the same file
                path = re.search(r'#define %s "([^"]*)"' % path, src).group(1)
            out.append((methods, path.strip('"'), ".prefix = true" in m.group(1)))
            break
        else:
            raise AssertionError(f"{name}: no definition in src/http/route_*.c")
    return out


def section(roff, name):
    """The lines of one .SH section of a roff source."""
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH |\Z)" % re.escape(name), roff, re.S | re.M)
    return m.group(1).splitlines() if m else []


def headings(lines):
    """The tag line after each .TP, without font requests and escapes."""
    out = []
    for i, line in enumerate(lines[:-1]):
        if line == ".TP":
            tag = re.sub(r"^\.(B|BR|BI|I|IR) ", "", lines[i + 1])
            tag = re.sub(r"\\f[BIRP]", "", tag).replace("\\-", "-").replace('"', "")
            out.append(tag.strip())
    return out


class Install(unittest.TestCase):
    """meson install: every file at its path; the unit carries the configured bindir."""

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(WORK, "dest")
        run("meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", cls.dest)
        opts = json.loads(run("meson", "introspect", "--buildoptions", BUILD).stdout)
        cls.prefix = next(o["value"] for o in opts if o["name"] == "prefix")
        cls.optx = os.path.join(WORK, "optx")
        run("meson", "setup", cls.optx, ROOT, "-Dprefix=/opt/x", "-Dtests=false")

    def test_every_file_is_installed_at_its_path(self):
        p = self.dest + self.prefix
        want = ["bin/orderbridge", "lib/systemd/system/orderbridge.service",
                "lib/sysusers.d/orderbridge.conf", "lib/tmpfiles.d/orderbridge.conf",
                "share/doc/orderbridge/examples/orderbridge.conf",
                "share/man/man8/orderbridge.8", "share/man/man5/orderbridge.conf.5"]
        for rel in want:
            self.assertTrue(os.path.isfile(os.path.join(p, rel)), rel)
        self.assertTrue(os.access(os.path.join(p, "bin/orderbridge"), os.X_OK))
        with open(os.path.join(p, "lib/sysusers.d/orderbridge.conf")) as f:
            users = [l.split() for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual(users[0][:2], ["u", "orderbridge"])
        self.assertEqual(users[0][-1], "/var/lib/orderbridge")

    def test_unit_runs_the_binary_of_the_configured_bindir(self):
        with open(os.path.join(self.optx, "orderbridge.service")) as f:
            unit = f.read()
        self.assertNotIn("@bindir@", unit)
        execs = re.findall(r"^ExecStart(?:Pre)?=(\S+)", unit, re.M)
        self.assertIn("ExecStart=/opt/x/bin/orderbridge ", unit)
        self.assertEqual(set(execs), {"/opt/x/bin/orderbridge"})

    def test_a_prefix_moves_every_file_under_it(self):
        installed = json.loads(run("meson", "introspect", "--installed", self.optx).stdout)
        dests = sorted(installed.values())
        self.assertEqual(len(dests), 7, dests)
        for d in dests:
            self.assertTrue(d.startswith("/opt/x/"), d)
        self.assertIn("/opt/x/lib/systemd/system/orderbridge.service", dests)


class ManPages(unittest.TestCase):
    """The man pages render cleanly and cover the verbs, the routes and the keys."""

    @classmethod
    def setUpClass(cls):
        cls.page8 = open(os.path.join(BUILD, "man", "orderbridge.8")).read()
        cls.page5 = open(os.path.join(BUILD, "man", "orderbridge.conf.5")).read()

    def test_pages_render_without_warnings(self):
        env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
        for page in ("orderbridge.8", "orderbridge.conf.5"):
            r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                                os.path.join(BUILD, "man", page)],
                               capture_output=True, text=True, env=env)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)
            self.assertGreater(len(r.stdout), 1000, page)

    def test_orderbridge_8_names_every_route(self):
        tags = headings(section(self.page8, "ENDPOINTS"))
        for methods, path, prefix in routes():
            for method in methods.split(", "):
                if method == "HEAD":  # "HEAD is answered wherever GET is"
                    continue
                hits = [t for t in tags if t.split(" ")[0] == method and
                        (t.split(" ")[1].startswith(path) if prefix else t.split(" ")[1] == path)]
                self.assertTrue(hits, f"{method} {path} is not in orderbridge(8) ENDPOINTS")

    def test_orderbridge_8_names_every_verb(self):
        usage = run(os.path.join(BUILD, "orderbridge"), "--help").stdout
        verbs = re.findall(r"^  (\w+) ", usage.split("verbs:")[1].split("options:")[0], re.M)
        self.assertIn("serve", verbs)
        tags = [t.split(" ")[0].rstrip(",") for t in headings(section(self.page8, "VERBS"))]
        for v in verbs:
            self.assertIn(v, tags, f"verb {v} is not in orderbridge(8) VERBS")

    def test_orderbridge_conf_5_lists_every_key_of_the_binary(self):
        keys = run(os.path.join(BUILD, "orderbridge"), "--keys").stdout
        want = []
        for block in keys.split("\n[")[1:]:  # the key sections come before the maps
            found = re.findall(r"^  ([a-z][a-z0-9_]*) ", block, re.M)
            if not found or not block.split("\n")[1].startswith("  " + found[0]):
                break
            want += found
        self.assertIn("signing_secret_file", want)
        got = [t.replace("\\", "") for t in headings(section(self.page5, "KEYS"))]
        self.assertEqual(sorted(got), sorted(want))
        self.assertIn('Default: \\fB"Order "\\fR.', self.page5)


class Deb(unittest.TestCase):
    """The .deb: builds, holds every file, and installs for real."""

    @classmethod
    def setUpClass(cls):
        src = os.path.join(WORK, "deb", "src")
        files = run("git", "-C", ROOT, "ls-files", "-z").stdout.split("\0")
        for f in filter(None, files):
            if os.path.exists(os.path.join(ROOT, f)):
                os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
        r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise AssertionError("dpkg-buildpackage failed:\n" + r.stdout[-3000:] + r.stderr)
        cls.deb = glob.glob(os.path.join(WORK, "deb", "orderbridge_*_*.deb"))[0]

    def test_deb_holds_binary_unit_user_man_pages_and_example(self):
        listing = run("dpkg-deb", "-c", self.deb).stdout
        paths = {l.split()[-1].lstrip(".") for l in listing.splitlines()}
        for p in ["/usr/bin/orderbridge", "/lib/systemd/system/orderbridge.service",
                  "/usr/lib/sysusers.d/orderbridge.conf", "/usr/lib/tmpfiles.d/orderbridge.conf",
                  "/usr/share/man/man8/orderbridge.8.gz",
                  "/usr/share/man/man5/orderbridge.conf.5.gz",
                  "/usr/share/doc/orderbridge/examples/orderbridge.conf"]:
            self.assertIn(p, paths)
        self.assertFalse([p for p in paths if p.startswith("/etc/orderbridge/")],
                         "the package must not own the operator's configuration")

    def test_extracted_binary_prints_the_version_of_the_package(self):
        x = os.path.join(WORK, "x")
        run("dpkg-deb", "-x", self.deb, x)
        version = run("dpkg-deb", "-f", self.deb, "Version").stdout.strip()
        self.assertEqual(version, meson_version())
        out = run(os.path.join(x, "usr/bin/orderbridge"), "--version").stdout.strip()
        self.assertEqual(out, "orderbridge " + version)
        with open(os.path.join(x, "lib/systemd/system/orderbridge.service")) as f:
            self.assertIn("ExecStart=/usr/bin/orderbridge ", f.read())

    def test_dpkg_install_creates_the_user_and_the_binary_runs(self):
        if os.geteuid() != 0:
            self.fail("dpkg -i needs root (run on a throwaway machine, as CI does)")
        self.addCleanup(subprocess.run, ["dpkg", "--purge", "orderbridge"], capture_output=True)
        run("dpkg", "-i", self.deb)
        user = run("getent", "passwd", "orderbridge").stdout.strip().split(":")
        self.assertEqual(user[5], "/var/lib/orderbridge")
        self.assertLess(int(user[2]), 1000, "a system user")
        group = run("getent", "group", "orderbridge").stdout.split(":")
        self.assertEqual(int(group[2]), int(user[3]))
        st = os.stat("/etc/orderbridge")
        self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid, st.st_gid),
                         (oct(0o750), 0, int(group[2])))
        keys = run("/usr/bin/orderbridge", "--keys").stdout
        self.assertIn("signing_secret_file", keys)
        r = subprocess.run(["/usr/bin/orderbridge", "check", "-c", "/nonexistent.conf"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent.conf", r.stderr)


def main():
    global BUILD, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("-k", action="append", help="only the tests whose name has this")
    a = ap.parse_args()
    BUILD = os.path.abspath(a.build)
    WORK = tempfile.mkdtemp(prefix="orderbridge-package-")
    try:
        loader = unittest.TestLoader()
        loader.testNamePatterns = [f"*{k}*" for k in a.k] if a.k else None
        suite = loader.loadTestsFromModule(sys.modules[__name__])
        res = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    bad = len(res.failures) + len(res.errors) + len(res.skipped)
    print(f"package: {res.testsRun - bad} passed, {bad} failed")
    sys.exit(0 if bad == 0 else 1)


if __name__ == "__main__":
    main()
