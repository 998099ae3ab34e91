"""Test harness: starts emulators and the real orderbridge daemon on loopback, in a
temporary directory each, and stops them at the end. Python 3 standard library only."""
import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import obpost  # noqa: E402

BIN = os.environ.get("ORDERBRIDGE_BIN", os.path.join(ROOT, "build", "orderbridge"))
EMULATORS = os.environ.get("ORDERBRIDGE_EMULATORS", os.path.join(ROOT, "tests", "emulators"))


# Everything a daemon said during the run (logs, answers, CLI output) and every secret it
# was given: run.py searches the one for the other at the end (issue: secrets never reach
# logs, metrics or error answers).
SECRETS = set()
CAPTURED = []


def capture(text):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    elif not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False)
    CAPTURED.append(text)


def wait_for(pred, timeout=15.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http(method, url, body=None, headers=None, timeout=10):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    capture(raw)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def write_private(path, text, mode=0o600):
    """Writes a file only its owner can open from the start (a key, a token, a webhook
    URL: orderbridge refuses secret files open to others), then gives it `mode`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Emulator:
    """A Python emulator (roistat_emu.py / bitrix24_emu.py) in a subprocess."""

    def __init__(self, script, workdir, args):
        self.workdir = workdir
        port_file = os.path.join(workdir, script + ".port")
        self.log = open(os.path.join(workdir, script + ".log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(EMULATORS, script), "--port", "0",
             "--port-file", port_file] + args,
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(port_file), what=script + " port file")
        self.port = int(open(port_file).read().strip())
        self.base = f"http://127.0.0.1:{self.port}"

    def state(self):
        return http("GET", self.base + "/_emu/state")[1]

    def control(self, path, body):
        status, answer = http("POST", self.base + "/_emu/" + path, body,
                              {"Content-Type": "application/json"})
        assert status == 200, (path, status, answer)
        return answer

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Roistat(Emulator):
    PROJECT = "12345"

    def __init__(self, workdir, rate=10):
        self.key = "rs-key-" + base64.b16encode(os.urandom(8)).decode()
        key_file = os.path.join(workdir, "roistat.key")
        write_private(key_file, self.key + "\n")
        self.key_file = key_file
        SECRETS.add(self.key)
        super().__init__("roistat_emu.py", workdir,
                         ["--project", self.PROJECT, "--api-key-file", key_file,
                          "--rate", str(rate)])
        self.url = self.base + "/api/v1"

    def orders(self):
        return self.state()["orders"]

    def fault(self, mode, count=0, **kw):
        self.control("fault", dict(mode=mode, count=count, **kw))


class Bitrix24(Emulator):
    USER = "1"

    def __init__(self, workdir, rate=2, burst=50):
        self.code = "b24code" + base64.b16encode(os.urandom(6)).decode().lower()
        code_file = os.path.join(workdir, "b24.code")
        write_private(code_file, self.code + "\n")  # the webhook's code: a secret too
        super().__init__("bitrix24_emu.py", workdir,
                         ["--user-id", self.USER, "--code-file", code_file,
                          "--rate", str(rate), "--burst", str(burst)])
        self.webhook_url = f"{self.base}/rest/{self.USER}/{self.code}/"
        SECRETS.update((self.code, self.webhook_url))
        self.url_file = os.path.join(workdir, "b24.webhook")
        write_private(self.url_file, self.webhook_url + "\n")

    def deals(self):
        return self.state()["deals"]

    def deal_for(self, order_id):
        found = [d for d in self.deals().values() if d.get("ORIGIN_ID") == str(order_id)]
        return found

    def fault(self, mode, count=0, **kw):
        self.control("fault", dict(mode=mode, count=count, **kw))

    def config(self, **kw):
        """POST /_emu/config, e.g. config(required_fields={"deal": ["UF_CRM_1"]})."""
        return self.control("config", kw)["config"]


def make_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Daemon:
    """orderbridge serve in a subprocess, with a configuration written from sections."""

    FAST_DELIVERY = {"backoff_min_ms": "100", "backoff_max_ms": "1000",
                     "poll_interval_ms": "100", "visit_wait_s": "1", "confirm_after_s": "2"}

    def __init__(self, workdir, sections=None, roistat=None, admin=True, env=None,
                 bitrix24=None, store=None, secret=None):
        """`store`: the [store] section instead of an SQLite file in `workdir` (a
        PostgreSQL store, pg.Server.store()); `secret`: the signing secret of another
        daemon, for two behind one load balancer."""
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.secret = secret or make_secret()
        self.secret_file = os.path.join(workdir, "signing.secret")
        write_private(self.secret_file, self.secret + "\n")
        self.key = base64.b64decode(self.secret[len("whsec_"):])
        self.admin_token = "adm-" + base64.b16encode(os.urandom(12)).decode()
        self.admin_file = os.path.join(workdir, "admin.token")
        write_private(self.admin_file, self.admin_token)
        SECRETS.update((self.secret, self.secret[len("whsec_"):], self.admin_token))
        self.db = os.path.join(workdir, "orderbridge.db")
        conf = {
            "server": {"listen": "127.0.0.1:0", "signing_secret_file": self.secret_file},
            "store": dict(store) if store else {"path": self.db},
            "site": {"id": "shop.example.ru"},
            "delivery": dict(self.FAST_DELIVERY),
        }
        if admin:
            conf["server"]["admin_token_file"] = self.admin_file
        if roistat:
            conf["roistat"] = {"url": roistat.url, "project": roistat.PROJECT,
                               "api_key_file": roistat.key_file}
        if bitrix24:
            conf["bitrix24"] = {"webhook_url_file": bitrix24.url_file}
        for name, keys in (sections or {}).items():
            conf.setdefault(name, {}).update(keys)
        self.conf = os.path.join(workdir, "orderbridge.conf")
        with open(self.conf, "w") as f:
            for name, keys in conf.items():
                f.write(f"[{name}]\n")
                for k, v in keys.items():
                    f.write(f"{k} = {v}\n")
                f.write("\n")
        self.env = dict(os.environ, **(env or {}))
        self.log_path = os.path.join(workdir, "orderbridge.log")
        self.proc = None
        self.logs = []  # every run's log text, for the secrets check

    def start(self):
        self.log = open(self.log_path, "ab")
        self.log_offset = self.log.tell()
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.wait_ready()
        return self

    def wait_ready(self):
        """Waits for serve.ready in the log and takes the port it names."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("orderbridge exited: " + self.read_log())
            for line in self.read_log().splitlines():
                if " serve.ready " in line:
                    return int(line.split(" port=")[1].split()[0])
            return None
        self.port = wait_for(ready, what="serve.ready")
        self.base = f"http://127.0.0.1:{self.port}"

    def read_log(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def capture_log(self):
        try:
            capture(self.read_log())
        except OSError:
            pass

    def stop(self, check=True):
        """SIGTERM and wait; the exit status must be 0 (sanitizers report leaks here)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("orderbridge did not stop within 30 s")
            self.log.close()
            self.capture_log()
            if check and code != 0:
                raise AssertionError(f"orderbridge exited {code}: {self.read_log()[-4000:]}")
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        self.capture_log()
        self.proc = None

    def post(self, snapshot, **kw):
        status, answer = obpost.post(self.base + "/v1/orders", self.key, snapshot, **kw)
        capture(answer)
        return status, answer

    def cli(self, *args, check=False):
        r = subprocess.run([BIN, args[0], "-c", self.conf] + list(args[1:]),
                           capture_output=True, text=True, env=self.env, timeout=60)
        capture(r.stdout)
        capture(r.stderr)
        if check and r.returncode != 0:
            raise AssertionError(f"{args}: exit {r.returncode}: {r.stderr}")
        return r

    def order_state(self, order_id):
        r = self.cli("status", "--json", order_id)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def delivery(self, order_id, sink="roistat"):
        st = self.order_state(order_id)
        for d in (st or {}).get("deliveries", []):
            if d["sink"] == sink:
                return d
        return None

    def counts(self):
        return json.loads(self.cli("status", "--json", check=True).stdout)


def order(order_id, version=1, status="N", price="4990.00", **extra):
    """A valid snapshot in the shape of design.md."""
    o = {
        "id": str(order_id), "account_number": f"A-{order_id}", "version": version,
        "status": status, "canceled": False, "paid": False,
        "created_at": "2026-03-13T10:00:00+03:00",
        "updated_at": "2026-03-13T10:05:00+03:00",
        "price": price, "currency": "RUB", "roistat_visit": "4521890",
        "buyer": {"type": "individual", "name": "Ivan Petrov", "phone": "+7 900 123-45-67",
                  "email": "ivan@example.ru", "company": None, "inn": None},
        "items": [{"product_id": "55", "name": "Kettle", "price": "2495.00", "quantity": "2"}],
    }
    o.update(extra)
    return {"site": "shop.example.ru", "order": o}


def buyer(name, phone=None, email=None, company=None, inn=None):
    """A snapshot's buyer: legal when it has a company."""
    return {"type": "legal" if company else "individual", "name": name, "phone": phone,
            "email": email, "company": company, "inn": inn}


def item(name, price, quantity, product_id="1"):
    return {"product_id": product_id, "name": name, "price": price, "quantity": quantity}


def rows_of(state, deal_id):
    """A deal's product rows in the Bitrix24 emulator's state as (name, price, quantity)
    texts: "2495.00", "2"."""
    return [(r["PRODUCT_NAME"], "%.2f" % float(r["PRICE"]), "%g" % float(r["QUANTITY"]))
            for r in state["productrows"].get(str(deal_id), [])]


class Workdir:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ob-test-")
        self.path = self.tmp.name

    def cleanup(self):
        self.tmp.cleanup()


class DaemonCase(unittest.TestCase):
    """One daemon per test, in its own work directory, with the emulators its class asks
    for: `roistat_args` and `bitrix24_args` are their keyword arguments (None: that sink
    is off), `sections` the daemon's extra configuration, `before_daemon` what a class
    prepares between the emulators and the daemon, and `start_daemon = False` leaves the
    start to the test. Everything is stopped in reverse order as cleanups, so also when
    setUp fails half-way; the daemon's stop checks its exit status (sanitizers)."""
    roistat_args = None
    bitrix24_args = None
    sections = None
    start_daemon = True

    def setUp(self):
        self.wd = Workdir()
        self.addCleanup(self.wd.cleanup)
        self.roistat = self.b24 = None
        if self.roistat_args is not None:
            self.roistat = Roistat(self.wd.path, **self.roistat_args)
            self.addCleanup(self.roistat.stop)
        if self.bitrix24_args is not None:
            self.b24 = Bitrix24(self.wd.path, **self.bitrix24_args)
            self.addCleanup(self.b24.stop)
        self.before_daemon()
        self.daemon = Daemon(self.wd.path, sections=self.sections, roistat=self.roistat,
                             bitrix24=self.b24)
        self.addCleanup(self.daemon.stop)
        if self.start_daemon:
            self.daemon.start()

    def before_daemon(self):
        pass


def query(db, statement, *args):
    """The rows of one SQL statement on a store, read beside the running daemon."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as c:
        return c.execute(statement, args).fetchall()


class OneDaemon(unittest.TestCase):
    """A test class sharing one daemon (no sinks) for all its tests: `sections` overrides
    its configuration; `cls.wd` and `cls.daemon` are set for the class."""
    sections = None

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        cls.daemon = Daemon(cls.wd.path, sections=cls.sections)
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.wd.cleanup()


def proc_status_kb(pid):
    """VmRSS and VmHWM of a process, in KiB (from /proc/PID/status)."""
    kb = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                kb[k] = int(v.split()[0])
    return kb


def socket_count(pid):
    """How many sockets a process holds open (its listener included)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
