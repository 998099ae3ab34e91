"""Abuse of the HTTP endpoints: what a hostile or broken client can send to orderbridge.

Every case asserts three things: (a) the answer's status code (or that the connection is
cut, for clients too slow to finish a request), (b) that a normal signed order posted
right after is still accepted, and (c) that nothing stored changed: every table of the
store is compared before and after, and the reference order's report on the admin
endpoint with it. The daemon runs with small limits ([server] max_body_bytes,
max_connections, connection_timeout_s) so that the limits themselves are exercised.

Requests are written on raw sockets (urllib cannot send most of them); see exchange().
"""
import base64
import collections
import concurrent.futures
import contextlib
import json
import math
import os
import resource
import select
import socket
import sqlite3
import threading
import time
import unittest
import uuid

from harness import Daemon, Workdir, make_secret, obpost, order, socket_count

MAX_BODY = 262144  # [server] max_body_bytes: above 100k so that deep nesting reaches the parser
SERVER = {"max_body_bytes": str(MAX_BODY), "max_connections": "200",
          "connection_timeout_s": "2", "threads": "2"}

CLOSED = 0  # Answer.status when the daemon closed the connection without answering
HUNG = -1   # Answer.status when neither an answer nor a close came in time

CASES = collections.Counter()  # abuse cases tried, by class, printed at the end


def tearDownModule():
    print(f"\nabuse: cases={sum(CASES.values())} "
          + " ".join(f"{k}={v}" for k, v in sorted(CASES.items())))


# ---- raw HTTP ---------------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers=None, body=b"", elapsed=0.0, interim=()):
        self.status, self.headers, self.body = status, headers or {}, body
        self.elapsed, self.interim = elapsed, list(interim)

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def __repr__(self):
        return f"<Answer {self.status} {self.body[:200]!r} after {self.elapsed:.2f}s>"


def b(text):
    return text if isinstance(text, bytes) else str(text).encode("latin-1")


def request(method, target, headers=(), body=b"", chunk=None):
    """(head, framed body) of an HTTP/1.1 request. `headers` is a list of pairs (repeats
    allowed); Content-Length is added for a body unless given or `chunk` (a chunk size)
    asks for Transfer-Encoding: chunked."""
    headers = [(b(k), b(v)) for k, v in (headers.items() if isinstance(headers, dict)
                                          else headers)]
    names = {k.lower() for k, _ in headers}
    if chunk:
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                        for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
    elif body and b"content-length" not in names:
        headers.append((b"Content-Length", b"%d" % len(body)))
    head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (b(method), b(target))
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n"
    return head, body


def readable(sock, timeout):
    """Whether sock has data or a close to read within timeout seconds (poll: file
    descriptors above 1024 are fine)."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    return bool(p.poll(timeout * 1000))


def _send(sock, data):
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def _parse_head(head):
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1]) if lines[0].startswith(b"HTTP/1.") else CLOSED
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers


def read_answer(sock, started, timeout, head_request=False):
    data, interim = b"", []
    deadline = started + timeout
    while True:
        if b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            status, headers = _parse_head(head)
            if 100 <= status < 200:
                interim.append(status)
                data = rest
                continue
            n = 0 if head_request else int(headers.get("content-length", "0") or 0)
            if len(rest) >= n:
                return Answer(status, headers, rest[:n], time.monotonic() - started, interim)
        left = deadline - time.monotonic()
        if left <= 0:
            return Answer(HUNG, elapsed=time.monotonic() - started, interim=interim)
        sock.settimeout(left)
        try:
            got = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            got = b""
        if not got:
            return Answer(CLOSED, elapsed=time.monotonic() - started, interim=interim)
        data += got


def exchange(port, head, body=b"", timeout=10.0):
    """Sends one request and reads its answer. Like a careful client, it sends a large
    body only if no early answer (a refusal on the headers alone) comes within 0.2 s: a
    daemon that closes with unread data resets the connection, which can lose its answer."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if len(body) <= 16384:
            _send(s, head + body)
        elif _send(s, head) and not readable(s, 0.2):
            _send(s, body)
        return read_answer(s, started, timeout, head.startswith(b"HEAD "))


def signed_headers(key, body, webhook_id=None, timestamp=None):
    webhook_id = webhook_id or "msg_" + uuid.uuid4().hex
    timestamp = str(int(time.time())) if timestamp is None else str(timestamp)
    return [("webhook-id", webhook_id), ("webhook-timestamp", timestamp),
            ("webhook-signature", obpost.sign(key, webhook_id, timestamp, body))]


def snapshot_bytes(order_id, size=None, **kw):
    """A valid snapshot, padded with leading white space to exactly `size` bytes."""
    text = json.dumps(order(order_id, **kw)).encode()
    if size is not None:
        assert len(text) <= size
        text = b" " * (size - len(text)) + text
    return text




