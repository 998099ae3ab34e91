#!/usr/bin/env python3
"""Roistat API emulator for orderbridge tests (Python 3 standard library only).

Emulates the part of https://cloud.roistat.com/api/v1 that orderbridge uses:
project/add-orders, project/set-statuses, project/integration/status/list and
project/integration/order/list, with Roistat's error envelope and its habit of
answering HTTP 200 on errors unless the request carries "Use-Http-Code: 1".
On top of that: a rolling one-second rate limit per project, faults that a test
switches on at run time (5xx, hang, TCP reset, slow, lost answer, a 200 whose
body is not a success, add-orders counting every order as skipped; one after
another with "then"), and /_emu/* control endpoints to inspect and steer the
emulator: which visits Roistat has not seen yet, and the status dictionary as
another integration on the same project would replace it, and an order changed or
deleted by hand in Roistat's interface (/_emu/order, for reconcile's tests).

Invariants: all mutable state lives in one Emulator object behind one lock (a
Condition, so a hung request can wait on it). A request that is refused (key,
project, rate limit, bad body, any fault but "lost") changes only the counters
and the history, never the orders or the statuses.
"""

import argparse
import calendar
import collections
import hmac
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/v1/"
MAX_BODY_DEFAULT = 8 * 1024 * 1024
HANG_TIMEOUT_S = 120.0
HISTORY_LEN = 1000
FIELD_VALUE_MAX = 1000  # characters of a custom field's value (roistat.md 1.1)
STATUS_TYPES = ("unused", "progress", "paid", "canceled")
FAULT_MODES = ("none", "error500", "error503", "error400", "hang", "reset", "slow", "lost",
               "answer_error", "no_status", "not_json", "skip")
# add-orders' counters for an order it did not take (the answer's shape: Dangetsu/roistat-sdk
# test/Response/OrderAdd.json, shared/reference/roistat.md section 1.1). "none": counted under
# no skip at all, yet not saved, the answer a client can only read as "not taken".
SKIP_COUNTERS = ("skipped_by_status", "skipped_by_waiting_visit_info", "skipped_by_internal_error",
                 "skipped_by_invalid_format", "none")
COUNTERS = ("requests", "add_orders", "set_statuses", "rate_limited", "faulted", "orders_received")
MAX_UNIX_TIME = 253402300799  # 9999-12-31 23:59:59 UTC; keeps gmtime() safe

# Roistat error code -> HTTP status, used only when the client sent Use-Http-Code: 1.
ERROR_HTTP = {
    "authentication_failed": 401,
    "access_denied": 403,
    "resource_not_found": 404,
    "incorrect_request": 400,
    "request_data_validation_error": 400,
    "request_limit_error": 429,
    "internal_error": 500,
}

DECIMAL_RE = re.compile(r"\d{1,20}(\.\d{1,10})?")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


class ApiError(Exception):
    """A refusal answered with Roistat's {"status":"error",...} envelope."""

    def __init__(self, code, description):
        super().__init__(description)
        self.code = code
        self.description = description


class ServerBug(ApiError):
    """A live project's own failure: HTTP 500 internal_error whatever Use-Http-Code says
    (a crash is not an answer the API chose to give with HTTP 200)."""

    def __init__(self, description):
        super().__init__("internal_error", description)


