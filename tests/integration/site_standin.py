"""A stand-in for the shop's status endpoint (site/bitrix/orderbridge/lib/StatusEndpoint.php),
in the test process: the daemon's site sink calls it as it would call the module.

Each behaviour follows the module's code and contract (StatusEndpoint.php header comment):
  - Standard Webhooks signature over "id.timestamp.body" with the shared secret, else 401
    (Signature::verify); a timestamp more than 5 minutes off is refused too;
  - a webhook-id already answered 200 gets the same answer, without applying it again
    (seenAnswer/remember); refusals are not remembered;
  - {"order_id","status"?,"canceled"?,"deal_id"?,"deal_url"?}: 400 invalid_field naming
    the field, 404 for an unknown order;
  - a status or cancel change that Bitrix refuses (Order::setField's Result has errors:
    cancelling a paid order, a vetoed status) is 409 {"error":"refused","field",
    "message"} with Bitrix's words, and nothing changes;
  - 200 {"order_id","status","canceled","changed","deal_id"}.
Like the module, a status change made here is sent back to orderbridge as the order's
next snapshot (OnSaleOrderSaved), through `on_change` (the test decides how); a deal id
alone is not (EventHandlers::suppress).
"""
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300  # Signature::TOLERANCE in the module


class SiteStandIn:
    def __init__(self, secret, statuses=("N", "P", "A", "D", "F", "C")):
        self.key = base64.b64decode(secret[len("whsec_"):])
        self.statuses = set(statuses)
        self.orders = {}        # order_id -> {"status", "canceled", "deal_id"}
        self.refuse = {}        # order_id -> Bitrix's words for a refused change
        # orders whose status a handler puts back silently inside save() (the module then
        # answers 200 with the status the order really has): harsher than the module
        self.silent = set()
        self.requests = []      # every request that passed the signature check, in order
        self.seen = {}          # webhook-id -> remembered 200 answer
        self.on_change = None   # fn(order_id, order) after a status/cancel change
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/bitrix/tools/orderbridge/status.php" % \
            self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, order_id, status="N", canceled=False):
        with self.lock:
            self.orders[str(order_id)] = {"status": status, "canceled": canceled,
                                          "deal_id": None}

    def changes(self, order_id):
        """The requests for one order that asked for a status or a cancel."""
        with self.lock:
            return [r for r in self.requests if r.get("order_id") == str(order_id)
                    and ("status" in r or "canceled" in r)]

    def _verify(self, headers, body):
        wid = headers.get("webhook-id") or ""
        ts = headers.get("webhook-timestamp") or ""
        sigs = (headers.get("webhook-signature") or "").split()
        if not wid or not ts.isdigit() or abs(int(ts) - time.time()) > TOLERANCE_S:
            return None
        mac = hmac.new(self.key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        want = "v1," + base64.b64encode(mac).decode()
        return wid if any(hmac.compare_digest(want, s) for s in sigs) else None

    def _apply(self, req):
        def invalid(field, message):
            return 400, {"error": "invalid_field", "field": field, "message": message}
        order_id = req.get("order_id")
        if not isinstance(order_id, str) or not order_id.isdigit():
            return invalid("order_id", "must be the numeric id of a site order")
        status, canceled, deal = req.get("status"), req.get("canceled"), req.get("deal_id")
        if status is None and canceled is None and deal is None:
            return invalid("status", "status, canceled or deal_id is required")
        if canceled is not None and not isinstance(canceled, bool):
            return invalid("canceled", "must be true or false")
        if status is not None and status not in self.statuses:
            return invalid("status", "not an order status of this shop")
        if deal is not None and (not isinstance(deal, str) or not deal.isdigit()):
            return invalid("deal_id", "must be the digits of a Bitrix24 deal id")
        with self.lock:
            o = self.orders.get(order_id)
            if o is None:
                return 404, {"error": "not_found", "order_id": order_id}
            changed = (status is not None and status != o["status"]) or \
                (canceled is not None and canceled != o["canceled"])
            if changed and order_id in self.refuse:
                return 409, {"error": "refused", "field": "status" if status else "canceled",
                             "message": self.refuse[order_id]}
            if status is not None and order_id not in self.silent:
                o["status"] = status
            if canceled is not None:
                o["canceled"] = canceled
            if deal is not None:
                o["deal_id"] = deal
            changed = changed and order_id not in self.silent
            answer = {"order_id": order_id, "status": o["status"], "canceled": o["canceled"],
                      "changed": changed, "deal_id": o["deal_id"]}
            snapshot = dict(o)
        if changed and self.on_change:
            self.on_change(order_id, snapshot)
        return 200, answer

    def _handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(n, 65537))
                headers = {k.lower(): v for k, v in self.headers.items()}
                wid = site._verify(headers, body)
                if wid is None:
                    return self._send(401, {"error": "bad_signature"})
                try:
                    req = json.loads(body)
                except ValueError:
                    return self._send(400, {"error": "invalid_json"})
                with site.lock:
                    site.requests.append(req if isinstance(req, dict) else {})
                    seen = site.seen.get(wid)
                if seen is not None:
                    return self._send(200, seen)
                code, answer = site._apply(req if isinstance(req, dict) else {})
                if code == 200:
                    with site.lock:
                        site.seen[wid] = answer
                self._send(code, answer)

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