def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise unittest.SkipTest(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---- the fixture --------------------------------------------------------------------------

class AbuseCase(unittest.TestCase):
    server = SERVER
    admin = True

    def setUp(self):
        self.wd = Workdir()
        self.daemon = Daemon(self.wd.path, sections={"server": dict(self.server)},
                             admin=self.admin)
        self.daemon.start()
        self.port = self.daemon.port
        self.serial = 0
        self.assertEqual(self.daemon.post(order("ref", version=3, status="P"))[0], 202)
        self.ref_state = self.daemon.order_state("ref")
        self.assertIsNotNone(self.ref_state)

    def tearDown(self):
        try:
            self.daemon.stop()  # fails on a non-zero exit (sanitizers report leaks there)
            log = self.daemon.read_log()
            for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                self.assertNotIn(mark, log, "a sanitizer report in the daemon's log")
            for secret in (self.daemon.secret, self.daemon.secret[len("whsec_"):],
                           self.daemon.admin_token):
                self.assertNotIn(secret, log, "a secret reached the log")
            self.assertEqual(self.daemon.order_state("ref"), self.ref_state,
                             "`orderbridge status --json ref` changed")
        finally:
            self.daemon.stop(check=False)
            self.wd.cleanup()

    # what is stored, and the admin endpoint's view of it

    def stored(self):
        """Every row of every table of the store."""
        con = sqlite3.connect(f"file:{self.daemon.db}?mode=ro", uri=True, timeout=10)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            rows = {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"'))) for t in tables}
            # /healthz's store probe writes its own meta row (at most every 3 s): not a request's
            rows["meta"] = [r for r in rows.get("meta", []) if not r.startswith("('health.probe'")]
            return rows
        finally:
            con.close()

    def is_stored(self, order_id):
        con = sqlite3.connect(f"file:{self.daemon.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM orders WHERE order_id = ?",
                               (order_id,)).fetchone()[0] == 1
        finally:
            con.close()

    def auth(self, token=None):
        return [("Authorization", "Bearer " + (token or self.daemon.admin_token))]

    def report(self, order_id="ref"):
        a = self.send(*request("GET", "/v1/orders/" + order_id, self.auth()))
        return a.status, a.body

    # sending

    def send(self, head, body=b"", timeout=10.0):
        return exchange(self.port, head, body, timeout)

    def ingest(self, body, content_type="application/json", target="/v1/orders", extra=(),
               chunk=None, method="POST", **sign):
        headers = [("Content-Type", content_type)] if content_type is not None else []
        headers += signed_headers(sign.pop("key", self.daemon.key), body, **sign)
        return self.send(*request(method, target, headers + list(extra), body, chunk))

    # the three checks

    def assert_still_serving(self, case=""):
        self.serial += 1
        oid = f"ok-{self.serial}"
        status, answer = self.daemon.post(order(oid), timeout=10)
        self.assertEqual(status, 202, f"after {case}: a normal order was not accepted: "
                                      f"{answer}")
        self.assertTrue(self.is_stored(oid), f"after {case}: the normal order is not stored")

    @contextlib.contextmanager
    def refused(self, case):
        """Wraps one abuse case: nothing stored may change, the reference order's report
        stays the same, and a normal order is accepted right after."""
        CASES[type(self).__name__] += 1
        before, report = self.stored(), self.report()
        yield
        self.assertEqual(self.stored(), before, f"{case}: a refused request changed the store")
        self.assertEqual(self.report(), report, f"{case}: the reference order's report changed")
        self.assert_still_serving(case)

    def expect(self, answer, status, error=None, field=None):
        self.assertEqual(answer.status, status, answer)
        if error:
            self.assertEqual(answer.json.get("error"), error, answer)
        if field:
            self.assertEqual(answer.json.get("field"), field, answer)


# ---- bodies over the limit ------------------------------------------------------------------

class BodyLimits(AbuseCase):
    def test_a_declared_length_over_max_body_bytes_is_refused_before_the_body_is_read(self):
        for length in (MAX_BODY + 1, 2 ** 30, 10 ** 15):
            with self.subTest(length=length), self.refused(f"Content-Length {length}"):
                # no body is sent: the answer must not wait for it
                a = self.send(*request("POST", "/v1/orders",
                                       [("Content-Type", "application/json"),
                                        ("Content-Length", length)]), timeout=5)
                self.expect(a, 413, "body_too_large")
                self.assertLess(a.elapsed, 1.0, "the refusal waited for the body")
        with self.refused("Content-Length 10^20"):  # beyond 64 bits: libmicrohttpd's own 413
            a = self.send(*request("POST", "/v1/orders", [("Content-Type", "application/json"),
                                                          ("Content-Length", 10 ** 20)]))
            self.expect(a, 413)
        with self.refused("Expect: 100-continue over the limit"):
            a = self.send(*request("POST", "/v1/orders",
                                   [("Content-Type", "application/json"),
                                    ("Expect", "100-continue"),
                                    ("Content-Length", MAX_BODY + 1)]), timeout=5)
            self.expect(a, 413, "body_too_large")
            self.assertEqual(a.interim, [], "100 Continue was sent for a body to be refused")

    def test_a_signed_body_one_byte_over_the_limit_is_refused_and_one_at_it_accepted(self):
        at = snapshot_bytes("at-limit", MAX_BODY)
        self.expect(self.ingest(at), 202)
        self.assertTrue(self.is_stored("at-limit"), "the limit is off by one")
        over = snapshot_bytes("over-limit", MAX_BODY + 1)
        with self.refused("signed body of max_body_bytes + 1"):
            self.expect(self.ingest(over), 413, "body_too_large")

    def test_a_chunked_body_growing_over_the_limit_is_refused(self):
        at = snapshot_bytes("chunked-at-limit", MAX_BODY)
        self.expect(self.ingest(at, chunk=65536), 202)
        self.assertTrue(self.is_stored("chunked-at-limit"))
        over = snapshot_bytes("chunked-over", MAX_BODY + 1)
        for chunk in (65536, 4096):
            with self.subTest(chunk=chunk), self.refused(f"chunked {chunk}-byte chunks"):
                self.expect(self.ingest(over, chunk=chunk), 413, "body_too_large")

    def test_a_chunked_body_that_never_ends_is_cut_off(self):
        """A client streaming an endless body: the daemon must stop reading it (answer 413
        or close) soon after the cap, not swallow it for as long as the client sends. Its
        headers are well-formed and current, so that the body is read at all."""
        budget = 64 * 1024 * 1024
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        with self.refused("endless chunked body"):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(request("POST", "/v1/orders",
                                  [("Content-Type", "application/json"),
                                   ("Transfer-Encoding", "chunked")] +
                                  signed_headers(self.daemon.key, b"endless"))[0])
                s.settimeout(3)
                sent, cut = 0, None
                while sent < budget and not cut:
                    try:
                        s.sendall(chunk)
                        sent += 65536
                    except socket.timeout:
                        cut = "stopped reading"
                    except (BrokenPipeError, ConnectionResetError):
                        cut = "closed"
                    if not cut and readable(s, 0):
                        cut = "answered"
                self.assertIsNotNone(cut, f"the daemon read {sent} bytes of an endless body "
                                          f"(max_body_bytes = {MAX_BODY}) without answering "
                                          f"or closing")
                if cut == "answered":
                    a = read_answer(s, time.monotonic(), 5)
                    self.assertIn(a.status, (413, CLOSED), a)

    def test_malformed_content_lengths_are_refused(self):
        for value in ("-1", "12abc", "0x10", "1 2"):
            with self.subTest(value=value), self.refused(f"Content-Length: {value}"):
                a = self.send(*request("POST", "/v1/orders",
                                       [("Content-Type", "application/json"),
                                        ("Content-Length", value)], b"{}"), timeout=5)
                self.assertEqual(a.status, 400, a)


# ---- slow clients -----------------------------------------------------------------------------

def trickle(sock, data, until):
    """Sends `data` a byte a second until the daemon closes the connection or answers, or
    until `until` (monotonic). Returns (seconds until the daemon cut it or None, answer)."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() >= until:
            return None, b""
        if not _send(sock, bytes([byte])):
            return time.monotonic() - started, b""
        if readable(sock, 1.0):
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                got = b""
            return time.monotonic() - started, got
    return None, b""


class SlowClients(AbuseCase):
    timeout_s = int(SERVER["connection_timeout_s"])

    def slow_request(self, order_id):
        body = snapshot_bytes(order_id)
        headers = [("Content-Type", "application/json")] + signed_headers(self.daemon.key, body)
        return request("POST", "/v1/orders", headers, body)

    def serve_meanwhile(self, worker):
        """Runs `worker` in a thread; meanwhile normal clients post orders, each of which
        must be accepted within a second. Returns the worker's result."""
        result = {}
        thread = threading.Thread(target=lambda: result.update(r=worker()))
        thread.start()
        served = 0
        try:
            while thread.is_alive():
                t = time.monotonic()
                self.assert_still_serving("a slow client")
                self.assertLess(time.monotonic() - t, 1.0, "a slow client slowed the others")
                served += 1
                time.sleep(0.3)
        finally:
            thread.join()
        self.assertGreater(served, 0)
        return result["r"]

    def test_a_client_sending_its_headers_a_byte_a_second_is_cut_off(self):
        CASES[type(self).__name__] += 1
        head, body = self.slow_request("slowloris")
        deadline = self.timeout_s + 2

        def slowloris():
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                return trickle(s, head + body, time.monotonic() + deadline + 2)
        cut, answer = self.serve_meanwhile(slowloris)
        self.assertIsNotNone(cut, f"a client sending a byte a second was still connected "
                                  f"after {deadline + 2} s (connection_timeout_s = "
                                  f"{self.timeout_s})")
        self.assertLessEqual(cut, deadline)
        self.assertFalse(answer.startswith(b"HTTP/1.1 5"), answer)
        self.assertFalse(self.is_stored("slowloris"))

    def test_a_client_sending_its_body_a_byte_a_second_is_cut_off_and_nothing_stored(self):
        CASES[type(self).__name__] += 1
        head, body = self.slow_request("slowbody")
        deadline = self.timeout_s + 2

        def slow_body():
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(head)
                return trickle(s, body, time.monotonic() + deadline + 2)
        cut, answer = self.serve_meanwhile(slow_body)
        self.assertIsNotNone(cut, f"a client sending its body a byte a second was still "
                                  f"connected after {deadline + 2} s")
        self.assertLessEqual(cut, deadline)
        self.assertFalse(answer.startswith(b"HTTP/1.1 5"), answer)
        self.assertFalse(self.is_stored("slowbody"), "a body never completed was stored")

    def test_an_idle_connection_is_closed_after_connection_timeout_s(self):
        for sent in (b"", b"POST /v1/orders HTTP/1.1\r\nHost: x\r\n"):
            with self.subTest(sent=sent), self.refused(f"idle after {sent!r}"):
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    started = time.monotonic()
                    s.sendall(sent)
                    a = read_answer(s, started, self.timeout_s + 3)
                    self.assertIn(a.status, (CLOSED, 408), a)
                    self.assertGreaterEqual(a.elapsed, self.timeout_s - 1)

    def test_slow_clients_filling_every_connection_do_not_shut_others_out(self):
        """max_connections clients each sending a byte a second: once
        connection_timeout_s is up they must give way to a normal client."""
        CASES[type(self).__name__] += 1
        n = int(self.server["max_connections"])
        head, body = self.slow_request("crowd")
        data = head + body
        stop = threading.Event()
        socks = [socket.create_connection(("127.0.0.1", self.port), timeout=10)
                 for _ in range(n)]

        def drip():
            i = 0
            while not stop.is_set() and i < len(data):
                for s in socks:
                    _send(s, data[i:i + 1])
                i += 1
                stop.wait(1.0)
        dripper = threading.Thread(target=drip)
        dripper.start()
        try:
            time.sleep(0.5)
            limit = 3 * self.timeout_s + 1
            started = time.monotonic()
            try:
                status, answer = self.daemon.post(order("patient"), timeout=limit)
            except (socket.timeout, TimeoutError, OSError) as e:
                status, answer = None, repr(e)
            self.assertEqual(status, 202, f"with {n} slow clients connected a normal client "
                                          f"got no answer in {limit} s: {answer}")
            self.assertLess(time.monotonic() - started, limit)
        finally:
            stop.set()
            dripper.join()
            for s in socks:
                s.close()
        self.assertFalse(self.is_stored("crowd"))
        self.assert_still_serving("slow clients on every connection")


# ---- thousands of idle connections --------------------------------------------------------------

N_IDLE = 2000


def open_idle(case, n=N_IDLE):
    """n connections that send nothing."""
    raise_fd_limit(n + 512)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", case.port))
        socks.append(s)
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLOUT)
    connected, deadline = set(), time.monotonic() + 5
    while len(connected) < n and time.monotonic() < deadline:
        connected.update(fd for fd, ev in p.poll(100) if ev & select.POLLOUT and
                         not ev & (select.POLLERR | select.POLLHUP))
    case.assertEqual(len(connected), n, "the kernel refused some connections")
    return socks


class IdleConnections(AbuseCase):
    server = dict(SERVER, max_connections="400", connection_timeout_s="1")

    def test_two_thousand_idle_connections_hold_at_most_max_connections_and_drain(self):
        CASES[type(self).__name__] += 1
        limit = int(self.server["max_connections"])
        timeout_s = int(self.server["connection_timeout_s"])
        # each round of `limit` idle connections is dropped after the timeout (1 s granular)
        bound = (math.ceil(N_IDLE / limit) + 2) * (timeout_s + 1)
        socks = open_idle(self)
        normal = {}

        def normal_client():
            t = time.monotonic()
            normal["answer"] = self.daemon.post(order("behind-the-crowd"), timeout=bound)
            normal["seconds"] = time.monotonic() - t
        client = threading.Thread(target=normal_client)
        client.start()
        held, open_, started = 0, set(socks), time.monotonic()
        try:
            while open_ and time.monotonic() - started < bound:
                held = max(held, socket_count(self.daemon.proc.pid) - 1)  # - listener
                for s in list(open_):
                    try:
                        if s.recv(1) == b"":
                            open_.discard(s)
                    except BlockingIOError:
                        pass
                    except OSError:
                        open_.discard(s)
                time.sleep(0.05)
            client.join(bound)
        finally:
            for s in socks:
                s.close()
        self.assertLessEqual(held, limit, "the daemon held more than max_connections")
        self.assertGreater(held, limit // 2, "the daemon accepted far fewer than the limit")
        self.assertEqual(len(open_), 0, f"{len(open_)} idle connections were still open "
                                         f"after {bound} s")
        self.assertEqual(normal.get("answer", (None,))[0], 202, normal)
        self.assertLess(normal["seconds"], bound)
        self.assertTrue(self.is_stored("behind-the-crowd"))
        self.assert_still_serving("2000 idle connections")


class IdleConnectionsClosedByTheirOwner(AbuseCase):
    # a long timeout, so that only the clients' closing can free the slots
    server = dict(SERVER, max_connections="200", connection_timeout_s="30")

    def test_slots_held_by_idle_connections_are_free_as_soon_as_they_close(self):
        limit = int(self.server["max_connections"])
        with self.refused("2000 idle connections, then closed"):
            socks = open_idle(self)
            try:
                held = 0
                for _ in range(10):
                    held = max(held, socket_count(self.daemon.proc.pid) - 1)
                    time.sleep(0.1)
                self.assertLessEqual(held, limit, "the daemon held more than max_connections")
                self.assertGreater(held, limit // 2)
                # a client arriving now waits behind the crowd (libmicrohttpd stops
                # accepting at the limit): no answer yet, or a clean one, never a 5xx
                a = self.send(*request("GET", "/healthz"), timeout=1)
                self.assertIn(a.status, (HUNG, CLOSED, 200), a)
            finally:
                for s in socks:
                    s.close()
            started = time.monotonic()
        # refused() has just posted a normal order; it must not have waited for a timeout
        self.assertLess(time.monotonic() - started, 5, "slots were not freed when the idle "
                                                       "connections closed")


# ---- oversized headers ------------------------------------------------------------------------

class OversizedHeaders(AbuseCase):
    def each_route(self, extra):
        """The same extra headers on a request to each route, otherwise valid."""
        body = snapshot_bytes("header-abuse")
        yield "POST /v1/orders", request(
            "POST", "/v1/orders", [("Content-Type", "application/json")] +
            signed_headers(self.daemon.key, body) + extra, body)
        yield "GET /v1/orders/ref", request("GET", "/v1/orders/ref", self.auth() + extra)
        yield "GET /healthz", request("GET", "/healthz", extra)

    def test_a_64_kib_header_is_refused_with_431(self):
        for route, req in self.each_route([("X-Padding", "a" * 65536)]):
            with self.subTest(route=route), self.refused(f"64 KiB header on {route}"):
                self.expect(self.send(*req), 431)

    def test_a_thousand_headers_are_refused_with_431(self):
        extra = [(f"X-Header-{i}", "v") for i in range(1000)]
        for route, req in self.each_route(extra):
            with self.subTest(route=route), self.refused(f"1000 headers on {route}"):
                self.expect(self.send(*req), 431)

    def test_a_64_kib_signature_header_is_refused(self):
        body = snapshot_bytes("long-signature")
        headers = [("Content-Type", "application/json")] + signed_headers(self.daemon.key, body)
        headers[-1] = ("webhook-signature", headers[-1][1] + " v1," + "A" * 65536)
        with self.refused("64 KiB webhook-signature"):
            self.expect(self.send(*request("POST", "/v1/orders", headers, body)), 431)

    def test_a_40_kib_request_target_is_refused_with_414(self):
        for target in ("/v1/orders/" + "a" * 40960, "/healthz?" + "a" * 40960):
            with self.subTest(target=target[:20]), self.refused(f"40 KiB {target[:12]}"):
                self.expect(self.send(*request("GET", target, self.auth())), 414)

    def test_ordinary_headers_within_the_limit_are_served(self):
        extra = [(f"X-Header-{i}", "v") for i in range(100)] + [("X-Padding", "a" * 4096)]
        answers = {route: self.send(*req) for route, req in self.each_route(extra)}
        self.expect(answers["POST /v1/orders"], 202)
        self.expect(answers["GET /v1/orders/ref"], 200)
        self.expect(answers["GET /healthz"], 200)


# ---- wrong methods -------------------------------------------------------------------------------

class Methods(AbuseCase):
    ROUTES = {"/v1/orders": ("POST", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS",
                                      "TRACE", "CONNECT", "FROB"]),
              "/v1/orders/ref": ("GET, HEAD", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                               "TRACE", "CONNECT", "FROB"]),
              "/healthz": ("GET, HEAD", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                                         "CONNECT", "FROB"])}

    def test_each_route_answers_405_with_allow_to_every_other_method(self):
        body = snapshot_bytes("ref", version=9, status="F")  # would change ref if taken
        for route, (allow, methods) in self.ROUTES.items():
            for method in methods:
                with self.subTest(method=method, route=route), \
                        self.refused(f"{method} {route}"):
                    headers = ([("Content-Type", "application/json")] + self.auth() +
                               signed_headers(self.daemon.key, body))
                    a = self.send(*request(method, route, headers, body))
                    self.expect(a, 405)
                    self.assertEqual(a.headers.get("allow"), allow, a)

    def test_an_unknown_path_is_404_whatever_the_method(self):
        # "/" is the status page (test_status_page.py)
        for path in ("/nope", "/v1", "/v1/order", "//v1/orders",
                     "/V1/ORDERS", "/v1/ordersx", "/healthz/", "/.env", "/../../etc/passwd"):
            for method in ("GET", "POST", "DELETE"):
                with self.subTest(method=method, path=path), self.refused(f"{method} {path}"):
                    a = self.ingest(snapshot_bytes("not-here"), method=method, target=path,
                                    extra=self.auth())
                    self.expect(a, 404, "not_found")

    def test_a_get_or_head_with_a_body_is_answered_not_dropped(self):
        """A GET may carry a body (RFC 9110 gives it no meaning): the daemon must answer,
        ignoring or refusing the body, not drop the connection."""
        for method, route, headers in (("GET", "/healthz", []),
                                       ("HEAD", "/healthz", []),
                                       ("GET", "/v1/orders/ref", self.auth()),
                                       ("HEAD", "/v1/orders/ref", self.auth())):
            for chunk in (None, 2):
                with self.subTest(method=method, route=route, chunked=bool(chunk)), \
                        self.refused(f"{method} {route} with a body"):
                    a = self.send(*request(method, route, headers, b'{"x":1}', chunk))
                    self.assertIn(a.status, (200, 400, 413),
                                  f"{method} {route} with a body: {a}")