def log(msg):
    sys.stderr.write("roistat-emu %s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def parse_json(body):
    """Strict JSON: UTF-8 only, no NaN/Infinity, nesting bounded by the recursion limit."""
    def no_constants(name):
        raise ValueError("non-finite number " + name)
    try:
        return json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError("incorrect_request", "Request body is not valid JSON") from None


def is_decimal(value):
    """price/cost: a non-negative JSON number or a decimal string like "4990.00"."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, float):
        return value >= 0 and value != float("inf")
    return isinstance(value, str) and DECIMAL_RE.fullmatch(value) is not None


def parse_date(value):
    """date_create: UNIX seconds (int or digit string) or "YYYY-MM-DD HH:MM" read as UTC.

    Returns UNIX seconds, or None when the value is not one of those forms."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, int):
        return value if 0 <= value <= MAX_UNIX_TIME else None
    if isinstance(value, str) and DATE_RE.fullmatch(value):
        try:
            return calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M"))
        except ValueError:
            return None
    return None


def add_orders_answer(processed):
    """add-orders' answer with every counter at zero (roistat.md, the recorded answer)."""
    return {"processed": processed, "skipped_by_status": 0, "skipped_by_waiting_visit_info": 0,
            "skipped_by_internal_error": 0, "skipped_because_not_changed": 0,
            "skipped_by_invalid_format": 0, "saved": 0, "comment": "", "uploaded": 0,
            "status": "success"}


def order_format_error(order):
    """Why an add-orders element is malformed, or None if it can be stored."""
    if not isinstance(order, dict):
        return "element is not an object"
    if not isinstance(order.get("id"), str) or not order["id"].strip():
        return "id must be a non-empty string"
    for key in ("price", "cost"):
        if order.get(key) is not None and not is_decimal(order[key]):
            return key + " is not a decimal number"
    if order.get("date_create") is not None and parse_date(order["date_create"]) is None:
        return "date_create is neither UNIX time nor YYYY-MM-DD HH:MM"
    if order.get("fields") is not None and not isinstance(order["fields"], dict):
        return "fields is not an object"
    # custom fields: "up to 1000 chars per value" (n8n-nodes-roistat, roistat.md 1.1). What
    # Roistat does with a longer one is not documented: the harsher choice, the element is
    # skipped as malformed. A value is a text or a number, as the PULL export's are.
    for name, value in (order.get("fields") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) and \
                value is not None:
            return "field %r is not a text or a number" % name
        if isinstance(value, str) and len(value) > FIELD_VALUE_MAX:
            return "field %r is longer than %d characters" % (name, FIELD_VALUE_MAX)
    return None


def money(value):
    """Render a stored price/cost for order/list as a JSON number (0 when absent)."""
    if value is None:
        return 0
    amount = Decimal(str(value))
    return int(amount) if amount == amount.to_integral_value() else float(amount)


class Emulator:
    """Everything the emulator remembers. Every method takes the one lock."""

    def __init__(self, project, api_key, rate):
        self.project = str(project)
        self.api_key = api_key.encode()
        self.rate = rate  # admitted requests per rolling second; 0 = unlimited
        self.cond = threading.Condition()
        self.fault_generation = 0  # bumped whenever the fault is set or cleared
        self.stopping = False
        with self.cond:
            self._clear()

    def _clear(self):
        self.orders = {}  # id -> {"order": object as received, "updates": times saved}
        self.received = collections.Counter()  # id -> add-orders elements received for it
        self.statuses = []
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.history = collections.deque(maxlen=HISTORY_LEN)
        self.waiting = set()  # visits Roistat "has not seen yet"
        self.known_visits = None  # when a set, every other visit is one it has not seen yet
        self.pinned_statuses = None  # another integration's dictionary, put back at once
        self.unknown_status = "accept"  # or "skip": add-orders skips a status not in the dictionary
        self.admitted = collections.deque()  # times of requests admitted in the last second
        self.fault = {"mode": "none", "count": 0, "delay_ms": 0, "methods": None, "then": None,
                      "error": None, "description": None, "skip_as": None}
        self.fault_generation += 1
        self.cond.notify_all()  # hung requests give up

    def reset(self):
        with self.cond:
            self._clear()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def key_ok(self, key):
        return key is not None and hmac.compare_digest(key.encode("utf-8", "replace"), self.api_key)

    def begin_request(self, path, faultable):
        """Count one API request; return a copy of the fault that applies to it, or None."""
        with self.cond:
            self.counts["requests"] += 1
            fault = self.fault
            if not faultable or fault["mode"] == "none":
                return None
            if fault["methods"] and not any(path.endswith(m) for m in fault["methods"]):
                return None
            taken = dict(fault, generation=self.fault_generation)
            self.counts["faulted"] += 1
            if fault["count"] > 0:
                fault["count"] -= 1
                if fault["count"] == 0:
                    # used up; a hang already in progress keeps hanging. A "then" fault
                    # takes over at once, with no gap a client could slip a request into
                    # (the generation is kept, so it does not release a hang either).
                    self.fault = fault.get("then") or dict(fault, mode="none")
            return taken

    def set_fault(self, fault):
        with self.cond:
            self.fault = fault
            self.fault_generation += 1
            self.cond.notify_all()

    def wait_hang(self, generation):
        """Block until the fault is changed, the emulator stops, or HANG_TIMEOUT_S pass."""
        with self.cond:
            self.cond.wait_for(lambda: self.fault_generation != generation or self.stopping,
                               timeout=HANG_TIMEOUT_S)

    def admit(self):
        """Rolling-window rate limit. Refused requests do not use up the window."""
        with self.cond:
            now = time.monotonic()
            while self.admitted and now - self.admitted[0] >= 1.0:
                self.admitted.popleft()
            if self.rate and len(self.admitted) >= self.rate:
                self.counts["rate_limited"] += 1
                return False
            self.admitted.append(now)
            return True

    def _count_received(self, orders):
        """The call and every element of it, taken or not (under self.cond)."""
        self.counts["add_orders"] += 1
        self.counts["orders_received"] += len(orders)
        for order in orders:
            if isinstance(order, dict) and isinstance(order.get("id"), str):
                self.received[order["id"]] += 1

    def add_orders(self, orders):
        """Upsert by id, element by element, with Roistat's counters."""
        result = add_orders_answer(len(orders))
        with self.cond:
            self._count_received(orders)
            for order in orders:
                if order_format_error(order) is not None:
                    result["skipped_by_invalid_format"] += 1
                elif self._visit_unseen(order.get("roistat")):
                    result["skipped_by_waiting_visit_info"] += 1
                elif self._status_unknown(order.get("status")):
                    result["skipped_by_status"] += 1
                elif order["id"] in self.orders and self.orders[order["id"]]["order"] == order:
                    result["skipped_because_not_changed"] += 1
                else:
                    old = self.orders.get(order["id"])
                    self.orders[order["id"]] = {"order": order, "updates": old["updates"] + 1 if old else 1,
                                                "updated": time.time()}
                    result["saved"] += 1
            result["uploaded"] = result["saved"]
        return result

    def _visit_unseen(self, visit):
        """skipped_by_waiting_visit_info: "Roistat has not yet seen that visit", the answer
        n8n-nodes-roistat's author reports for a visit it does not know yet (roistat.md 1.1,
        5.3). An order without a visit never waits for one."""
        if visit is None or visit == "":
            return False
        visit = str(visit)
        return visit in self.waiting or (self.known_visits is not None and visit not in self.known_visits)

    def _status_unknown(self, status):
        """skipped_by_status, when switched on: the counter is in add-orders' answer
        (Dangetsu/roistat-sdk test/Response/OrderAdd.json) but no source says what sets it.
        Its name, and set-statuses replacing the whole dictionary (n8n-nodes-roistat
        actions/order/description.ts, roistat.md 1.2), make "the status is not in the
        dictionary" the reading a client must survive. Off by default, because the one
        source that shows an unknown status id (a МойКласс → Roistat bridge, roistat.md 1.2)
        says Roistat took the order and the id waited for a manual mapping."""
        if self.unknown_status != "skip" or status is None:
            return False
        return not any(s["id"] == str(status) for s in self.statuses)

    def add_orders_skipped(self, orders, skip_as):
        """The "skip" fault: every element counted under skip_as, nothing stored."""
        result = add_orders_answer(len(orders))
        if skip_as != "none":
            result[skip_as] = len(orders)
        with self.cond:
            self._count_received(orders)
        return result

    def set_statuses(self, statuses):
        """set-statuses replaces the whole dictionary (n8n-nodes-roistat, roistat.md 1.2).
        With a pinned dictionary, another integration on the project replaces ours again
        at once: the answer is still a success, as Roistat cannot know."""
        with self.cond:
            self.counts["set_statuses"] += 1
            self.statuses = statuses
            if self.pinned_statuses is not None:
                self.statuses = list(self.pinned_statuses)

    def replace_statuses(self, statuses, pinned, unknown):
        """/_emu/statuses: the dictionary as someone else's set-statuses leaves it."""
        with self.cond:
            if statuses is not None:
                self.statuses = list(statuses)
            if pinned is not None:
                self.pinned_statuses = list(self.statuses) if pinned else None
            if unknown is not None:
                self.unknown_status = unknown

    def status_list(self):
        with self.cond:
            return list(self.statuses)

    def order_list(self, limit, offset, filters=None):
        """Orders in the shape Roistat's order/list documents (help-en.roistat.com/API/
        methods/orders), in upload order: those `filters` keeps (see order_filter), from
        `offset`, at most `limit`, with "total" the number that match."""
        with self.cond:
            by_id = {s["id"]: s for s in self.statuses}
            stored = [(entry["order"], entry["updated"]) for entry in self.orders.values()]
        rows = [self._listed(order, updated, by_id) for order, updated in stored]
        if filters is not None:
            rows = [row for row in rows if order_filter(filters, row)]
        return {"data": rows[offset:offset + limit], "total": len(rows), "status": "success"}

    @staticmethod
    def _listed(order, updated, by_id):
        status = None
        if order.get("status") is not None:
            sid = str(order["status"])
            known = by_id.get(sid, {"type": "unused", "name": sid})
            status = {"id": sid, "type": known["type"], "name": known["name"]}
        created = parse_date(order.get("date_create"))
        return {
            "id": order["id"],
            "creation_date": None if created is None else
            time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(created)),
            "update_date": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(updated)),
            "revenue": money(order.get("price")),
            "cost": money(order.get("cost")),
            "client_id": order.get("client_id"),
            "status": status,
            "visit_id": order.get("roistat"),
            "custom_fields": order.get("fields") or {},
        }

    def edit_order(self, spec):
        """/_emu/order: an order changed by hand in Roistat's interface (its revenue, its
        status, its visit) or deleted there, as a user of the project may do; the next
        add-orders of the same id finds it changed (not "skipped_because_not_changed")."""
        with self.cond:
            entry = self.orders.get(spec["id"])
            if entry is None:
                raise ValueError("no order %r" % spec["id"][:64])
            if spec.get("delete"):
                del self.orders[spec["id"]]
                return
            order = dict(entry["order"])
            if "price" in spec:
                order["price"] = spec["price"]
            if "status" in spec:
                order["status"] = spec["status"]
            if "visit" in spec:
                if spec["visit"] is None:
                    order.pop("roistat", None)
                else:
                    order["roistat"] = spec["visit"]
            entry["order"] = order
            entry["updated"] = time.time()

    def set_waiting(self, visits, known=False):
        """visits: those not seen yet (None: unchanged); known: a list makes every other
        visit one not seen yet, None switches that off, False leaves it as it is."""
        with self.cond:
            if visits is not None:
                self.waiting = set(visits)
            if known is not False:
                self.known_visits = None if known is None else set(known)

    def record(self, path, n_orders, http_status, error):
        with self.cond:
            self.history.append({"path": path, "n_orders": n_orders, "http_status": http_status,
                                 "error": error, "at": time.time()})

    def snapshot(self):
        with self.cond:
            return {
                "orders": {oid: dict(e["order"], updates=e["updates"]) for oid, e in self.orders.items()},
                "statuses": list(self.statuses),
                "counts": dict(self.counts),
                "received": dict(self.received),
                "history": list(self.history),
                "waiting": sorted(self.waiting),
                "known_visits": None if self.known_visits is None else sorted(self.known_visits),
                "pinned_statuses": self.pinned_statuses,
                "unknown_status": self.unknown_status,
                "fault": dict(self.fault),
            }