# ---- wrong content types ----------------------------------------------------------------------------

class ContentTypes(AbuseCase):
    def test_anything_but_application_json_is_refused_with_415(self):
        for i, ctype in enumerate((None, "", "text/plain", "application/jsonx",
                                   "application/json-patch+json", "application/x-json",
                                   "text/json", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml",
                                   "application/json\tx", "*/*", "application/*")):
            with self.subTest(content_type=ctype), self.refused(f"Content-Type {ctype!r}"):
                a = self.ingest(snapshot_bytes(f"ctype-{i}"), content_type=ctype)
                self.expect(a, 415, "unsupported_media_type", "Content-Type")
                self.assertFalse(self.is_stored(f"ctype-{i}"))

    def test_application_json_with_parameters_or_in_capitals_is_accepted(self):
        for i, ctype in enumerate(("application/json; charset=utf-8", "Application/JSON",
                                   "application/json;charset=UTF-8")):
            with self.subTest(content_type=ctype):
                self.expect(self.ingest(snapshot_bytes(f"json-{i}"), content_type=ctype), 202)
                self.assertTrue(self.is_stored(f"json-{i}"))


# ---- bodies that reach the parser (signed correctly) -------------------------------------------------

class Bodies(AbuseCase):
    def test_bodies_that_are_not_valid_json_are_refused_naming_the_body(self):
        snap = snapshot_bytes("bad-body")
        cases = {
            "invalid UTF-8": snap.replace(b"Ivan", b"\xff\xfe"),
            "overlong UTF-8": snap.replace(b"Ivan", b"\xc0\xaf"),
            "UTF-16": json.dumps(order("bad-body")).encode("utf-16"),
            "Latin-1 text": snap.replace(b"Ivan", "Iv\xe1n".encode("latin-1")),
            "lone surrogate": snap.replace(b"Ivan", b"\\ud800"),
            "raw NUL in a string": snap.replace(b"Ivan", b"Iv\x00an"),
            "escaped NUL in a string": snap.replace(b"Ivan", b"Iv\\u0000an"),
            "escaped NUL in the id": snap.replace(b'"id": "bad-body"', b'"id": "bad\\u0000x"'),
            "NUL after the document": snap + b"\x00",
            "NUL before the document": b"\x00" + snap,
            "byte order mark": b"\xef\xbb\xbf" + snap,
            "trailing garbage": snap + b"}",
            "two documents": snap + snap,
            "truncated": snap[:-1],
            "duplicate key": snap.replace(b'{"site"', b'{"site": "x", "site"', 1),
            "100k [": b"[" * 100000,
            "100k [ closed": b"[" * 50000 + b"]" * 50000,
            "40k nested objects": b'{"a":' * 40000 + b"1" + b"}" * 40000,
            "deep nesting inside an order": snap.replace(b'"items": ', b'"x": ' + b"[" * 20000
                                                         + b"]" * 20000 + b', "items": '),
            "white space only": b" " * 100,
            "a number": b"1" * 1000,
            "NaN": snap.replace(b'"version": 1', b'"version": NaN'),
        }
        for case, body in cases.items():
            with self.subTest(case=case), self.refused(case):
                a = self.ingest(body)
                self.expect(a, 400, "invalid_field", "(body)")
        self.assertFalse(self.is_stored("bad-body"))

    def test_documents_of_the_wrong_shape_are_refused_naming_the_field(self):
        cases = [("[]", "(body)"), ("null", "(body)"), ('"order"', "(body)"), ("{}", "site"),
                 ('{"site":"shop.example.ru"}', "order"),
                 ('{"site":"shop.example.ru","order":[]}', "order"),
                 ('{"site":["shop.example.ru"],"order":{}}', "site")]
        for body, field in cases:
            with self.subTest(body=body), self.refused(body):
                self.expect(self.ingest(body.encode()), 400, "invalid_field", field)

    def test_order_ids_with_path_and_sql_metacharacters_are_refused(self):
        for oid in ("../../etc/passwd", "1' OR '1'='1", "ref'; DROP TABLE orders;--", "ref%00",
                    "ref/..", "re*", "ref ", " ref", "ref\n", "x" * 65, "", "з"):
            with self.subTest(id=oid), self.refused(f"order.id {oid!r}"):
                body = json.dumps(order(oid)).encode()
                self.expect(self.ingest(body), 400, "invalid_field", "order.id")

    def test_an_empty_body_is_refused(self):
        with self.refused("empty body"):
            self.expect(self.ingest(b""), 400, "invalid_field", "(body)")


# ---- ids in the path of GET /v1/orders/{id} -------------------------------------------------------

class OrderIds(AbuseCase):
    def get(self, path, method="GET"):
        return self.send(*request(method, "/v1/orders/" + path, self.auth()))

    def test_ids_with_path_and_sql_metacharacters_are_refused_naming_the_id(self):
        for path in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "ref/..", "ref%2F..", "ref/",
                     "/", "", "%2e%2e", "1%27%20OR%20%271%27=%271", "ref%27--",
                     "ref;DROP%20TABLE%20orders", "%00", "%25", "re%25", "ref%20", "%20ref",
                     "%D0%B7", "ref%0d%0aX-Injected:%201", "*", "ref%5C", "x" * 65,
                     "x" * 10000):
            with self.subTest(path=path[:40]), self.refused(f"GET /v1/orders/{path[:40]}"):
                a = self.get(path)
                self.expect(a, 400, "invalid_field", "id")
                self.assertNotIn(b"snapshot", a.body)

    def test_ids_that_only_resemble_a_stored_one_are_not_found(self):
        # '_' is an SQL LIKE wildcard and SQLite's = is case-sensitive: neither may match ref
        for path in ("re_", "REF", "Ref", "ref-", "x" * 64, "0"):
            with self.subTest(path=path), self.refused(f"GET /v1/orders/{path}"):
                self.expect(self.get(path), 404, "not_found", "id")
        status, body = self.report("ref")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["order_id"], "ref")

    def test_a_nul_byte_in_the_path_does_not_cut_it_short(self):
        """libmicrohttpd decodes %00 into the path it hands over as a C string: the part
        after it must not just vanish, turning a bad path into a good one."""
        for path in ("ref%00", "ref%00junk", "ref%00/../../etc/passwd"):
            with self.subTest(path=path), self.refused(f"GET /v1/orders/{path}"):
                a = self.get(path)
                self.expect(a, 400, "invalid_field", "id")
                self.assertNotIn(b"snapshot", a.body, "the report of order ref was served")
        with self.subTest(path="/healthz%00x"), self.refused("GET /healthz%00x"):
            self.expect(self.send(*request("GET", "/healthz%00x")), 404)
        with self.subTest(path="/v1/orders%00/evil"), self.refused("POST /v1/orders%00/evil"):
            a = self.ingest(snapshot_bytes("nul-route"), target="/v1/orders%00/evil")
            self.expect(a, 404)
        self.assertFalse(self.is_stored("nul-route"),
                         "an order posted to /v1/orders%00/evil was stored")