def check_edit(spec):
    """Validate a /_emu/order body: {"id", and any of "price", "status", "visit" (null
    removes it), or "delete": true}."""
    if not (isinstance(spec, dict) and isinstance(spec.get("id"), str) and spec["id"]):
        raise ValueError('body must be {"id": "...", "price"?, "status"?, "visit"?, "delete"?}')
    unknown = set(spec) - {"id", "price", "status", "visit", "delete"}
    if unknown:
        raise ValueError("unknown keys: " + ", ".join(sorted(unknown)))
    if "price" in spec and not is_decimal(spec["price"]):
        raise ValueError("price must be a decimal")
    if "status" in spec and not (isinstance(spec["status"], str) and spec["status"]):
        raise ValueError("status must be a status id")
    if "visit" in spec and spec["visit"] is not None and not isinstance(spec["visit"], str):
        raise ValueError("visit must be a text or null")
    if "delete" in spec and spec["delete"] is not True:
        raise ValueError("delete must be true")
    return spec


def check_fault(spec, depth=0):
    """Validate a /_emu/fault body; return the fault to install or raise ValueError.

    "then" (optional, with a count) is the fault that takes over when count runs out, e.g.
    {"mode": "error400", "count": 1, "then": {"mode": "hang"}}: the remote refuses a
    batch's data and then stops answering. Each half is a documented answer of its own
    (request_data_validation_error as HTTP 400 with Use-Http-Code, and internal_error or
    no answer from a live project: n8n-nodes-roistat helpers/errors.ts and
    helpers/request.ts, see shared/reference/roistat.md); the chain only lets a test
    choose the moment one follows the other, the harsher case being "at once", while a
    client is re-sending a refused batch order by order.

    Answers that are HTTP 200 and yet no success, none of which changes anything (the
    harsher reading: a client that took one for done has lost the change):
      answer_error  Roistat's error envelope {"status":"error","error":E,"description":D}
                    with HTTP 200, what Roistat answers by default (n8n-nodes-roistat
                    transport/index.ts, roistat.md 0); here even with Use-Http-Code, as a
                    project or a method that ignores the header would. E and D from the
                    spec's "error" and "description".
      no_status     a JSON object without "status": the success envelope is
                    {"status":"success"} (roistat.md 0, 1.2), so this is not one.
      not_json      an HTML page, as a proxy or a maintenance page in front of the API.
      skip          add-orders only (unless methods says otherwise): every order counted
                    under "skip_as" (one of SKIP_COUNTERS), none stored."""
    if not isinstance(spec, dict) or spec.get("mode") not in FAULT_MODES:
        raise ValueError("mode must be one of " + ", ".join(FAULT_MODES))
    count, delay = spec.get("count") or 0, spec.get("delay_ms", 1000)
    methods, then = spec.get("methods"), spec.get("then")
    error = spec.get("error", "internal_error")
    description = spec.get("description", "Emulated error answered with HTTP 200")
    skip_as = spec.get("skip_as", "skipped_by_internal_error")
    if not (isinstance(error, str) and isinstance(description, str)):
        raise ValueError("error and description must be strings")
    if skip_as not in SKIP_COUNTERS:
        raise ValueError("skip_as must be one of " + ", ".join(SKIP_COUNTERS))
    if spec["mode"] == "skip" and methods is None:
        methods = ["add-orders"]
    for name, value in (("count", count), ("delay_ms", delay)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**6:
            raise ValueError(name + " must be an integer from 0 to 1000000")
    if methods is not None and (not isinstance(methods, list) or
                                not all(isinstance(m, str) and m for m in methods)):
        raise ValueError("methods must be a list of non-empty strings")
    if then is not None:
        if not count or depth >= 4:
            raise ValueError("then needs a count (and nests at most 4 deep)")
        then = check_fault(then, depth + 1)
    return {"mode": spec["mode"], "count": count, "delay_ms": delay, "methods": methods or None,
            "then": then, "error": error, "description": description, "skip_as": skip_as}


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request never blocks shutdown
    request_queue_size = 64


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "roistat-emu/1"
    timeout = 30  # an idle keep-alive connection gives its thread back after this

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def log_request(self, code="-", size="-"):
        pass  # _route logs one line per request itself

    def log_message(self, fmt, *args):
        log(re.sub(r"key=[^&\s]*", "key=***", "%s %s" % (self.address_string(), fmt % args)))

    # --- plumbing -----------------------------------------------------------

    def _route(self):
        self._status = None  # HTTP status actually sent; None = no answer
        self._note = ""
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/_emu/"):
                self._control(url.path)
            elif url.path.startswith(API_PREFIX):
                self._api(url)
            elif self._body_or_refuse() is not None:
                self._send_json(404, {"status": "error", "error": "resource_not_found",
                                      "description": "Unknown path"})
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            self._note = "client went away"
        except Exception as exc:  # never let one bad request take a thread down silently
            self.close_connection = True
            self._note = "emulator bug: %r" % exc
            if self._status is None:
                self._send_json(500, {"status": "error", "error": "internal_error",
                                      "description": "emulator bug"}, close=True)
        self.log_message("%s %s -> %s %s", self.command, url.path, self._status or "-", self._note)

    def _send_json(self, status, obj, close=False):
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_html(self, status, text):
        data = text.encode("utf-8")
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self):
        """Read the request body: (body, None), (None, None) when the client sent less than
        it announced, or (None, (status, payload)) for a refusal that the caller answers
        and that must close the connection (an unread body makes it unusable)."""
        length = self.headers.get("Content-Length")
        if self.command != "POST" and length is None and "Transfer-Encoding" not in self.headers:
            return b"", None
        refusal = None
        if length is None or "Transfer-Encoding" in self.headers:
            refusal = (411, "Content-Length is required")
        elif not (length.isdigit() and length.isascii()):
            refusal = (400, "Content-Length is not a number")
        elif int(length) > self.server.max_body:
            refusal = (413, "Request body is larger than %d bytes" % self.server.max_body)
        if refusal:
            return None, (refusal[0], {"status": "error", "error": "incorrect_request",
                                       "description": refusal[1]})
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            self._note = "body cut short"
            return None, None
        return body, None

    def _body_or_refuse(self):
        """The body, or None once the request has been refused or lost."""
        body, refusal = self._read_body()
        if refusal:
            self._send_json(*refusal, close=True)
        elif body is None:
            self.close_connection = True
        return body

    def _close_abruptly(self, rst):
        """Drop the connection without an answer; with rst, as a TCP reset (SO_LINGER 0)."""
        self.close_connection = True
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the real close happens when rfile is closed in finish()

    # --- /_emu control endpoints (always real HTTP codes) ------------------

    def _control(self, path):
        emu = self.server.emu
        body = self._body_or_refuse()
        if body is None:
            return
        route = (self.command, path)
        try:
            if route == ("GET", "/_emu/health"):
                self._send_json(200, {"ok": True})
            elif route == ("GET", "/_emu/state"):
                self._send_json(200, emu.snapshot())
            elif route == ("POST", "/_emu/reset"):
                emu.reset()
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/visits"):
                spec = parse_json(body)
                if not (isinstance(spec, dict) and ("waiting" in spec or "known" in spec)
                        and all(is_text_list(spec[k]) or (k == "known" and spec[k] is None)
                                for k in ("waiting", "known") if k in spec)):
                    raise ValueError('body must be {"waiting": ["visit", ...]} and/or '
                                     '{"known": ["visit", ...] or null}')
                emu.set_waiting(spec.get("waiting"), spec.get("known", False))
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/statuses"):
                spec = parse_json(body)
                statuses = spec.get("statuses") if isinstance(spec, dict) else None
                if not isinstance(spec, dict) or (statuses is not None and not (
                        isinstance(statuses, list) and all(
                            isinstance(s, dict) and isinstance(s.get("id"), str) and s["id"]
                            and isinstance(s.get("name"), str) and s.get("type") in STATUS_TYPES
                            for s in statuses))):
                    raise ValueError('body must be {"statuses": [{"id","name","type"}, ...]}')
                pinned, unknown = spec.get("pinned"), spec.get("unknown")
                if pinned is not None and not isinstance(pinned, bool):
                    raise ValueError("pinned must be true or false")
                if unknown not in (None, "accept", "skip"):
                    raise ValueError('unknown must be "accept" or "skip"')
                if statuses is not None:
                    statuses = [{"id": s["id"], "name": s["name"], "type": s["type"]} for s in statuses]
                emu.replace_statuses(statuses, pinned, unknown)
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/fault"):
                emu.set_fault(check_fault(parse_json(body)))
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/order"):
                emu.edit_order(check_edit(parse_json(body)))
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"ok": False, "error": "unknown control endpoint"})
        except (ApiError, ValueError) as exc:
            self._send_json(400, {"ok": False, "error": str(exc)})

    # --- /api/v1 ------------------------------------------------------------

    def _api(self, url):
        """Serve one API call. Its history entry is written before the answer is sent, so
        a client holding the answer always finds the call in /_emu/state."""
        emu = self.server.emu
        body, refusal = self._read_body()
        fault = emu.begin_request(url.path, faultable=body is not None)
        mode = fault["mode"] if fault else "none"
        n_orders, error, status, payload, drop = 0, None, None, None, None
        if fault:
            self._note = "fault " + mode
        if refusal:
            status, payload = refusal
            error = payload["error"]
        elif body is None:
            drop = "close"
        elif mode in ("error500", "error503"):
            status, error = (500 if mode == "error500" else 503), "internal_error"
            payload = {"status": "error", "error": error,
                       "description": "Emulated server failure (%d)" % status}
        elif mode == "error400":
            # a refusal of the data, changing nothing: what a real validation error does
            status, error = 400, "request_data_validation_error"
            payload = {"status": "error", "error": error,
                       "description": "Emulated validation error: field price is invalid"}
        elif mode == "answer_error":
            status, error = 200, fault["error"]
            payload = {"status": "error", "error": error, "description": fault["description"]}
        elif mode == "no_status":
            status, payload = 200, {}
        elif mode == "not_json":
            status, payload = 200, None
        elif mode == "reset":
            drop = "rst"
        elif mode == "hang":
            emu.wait_hang(fault["generation"])
            drop = "close"
        else:
            if mode == "slow":
                time.sleep(fault["delay_ms"] / 1000.0)
            if url.path.endswith("/add-orders"):
                n_orders = count_orders(body)
            skip_as = fault["skip_as"] if mode == "skip" and url.path.endswith("/add-orders") else None
            try:
                status, payload = 200, self._api_call(url, body, skip_as)
            except ApiError as exc:
                real_codes = self.headers.get("Use-Http-Code", "").strip().lower() in ("1", "true")
                status = ERROR_HTTP[exc.code] if real_codes or isinstance(exc, ServerBug) else 200
                error, payload = exc.code, {"status": "error", "error": exc.code,
                                            "description": exc.description}
            if mode == "lost":
                drop = "close"  # applied in full, but the answer never arrives
        emu.record(url.path, n_orders, None if drop else status, error)
        self._note = " ".join(filter(None, (self._note, error, n_orders and "orders=%d" % n_orders)))
        if drop:
            self._close_abruptly(rst=drop == "rst")
        elif mode == "not_json":
            self._send_html(status, "<html><body><h1>Service temporarily unavailable</h1></body></html>")
        else:
            self._send_json(status, payload, close=refusal is not None)

    def _api_call(self, url, body, skip_as=None):
        """Authenticate, check the project and the rate limit, then run the method (with
        skip_as, add-orders counts every order under it and stores none)."""
        emu = self.server.emu
        query = parse_qs(url.query, keep_blank_values=True)
        key = self.headers.get("Api-key") or (query.get("key") or [None])[0]
        if not emu.key_ok(key):
            raise ApiError("authentication_failed", "Authentication failed: invalid API key")
        project = (query.get("project") or [""])[0]
        if not project:
            raise ApiError("resource_not_found", "Project is not specified")
        if project != emu.project:
            raise ApiError("access_denied", "Access denied to project " + project[:32])
        method = API_METHODS.get(url.path[len(API_PREFIX):])
        if method is None:
            raise ApiError("resource_not_found", "Unknown API method")
        if self.command == "GET" and not url.path.endswith("/list"):
            raise ApiError("incorrect_request", "Only methods ending in /list accept GET")
        if not emu.admit():
            raise ApiError("request_limit_error", "Request limit exceeded (%d per second)" % emu.rate)
        if skip_as is not None:
            orders = parse_json(body)
            if not isinstance(orders, list):
                raise ApiError("request_data_validation_error", "Body must be a JSON array of orders")
            return emu.add_orders_skipped(orders, skip_as)
        return method(emu, body)