# ---- wrong tokens on every authenticated endpoint ----------------------------------------------------

class Authorization(AbuseCase):
    # Not here: "Bearer TOKEN\0junk". libmicrohttpd 0.9.75 cuts a header value at a NUL
    # before the daemon sees it (MHD_lookup_connection_value_n reports the cut length too),
    # so it is the right token; only its holder can send it.

    def wrong_authorizations(self):
        token = self.daemon.admin_token
        basic = base64.b64encode(f"admin:{token}".encode()).decode()
        # (Authorization, status): none or unreadable is 401, asking for Basic; credentials
        # that are not the token are 403 (Basic with the token as password is the admin)
        wrong = base64.b64encode(f"{token}:x".encode()).decode()
        return [(a, 401) for a in (None, "", "Bearer", "Bearer ", "Token " + token, token,
                                   "Basic !!!")] + \
            [(a, 403) for a in ("Bearer wrong", "Bearer " + token[:-1],
                                "Bearer " + token + "x", "Bearer " + token + " ",
                                "Bearer " + token + " x", "Bearer  " + token, "Basic " + wrong,
                                "Bearer " + token.lower(), "Bearer " + self.daemon.secret,
                                "Bearer " + "a" * 4096)]

    def test_every_wrong_authorization_is_401_or_403_on_every_admin_route(self):
        for path in ("ref", "no-such-order", "../../etc/passwd", "ref?access_token=" +
                     self.daemon.admin_token):
            for method in ("GET", "HEAD"):
                for auth, status in self.wrong_authorizations():
                    headers = [] if auth is None else [("Authorization", auth)]
                    shown = auth if auth is None else auth.replace(self.daemon.admin_token, "T")
                    with self.subTest(method=method, path=path[:20], auth=shown), \
                            self.refused(f"{method} {path[:20]} Authorization {shown!r}"):
                        a = self.send(*request(method, "/v1/orders/" + path, headers))
                        self.expect(a, status)
                        if status == 401:
                            self.assertEqual(a.headers.get("www-authenticate"),
                                             'Basic realm="orderbridge"', a)
                        self.assertNotIn(b"snapshot", a.body)

    def test_two_authorization_headers_do_not_let_a_wrong_one_through(self):
        good = "Bearer " + self.daemon.admin_token
        with self.refused("wrong then right Authorization"):
            a = self.send(*request("GET", "/v1/orders/ref", [("Authorization", "Bearer wrong"),
                                                             ("Authorization", good)]))
            self.assertIn(a.status, (400, 401, 403), a)
            self.assertNotIn(b"snapshot", a.body)

    def test_the_right_token_is_accepted_on_every_admin_route(self):
        self.expect(self.send(*request("GET", "/v1/orders/ref", self.auth())), 200)
        self.expect(self.send(*request("HEAD", "/v1/orders/ref", self.auth())), 200)
        self.expect(self.send(*request("GET", "/v1/orders/no-such-order", self.auth())), 404)

    def test_the_admin_token_does_not_sign_orders(self):
        with self.refused("admin token instead of a signature"):
            body = snapshot_bytes("admin-signed")
            a = self.send(*request("POST", "/v1/orders", [("Content-Type", "application/json")]
                                   + self.auth(), body))
            self.expect(a, 401, "bad_signature")