def is_text_list(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def count_orders(body):
    """How many elements an add-orders body holds, for the history (0 if it is not an array)."""
    try:
        orders = parse_json(body)
    except ApiError:
        return 0
    return len(orders) if isinstance(orders, list) else 0


def api_add_orders(emu, body):
    orders = parse_json(body)
    if not isinstance(orders, list):
        raise ApiError("request_data_validation_error", "Body must be a JSON array of orders")
    return emu.add_orders(orders)


def api_set_statuses(emu, body):
    statuses = parse_json(body)
    if not isinstance(statuses, list):
        raise ApiError("request_data_validation_error", "Body must be a JSON array of statuses")
    for s in statuses:
        if not (isinstance(s, dict) and isinstance(s.get("id"), str) and s["id"]
                and isinstance(s.get("name"), str) and s.get("type") in STATUS_TYPES):
            raise ApiError("request_data_validation_error",
                           "Each status needs string id and name and type in " + "/".join(STATUS_TYPES))
    emu.set_statuses([{"id": s["id"], "name": s["name"], "type": s["type"]} for s in statuses])
    return {"status": "success"}


def api_status_list(emu, body):
    return {"data": emu.status_list(), "status": "success"}


def api_order_list(emu, body):
    query = parse_json(body) if body.strip() else {}
    if not isinstance(query, dict):
        raise ApiError("request_data_validation_error", "Body must be a JSON object")
    limit, offset = query.get("limit", 1000), query.get("offset", 0)
    for name, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ApiError("request_data_validation_error", name + " must be a non-negative integer")
    filters = query.get("filters")
    if filters is not None:
        check_filters(filters)
    return emu.order_list(limit, offset, filters)


# --- order/list filters ----------------------------------------------------------------------
#
# help-en.roistat.com/API/methods/orders: "Apply the standard filters in the request body by
# using the filters array. You cannot filter data by visit properties, additional order
# fields and the "source_type" field. You can also filter data by the deal status funnel
# using the "status" parameter and the following values: "0" – In work, "1" – Paid, "2" –
# Cancelled." Its example is {"and": [[field, op, value], ...]} with ">", "<" and "=" on
# creation_date and status; the visit list (help-ru.roistat.com/API/methods/visit, the same
# "standard filters") shows a flat list [[...], [...]] and ">=", "<=", "like". n8n-nodes-
# roistat helpers/request.ts takes {"and"|"or": [...]} trees as well as the flat list, and
# records the live quirk kept here: an "and" holding exactly one condition answers HTTP 500
# internal_error, the same condition as a flat list answers 200 (roistat.md 1.3).
#
# Where the sources are silent the harsher reading is taken: a field or an operator they do
# not show is refused (request_data_validation_error), not silently ignored (a client that
# thinks it filtered would read the whole project); "like" is a case-insensitive "contains"
# (the visit example matches a system name by a part of it), with % as a wildcard.

FILTER_OPERATORS = ("=", ">", "<", ">=", "<=", "like")
FILTER_DATES = ("creation_date", "update_date")
FILTER_NUMBERS = ("revenue", "cost")
FILTER_TEXTS = ("id", "client_id", "visit_id")
STATUS_FUNNELS = {"0": "progress", "1": "paid", "2": "canceled"}
FILTER_DEPTH_MAX = 8
ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})")


def filter_refused(why):
    return ApiError("request_data_validation_error", "filters: " + why)


def filter_instant(value):
    """A filter's or a row's date ("2016-05-21T21:00:00+0000", "…Z", "….000Z", "+03:00")
    as UNIX seconds, or None."""
    m = ISO_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        return None
    try:
        t = calendar.timegm(time.strptime(m.group(1) + " " + m.group(2), "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None
    zone = m.group(4)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return t


def filter_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return Decimal(str(value).strip())
    except ArithmeticError:
        return None


def check_condition(cond):
    if not (isinstance(cond, list) and len(cond) == 3 and isinstance(cond[0], str)
            and isinstance(cond[1], str)):
        raise filter_refused("a condition is [field, operator, value]")
    field, op, value = cond
    if op.lower() not in FILTER_OPERATORS:
        raise filter_refused("unknown operator %r" % op[:16])
    if field == "status":
        if op != "=" or str(value) not in STATUS_FUNNELS:
            raise filter_refused('status filters by funnel: ["status", "=", "0"|"1"|"2"]')
    elif op.lower() == "like" and field not in FILTER_TEXTS:
        raise filter_refused('"like" compares texts, not %s' % field)
    elif field in FILTER_DATES:
        if filter_instant(value) is None:
            raise filter_refused("%s wants a date-time such as 2016-05-21T21:00:00+0000" % field)
    elif field in FILTER_NUMBERS:
        if filter_number(value) is None:
            raise filter_refused("%s wants a number" % field)
    elif field in FILTER_TEXTS:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise filter_refused("%s wants a text" % field)
    else:
        raise filter_refused("field %r cannot be filtered" % field[:32])


def check_filters(node, depth=0):
    """Refuses a malformed filter before anything is read: the answer does not depend on
    whether orders exist."""
    if depth > FILTER_DEPTH_MAX:
        raise filter_refused("nested too deep")
    if isinstance(node, dict):
        if len(node) != 1 or next(iter(node)) not in ("and", "or"):
            raise filter_refused('a group is {"and": [...]} or {"or": [...]}')
        (kind, items), = node.items()
        if not isinstance(items, list) or not items:
            raise filter_refused('"%s" wants a non-empty list' % kind)
        if kind == "and" and len(items) == 1:
            raise ServerBug("Internal server error")  # the live quirk: see above
        for item in items:
            check_filters(item, depth + 1)
    elif isinstance(node, list) and node and isinstance(node[0], str):
        check_condition(node)
    elif isinstance(node, list):
        for item in node:  # the flat form: every condition holds
            if not (isinstance(item, list) or isinstance(item, dict)):
                raise filter_refused("the list holds conditions")
            check_filters(item, depth + 1)
    else:
        raise filter_refused("filters is a list of conditions or an and/or group")


def condition_holds(cond, row):
    field, op, value = cond
    op = op.lower()
    if field == "status":
        return row["status"] is not None and row["status"]["type"] == STATUS_FUNNELS[str(value)]
    have = row.get(field)
    if have is None:
        return False
    if field in FILTER_DATES:
        have, want = filter_instant(have), filter_instant(value)
    elif field in FILTER_NUMBERS:
        have, want = filter_number(have), filter_number(value)
    else:
        have, want = str(have), str(value)
        if op == "like":
            pattern = want if "%" in want else "%" + want + "%"
            regex = ".*".join(re.escape(part) for part in pattern.split("%"))
            return re.fullmatch(regex, have, re.IGNORECASE | re.DOTALL) is not None
    if have is None or want is None:
        return False
    return {"=": have == want, ">": have > want, "<": have < want, ">=": have >= want,
            "<=": have <= want}[op]


def order_filter(node, row):
    """Whether an order/list row passes a filter that check_filters accepted."""
    if isinstance(node, dict):
        (kind, items), = node.items()
        test = all if kind == "and" else any
        return test(order_filter(item, row) for item in items)
    if node and isinstance(node[0], str):
        return condition_holds(node, row)
    return all(order_filter(item, row) for item in node)


API_METHODS = {
    "project/add-orders": api_add_orders,
    "project/set-statuses": api_set_statuses,
    "project/integration/status/list": api_status_list,
    "project/integration/order/list": api_order_list,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Roistat API emulator for orderbridge tests")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--rate", type=int, default=10, help="requests per second per project; 0 = no limit")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--max-body", type=int, default=MAX_BODY_DEFAULT)
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("--host must be a 127.x.x.x loopback address")
    with open(args.api_key_file, encoding="utf-8") as f:
        api_key = f.read().strip()
    if not api_key:
        parser.error("the API key file is empty")

    # Handlers go in before the port file appears: from then on a harness may signal us.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = Server((args.host, args.port), Handler)
    server.emu = Emulator(args.project, api_key, max(args.rate, 0))
    server.max_body = args.max_body
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    log("listening on %s:%d project=%d rate=%d" % (args.host, port, args.project, args.rate))

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    while not stop.wait(0.5):
        pass
    server.emu.stop()  # wake requests held by a "hang" fault
    server.shutdown()
    server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