class AdminDisabled(AbuseCase):
    admin = False

    def test_without_an_admin_token_the_order_report_is_403_for_everyone(self):
        for auth in (None, "", "Bearer ", "Bearer", "Bearer (null)", "Bearer wrong"):
            headers = [] if auth is None else [("Authorization", auth)]
            with self.subTest(auth=auth), self.refused(f"admin disabled, {auth!r}"):
                a = self.send(*request("GET", "/v1/orders/ref", headers))
                self.expect(a, 403, "admin_disabled")


# ---- the ingest endpoint's credentials: signatures and timestamps ------------------------------------

class Signatures(AbuseCase):
    def test_every_bad_signature_is_401_naming_the_header(self):
        body = snapshot_bytes("bad-sig")
        now = str(int(time.time()))
        good = dict(signed_headers(self.daemon.key, body, "msg_good", now))
        other_key = base64.b64decode(make_secret()[len("whsec_"):])
        cases = {
            "no headers": ({}, "webhook-signature"),
            "no webhook-id": (dict(good, **{"webhook-id": None}), "webhook-signature"),
            "no webhook-timestamp": (dict(good, **{"webhook-timestamp": None}),
                                     "webhook-signature"),
            "no webhook-signature": (dict(good, **{"webhook-signature": None}),
                                     "webhook-signature"),
            "another secret": (dict(signed_headers(other_key, body, "msg_good", now)),
                               "webhook-signature"),
            "signed for another id": (dict(good, **{"webhook-id": "msg_other"}),
                                      "webhook-signature"),
            "signed for another time": (dict(good, **{"webhook-timestamp": str(int(now) - 1)}),
                                        "webhook-signature"),
            "signed for another body": (dict(signed_headers(self.daemon.key, body + b" ",
                                                            "msg_good", now)),
                                        "webhook-signature"),
            "v2 scheme": (dict(good, **{"webhook-signature": "v2," +
                                        good["webhook-signature"][3:]}), "webhook-signature"),
            "v1a scheme": (dict(good, **{"webhook-signature": "v1a," +
                                         good["webhook-signature"][3:]}), "webhook-signature"),
            "bad base64": (dict(good, **{"webhook-signature": "v1," + "!" * 44}),
                           "webhook-signature"),
            "truncated": (dict(good, **{"webhook-signature": good["webhook-signature"][:-2]}),
                          "webhook-signature"),
            "empty": (dict(good, **{"webhook-signature": ""}), "webhook-signature"),
            "2 KiB of signatures": (dict(good, **{"webhook-signature": " ".join(
                ["v1," + "A" * 43 + "="] * 44 + [good["webhook-signature"]])}),
                "webhook-signature"),
            "id with a dot": (dict(signed_headers(self.daemon.key, body, "msg.1", now)),
                              "webhook-id"),
            "id with a space": (dict(signed_headers(self.daemon.key, body, "msg 1", now)),
                                "webhook-id"),
            "id of 129 characters": (dict(signed_headers(self.daemon.key, body, "m" * 129,
                                                         now)), "webhook-id"),
        }
        for case, (headers, field) in cases.items():
            with self.subTest(case=case), self.refused(case):
                hs = [("Content-Type", "application/json")] + [
                    (k, v) for k, v in headers.items() if v is not None]
                a = self.send(*request("POST", "/v1/orders", hs, body))
                self.expect(a, 401, "bad_signature", field)
        self.assertFalse(self.is_stored("bad-sig"))

    def test_one_good_signature_among_several_is_enough(self):
        body = snapshot_bytes("multi-sig")
        headers = signed_headers(self.daemon.key, body)
        headers[2] = ("webhook-signature", "v1," + "A" * 43 + "= " + headers[2][1])
        a = self.send(*request("POST", "/v1/orders", [("Content-Type", "application/json")]
                               + headers, body))
        self.expect(a, 202)

    def test_a_webhook_id_full_of_sql_metacharacters_is_just_an_id(self):
        wid = "msg_';DROP_TABLE_webhook_ids;--\"%_*"
        body = snapshot_bytes("sql-id")
        self.expect(self.ingest(body, webhook_id=wid), 202)
        before = self.stored()
        self.assertIn("webhook_ids", before)
        again = self.ingest(body, webhook_id=wid)
        self.expect(again, 202)
        self.assertTrue(again.json["duplicate"])
        self.assertEqual(self.stored(), before, "the replay was stored again")


class Timestamps(AbuseCase):
    def at_second_start(self):
        """Waits for the first half of a second, so that the daemon reads its clock in the
        same second as the test computes the timestamp."""
        frac = time.time() % 1
        if frac > 0.5:
            time.sleep(1.02 - frac)
        return int(time.time())

    def test_timestamps_outside_five_minutes_are_401(self):
        for delta in (-301, 301, -3600, 86400 * 365, -10 ** 9):
            with self.subTest(delta=delta), self.refused(f"timestamp {delta:+d} s"):
                now = self.at_second_start()
                a = self.ingest(snapshot_bytes(f"ts{delta}"), timestamp=now + delta)
                self.expect(a, 401, "bad_signature", "webhook-timestamp")

    def test_timestamps_that_are_not_unix_seconds_are_401(self):
        now = int(time.time())
        for ts in ("", "abc", "1e9", f"+{now}", f"-{now}", f"{now}.0", f"{now * 1000}",
                   "9" * 40, f"{now} ", "0x" + format(now, "x")):
            with self.subTest(ts=ts), self.refused(f"timestamp {ts!r}"):
                a = self.ingest(snapshot_bytes("ts-text"), timestamp=ts)
                self.expect(a, 401, "bad_signature", "webhook-timestamp")

    def test_timestamps_within_five_minutes_are_accepted(self):
        for delta in (-299, 299):
            with self.subTest(delta=delta):
                now = self.at_second_start()
                a = self.ingest(snapshot_bytes(f"ts-ok{delta}"), timestamp=now + delta)
                self.expect(a, 202)


# ---- bodies of senders not yet verified: refused on the headers, and one budget ------------------

MIB = 1048576


def headers_only(port, headers, timeout=3.0):
    """Sends a POST's head alone (the body it declares never comes) and reads the answer:
    a daemon that waits for the body before answering is HUNG or CLOSED here."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request("POST", "/v1/orders", headers)[0])
        return read_answer(s, started, timeout)


class EarlyRefusals(AbuseCase):
    """An unsigned sender is refused on its headers, before any of its body is read (issue
    #10: 500 such senders each sending most of 1 MiB took the daemon to 534 MiB)."""
    server = dict(SERVER, max_body_bytes=str(MIB), connection_timeout_s="10")

    def test_a_post_without_webhook_headers_declaring_1_mib_is_401_before_any_body_byte(self):
        for case, framing in (("Content-Length", [("Content-Length", MIB)]),
                              ("chunked", [("Transfer-Encoding", "chunked")])):
            with self.subTest(case=case), self.refused(f"unsigned, {case}, no body sent"):
                a = headers_only(self.port, [("Content-Type", "application/json")] + framing)
                self.expect(a, 401, "bad_signature", "webhook-signature")
                self.assertLess(a.elapsed, 1.0, "the refusal waited for the body")

    def test_bad_webhook_headers_are_401_before_any_body_byte_naming_the_header(self):
        body = snapshot_bytes("early", MIB)
        now = int(time.time())
        good = dict(signed_headers(self.daemon.key, body, "msg_early", now))
        cases = {
            "timestamp an hour old": ({"webhook-timestamp": str(now - 3600)},
                                      "webhook-timestamp"),
            "timestamp 301 s ahead": ({"webhook-timestamp": str(now + 301)},
                                      "webhook-timestamp"),
            "timestamp not seconds": ({"webhook-timestamp": f"{now}.0"}, "webhook-timestamp"),
            "id with a dot": ({"webhook-id": "msg.1"}, "webhook-id"),
            "no webhook-id": ({"webhook-id": None}, "webhook-signature"),
            "signature truncated": ({"webhook-signature": good["webhook-signature"][:-2]},
                                    "webhook-signature"),
            "signature of scheme v2 only": ({"webhook-signature": "v2," +
                                             good["webhook-signature"][3:]},
                                            "webhook-signature"),
            "signature not base64": ({"webhook-signature": "v1," + "!" * 44},
                                     "webhook-signature"),
            "signature empty": ({"webhook-signature": ""}, "webhook-signature"),
        }
        for case, (change, field) in cases.items():
            with self.subTest(case=case), self.refused(case):
                hs = [("Content-Type", "application/json"), ("Content-Length", MIB)] + [
                    (k, v) for k, v in dict(good, **change).items() if v is not None]
                a = headers_only(self.port, hs)
                self.expect(a, 401, "bad_signature", field)
                self.assertLess(a.elapsed, 1.0, "the refusal waited for the body")
        # the same headers, unchanged, are let through to the body, which verifies
        self.expect(self.send(*request("POST", "/v1/orders",
                                       [("Content-Type", "application/json")] +
                                       list(good.items()), body)), 202)


class NoSigningSecret(unittest.TestCase):
    """A daemon without [server] signing_secret_file cannot verify anything: it says so
    (503 not_configured) on the headers, before any body is read, and stores nothing."""

    def test_a_post_is_503_not_configured_before_any_body_byte(self):
        wd = Workdir()
        daemon = Daemon(wd.path)
        with open(daemon.conf) as f:
            conf = [line for line in f if not line.startswith("signing_secret_file")]
        with open(daemon.conf, "w") as f:
            f.writelines(conf)
        try:
            daemon.start()
            body = snapshot_bytes("nokey", MIB // 2)
            head = [("Content-Type", "application/json"), ("Content-Length", len(body))]
            a = headers_only(daemon.port, head + signed_headers(daemon.key, body, "msg_nokey"))
            self.assertEqual((a.status, a.json.get("error")), (503, "not_configured"), a)
            self.assertLess(a.elapsed, 1.0, "the refusal waited for the body")
            self.assertIsNone(daemon.order_state("nokey"))
        finally:
            try:
                daemon.stop()
            finally:
                wd.cleanup()


class BodyBudget(AbuseCase):
    """[server] unverified_body_bytes bounds the bodies being received before their
    signature is verified: past it, 503 busy with Retry-After before the body is read,
    while bodies of at most 64 KiB keep the budget's last eighth."""
    BUDGET = MIB
    # bodies over 64 KiB may use 7/8 of the budget: these take all of that, so that one
    # more big body is refused, and a small one must come out of the last eighth
    HOLDERS = [MAX_BODY] * 3 + [BUDGET * 7 // 8 - 3 * MAX_BODY]
    server = dict(SERVER, connection_timeout_s="30", unverified_body_bytes=str(BUDGET))

    def hold(self, sizes):
        """Senders with well-formed, current headers (a signature for another body) that
        each declare a body of one of `sizes`, send 1 KiB of it and stop. The budget is
        given back just after an answer is written, so an earlier request's share is let
        go first."""
        time.sleep(0.3)
        socks = []
        for size in sizes:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            hs = [("Content-Type", "application/json"), ("Content-Length", size)]
            hs += signed_headers(self.daemon.key, b"another body")
            s.sendall(request("POST", "/v1/orders", hs)[0] + b" " * 1024)
            socks.append(s)
        time.sleep(0.5)  # their headers are read and their bodies reserved
        for s in socks:
            if readable(s, 0):
                self.fail(f"a holder was answered: {read_answer(s, time.monotonic(), 1)}")
        return socks

    def big_head(self):
        body = snapshot_bytes("big", MAX_BODY)
        return [("Content-Type", "application/json"), ("Content-Length", MAX_BODY)] + \
            signed_headers(self.daemon.key, body), body

    def test_past_the_budget_a_big_body_is_503_busy_before_it_is_read(self):
        socks = self.hold(self.HOLDERS)
        try:
            with self.refused("budget held by unverified bodies"):
                a = headers_only(self.port, self.big_head()[0])
                self.expect(a, 503, "busy")
                self.assertGreater(int(a.headers.get("retry-after", "0")), 0, a.headers)
                self.assertLess(a.elapsed, 1.0, "the refusal waited for the body")
                # 100 KiB would fit in the last eighth, which is only for 64 KiB or less
                head = self.big_head()[0]
                head[1] = ("Content-Length", 100 * 1024)
                self.expect(headers_only(self.port, head), 503, "busy")
        finally:
            for s in socks:
                s.close()

    def test_a_small_signed_post_is_accepted_while_big_bodies_hold_the_budget(self):
        socks = self.hold(self.HOLDERS)
        try:
            self.expect(headers_only(self.port, self.big_head()[0]), 503, "busy")
            a = self.ingest(snapshot_bytes("small-during", 4096))
            self.expect(a, 202)
            self.assertTrue(self.is_stored("small-during"))
        finally:
            for s in socks:
                s.close()

    def test_the_budget_is_given_back_when_its_holders_vanish(self):
        for round in range(3):  # a leak, or a double give-back, shows on a later round
            socks = self.hold(self.HOLDERS)
            self.expect(headers_only(self.port, self.big_head()[0]), 503, "busy")
            for s in socks:
                s.close()
            head, body = self.big_head()
            body = snapshot_bytes(f"big-after-{round}", MAX_BODY)
            head = head[:2] + signed_headers(self.daemon.key, body)
            deadline = time.monotonic() + 5
            while True:
                a = self.send(*request("POST", "/v1/orders", head, body))
                if a.status != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.expect(a, 202)
            self.assertTrue(self.is_stored(f"big-after-{round}"))


# ---- replays ---------------------------------------------------------------------------------------

class Replays(AbuseCase):
    def test_a_replayed_webhook_id_with_another_body_is_409_and_changes_nothing(self):
        first = snapshot_bytes("replayed", version=1, status="N")
        self.expect(self.ingest(first, webhook_id="msg_replay"), 202)
        state = self.daemon.order_state("replayed")
        others = {"a newer version": snapshot_bytes("replayed", version=2, status="F"),
                  "another order": snapshot_bytes("replay-other"),
                  "one byte more": b" " + first,
                  "an older version": snapshot_bytes("replayed", version=0, status="C")}
        for case, body in others.items():
            with self.subTest(case=case), self.refused(f"webhook-id reused for {case}"):
                a = self.ingest(body, webhook_id="msg_replay")
                self.expect(a, 409, "webhook_id_reused", "webhook-id")
        self.assertFalse(self.is_stored("replay-other"))
        self.assertEqual(self.daemon.order_state("replayed"), state)

    def test_a_replay_with_another_body_and_an_old_timestamp_is_401(self):
        self.expect(self.ingest(snapshot_bytes("replayed-old"), webhook_id="msg_old"), 202)
        with self.refused("replay, another body, timestamp -301"):
            a = self.ingest(snapshot_bytes("replayed-old", version=2),
                            webhook_id="msg_old", timestamp=int(time.time()) - 301)
            self.expect(a, 401, "bad_signature", "webhook-timestamp")

    def test_a_replayed_webhook_id_with_the_same_body_gets_the_same_answer_stored_once(self):
        body = snapshot_bytes("replay-same")
        req = request("POST", "/v1/orders", [("Content-Type", "application/json")] +
                      signed_headers(self.daemon.key, body, "msg_same"), body)
        first = self.send(*req)
        self.expect(first, 202)
        self.assertFalse(first.json["duplicate"])
        later = request("POST", "/v1/orders", [("Content-Type", "application/json")] +
                        signed_headers(self.daemon.key, body, "msg_same",
                                       int(time.time()) + 5), body)
        for case, again in (("the same bytes", req), ("signed again later", later)):
            with self.subTest(case=case), self.refused(f"replay: {case}"):
                a = self.send(*again)
                self.expect(a, 202)
                self.assertEqual(a.json, dict(first.json, duplicate=True))
        self.assertEqual(len(self.daemon.order_state("replay-same")["history"]), 1)

    def test_a_replayed_stale_snapshot_gets_the_same_stale_answer(self):
        self.expect(self.ingest(snapshot_bytes("stale", version=3, status="P")), 202)
        stale = snapshot_bytes("stale", version=1, status="N")
        req = request("POST", "/v1/orders", [("Content-Type", "application/json")] +
                      signed_headers(self.daemon.key, stale, "msg_stale"), stale)
        first = self.send(*req)
        self.expect(first, 200)
        self.assertTrue(first.json["stale"])
        with self.refused("stale snapshot replayed"):
            again = self.send(*req)
            self.expect(again, 200)
            self.assertEqual(again.json, dict(first.json, duplicate=True))

    def test_concurrent_replays_are_stored_once(self):
        body = snapshot_bytes("replay-race")
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            same = list(pool.map(lambda _: self.ingest(body, webhook_id="msg_race"),
                                 range(32)))
        self.assertEqual([a.status for a in same], [202] * 32)
        self.assertEqual(sorted(a.json["duplicate"] for a in same), [False] + [True] * 31)
        self.assertEqual(len(self.daemon.order_state("replay-race")["history"]), 1)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            differ = list(pool.map(
                lambda v: self.ingest(snapshot_bytes("replay-race2", version=v),
                                      webhook_id="msg_race2"), range(1, 33)))
        self.assertEqual(sorted(a.status for a in differ), [202] + [409] * 31)
        self.assertEqual(len(self.daemon.order_state("replay-race2")["history"]), 1)

    def test_a_refused_request_does_not_use_up_its_webhook_id(self):
        with self.refused("invalid body under msg_reusable"):
            self.expect(self.ingest(b"{broken", webhook_id="msg_reusable"), 400)
        self.expect(self.ingest(snapshot_bytes("reusable"), webhook_id="msg_reusable"), 202)
        self.assertTrue(self.is_stored("reusable"))


if __name__ == "__main__":
    unittest.main()
