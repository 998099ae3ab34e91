"""Self-test of the Bitrix24 emulator: runs bitrix24_emu.py in a subprocess on port 0 and
checks every behaviour the orderbridge tests rely on, through real HTTP.

Run from the repository root:  python3 -m unittest tests/emulators/test_bitrix24_emu.py
"""

import http.client
import http.server
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bitrix24_emu.py")
USER = "1"
CODE = "k3y0rderbridge7x"
APP_TOKEN = "app-token-from-file"
FAST = {"rate": 1000, "burst": 100000, "operating_limit": {}, "operating_cost": 0,
        "operating_window": 600, "hang_seconds": 10,
        "required_fields": {"deal": [], "contact": [], "company": []},
        "user_fields": {"deal": None, "contact": None, "company": None},
        "currencies": ["RUB", "USD", "EUR", "UAH", "BYN", "KZT", "CNY", "GBP"],
        "language": "en", "max_input_vars": 1000}


class Emulator:
    """One emulator process, its port, and small HTTP helpers around it."""

    def __init__(self, *extra_args):
        self.dir = tempfile.TemporaryDirectory(prefix="b24-emu-test-")
        code_file = os.path.join(self.dir.name, "code")
        token_file = os.path.join(self.dir.name, "token")
        for path, text in ((code_file, CODE), (token_file, APP_TOKEN)):
            with open(path, "w") as f:
                f.write(text + "\n")
        self.port_file = os.path.join(self.dir.name, "port")
        self.log = open(os.path.join(self.dir.name, "stderr.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, EMULATOR, "--port", "0", "--port-file", self.port_file,
             "--user-id", USER, "--code-file", code_file,
             "--application-token-file", token_file, *extra_args],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("emulator did not start: " + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM):
        """Stop the process with sig; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.dir.cleanup()

    # --- HTTP ---------------------------------------------------------------------------

    def raw(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers dict, body bytes) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def rest(self, method, params=None, form=None, http_method="POST", user=USER, code=CODE):
        """Call a REST method through the webhook; (HTTP status, decoded JSON)."""
        path = "/rest/%s/%s/%s.json" % (user, code, method)
        if http_method == "GET":
            path += "?" + (form or "")
            status, _, data = self.raw("GET", path)
        elif form is not None:
            status, _, data = self.raw("POST", path, form.encode(),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        else:
            status, _, data = self.raw("POST", path, json.dumps(params or {}).encode(),
                                       {"Content-Type": "application/json"})
        return status, json.loads(data)

    def ok(self, method, params=None, **kw):
        """A call that must succeed: its "result"."""
        status, body = self.rest(method, params, **kw)
        assert status == 200 and "result" in body, (method, status, body)
        return body["result"]

    def control(self, path, obj=None, method="POST"):
        body = None if method == "GET" else json.dumps(obj or {}).encode()
        status, _, data = self.raw(method, "/_emu/" + path, body,
                                   {"Content-Type": "application/json"})
        return status, json.loads(data)

    def state(self):
        return self.control("state", method="GET")[1]


class EventReceiver:
    """A tiny HTTP server that plays the orderbridge event endpoint."""

    def __init__(self, status=200):
        self.events = queue.Queue()
        receiver = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.events.put((self.headers.get("Content-Type"), body.decode()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/v1/bitrix24/events" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout=5):
        ctype, body = self.events.get(timeout=timeout)
        return ctype, dict(urllib.parse.parse_qsl(body, keep_blank_values=True))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Bitrix24EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        code = cls.emu.stop()
        assert code == 0, "emulator exit code %s" % code

    def setUp(self):
        self.assertEqual(self.emu.control("reset")[0], 200)
        self.assertEqual(self.emu.control("config", FAST)[0], 200)
        self.assertEqual(self.emu.control("event-target", {"url": None})[0], 200)

    def add_deal(self, **fields):
        return self.emu.ok("crm.deal.add", {"fields": fields})

    # --- transport, auth, envelope -------------------------------------------------------

    def test_health_and_state_shape(self):
        self.assertEqual(self.emu.control("health", method="GET"), (200, {"ok": True}))
        state = self.emu.state()
        for key in ("contacts", "companies", "deals", "productrows", "counts"):
            self.assertIn(key, state)
        for key in ("http_requests", "commands", "by_method", "query_limit_exceeded",
                    "operation_time_limit", "faulted", "input_vars_truncated"):
            self.assertIn(key, state["counts"])

    def test_wrong_code_or_user_is_invalid_credentials(self):
        for user, code in ((USER, "wrong"), ("2", CODE)):
            status, body = self.emu.rest("crm.deal.list", {}, user=user, code=code)
            self.assertEqual(status, 401)
            self.assertEqual(body["error"], "INVALID_CREDENTIALS")
            self.assertEqual(body["error_description"], "Invalid request credentials")
        status, _, data = self.emu.raw("POST", "/rest/crm.deal.list.json", b"{}",
                                       {"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(data)["error"]), (401, "NO_AUTH_FOUND"))
        self.assertEqual(self.emu.state()["counts"]["commands"], 0)

    def test_unknown_method_is_404(self):
        status, body = self.emu.rest("crm.deal.frobnicate", {})
        self.assertEqual(status, 404)
        self.assertEqual(body, {"error": "ERROR_METHOD_NOT_FOUND",
                                "error_description": "Method not found!"})

    def test_success_envelope_time_block(self):
        status, body = self.emu.rest("crm.deal.add", {"fields": {"TITLE": "x"}})
        self.assertEqual(status, 200)
        self.assertEqual(body["result"], 1)
        self.assertEqual(set(body["time"]), {"start", "finish", "duration", "processing",
                                             "date_start", "date_finish",
                                             "operating_reset_at", "operating"})
        self.assertRegex(body["time"]["date_start"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")

    def test_method_without_json_suffix_and_get_with_query(self):
        self.add_deal(TITLE="a")
        status, _, data = self.emu.raw("GET", "/rest/%s/%s/crm.deal.get?id=1" % (USER, CODE))
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data)["result"]["TITLE"], "a")
        self.assertEqual(self.emu.ok("crm.deal.get", form="ID=1", http_method="GET")["ID"], "1")

    def test_answers_escape_like_php(self):
        self.add_deal(TITLE="a/b Чайник")
        _, headers, data = self.emu.raw("GET", "/rest/%s/%s/crm.deal.get?id=1" % (USER, CODE))
        self.assertIn(b'"a\\/b \\u0427', data)
        self.assertEqual(int(headers["Content-Length"]), len(data))
        self.assertTrue(headers["Content-Type"].startswith("application/json"))

    def test_form_encoded_php_nested_keys(self):
        form = ("fields[NAME]=Ivan&fields[PHONE][0][VALUE]=%2B7%20900%20111-22-33"
                "&fields[PHONE][0][VALUE_TYPE]=MOBILE&fields[EMAIL][][VALUE]=i%40x.ru")
        cid = self.emu.ok("crm.contact.add", form=form)
        contact = self.emu.ok("crm.contact.get", {"id": cid})
        self.assertEqual(contact["NAME"], "Ivan")
        self.assertEqual(contact["PHONE"][0]["VALUE"], "+7 900 111-22-33")
        self.assertEqual(contact["PHONE"][0]["VALUE_TYPE"], "MOBILE")
        self.assertEqual(contact["EMAIL"][0]["VALUE"], "i@x.ru")
        self.assertEqual(contact["EMAIL"][0]["VALUE_TYPE"], "WORK")

    # --- contacts and companies ----------------------------------------------------------

    def test_contact_add_get_update_multifields(self):
        cid = self.emu.ok("crm.contact.add", {"fields": {
            "NAME": "Ivan", "LAST_NAME": "Petrov",
            "PHONE": [{"VALUE": "+79001234567", "VALUE_TYPE": "WORK"}]}})
        self.assertEqual(cid, 1)
        contact = self.emu.ok("crm.contact.get", {"id": cid})
        self.assertEqual(contact["ID"], "1")
        self.assertEqual(contact["HAS_PHONE"], "Y")
        self.assertEqual(set(contact["PHONE"][0]), {"ID", "VALUE", "VALUE_TYPE", "TYPE_ID"})
        phone_id = contact["PHONE"][0]["ID"]
        # An item without ID is appended; one with ID changes that item.
        self.assertIs(self.emu.ok("crm.contact.update", {"id": cid, "fields": {
            "EMAIL": [{"VALUE": "ivan@example.ru"}],
            "PHONE": [{"ID": phone_id, "VALUE": "+79007654321"}, {"VALUE": "+79990000000"}]}}),
            True)
        contact = self.emu.ok("crm.contact.get", {"id": cid})
        self.assertEqual([p["VALUE"] for p in contact["PHONE"]], ["+79007654321", "+79990000000"])
        self.assertEqual(contact["EMAIL"][0]["VALUE"], "ivan@example.ru")
        # An empty VALUE with an ID deletes the item.
        self.emu.ok("crm.contact.update", {"id": cid, "fields": {
            "PHONE": [{"ID": phone_id, "VALUE": ""}]}})
        self.assertEqual(len(self.emu.ok("crm.contact.get", {"id": cid})["PHONE"]), 1)

    def test_contact_errors(self):
        for method, params, message in (
                ("crm.contact.get", {"id": 99}, "Not found"),
                ("crm.contact.get", {}, "ID is not defined or invalid"),
                ("crm.contact.update", {"id": 99, "fields": {}}, "Not found"),
                ("crm.contact.add", {"fields": "x"}, "Parameter 'fields' must be array.")):
            status, body = self.emu.rest(method, params)
            self.assertEqual(status, 400, method)
            self.assertEqual(body, {"error": "", "error_description": message})

    def test_contact_list_select_multifields_only_when_named(self):
        self.emu.ok("crm.contact.add", {"fields": {"NAME": "A", "PHONE": [{"VALUE": "1"}]}})
        rows = self.emu.ok("crm.contact.list", {})
        self.assertNotIn("PHONE", rows[0])
        rows = self.emu.ok("crm.contact.list", {"select": ["ID", "NAME", "PHONE"]})
        self.assertEqual(set(rows[0]), {"ID", "NAME", "PHONE"})

    def test_crm_refuses_bad_emails_and_long_multifield_values(self):
        # crm_field_multi.php CheckComplexFields with main's check_email(); nothing written.
        bad = ["ivan@mail", "ivan@mail.r", "iv an@mail.ru", "ivan@mail.ru,", ".ivan@mail.ru",
               "iva..n@mail.ru", "ivan@ma_il.ru", "ivan.@mail.ru", "ivan@@mail.ru",
               "a@" + "b" * 300 + ".ru", "ivan@mail." + "x" * 21]
        good = ["ivan@mail.ru", " Ivan.Petrov+shop@Mail.RU ", "Ivan <ivan@mail.ru>",
                "почта@пример.рф", "o'neil&co@x-y.example.com", "a@b.cd"]
        for method in ("crm.contact.add", "crm.company.add"):
            for value in bad:
                status, body = self.emu.rest(method, {"fields": {
                    "NAME": "x", "EMAIL": [{"VALUE": value, "VALUE_TYPE": "WORK"}]}})
                self.assertEqual(status, 400, value)
                self.assertEqual(body["error"], "")
                if len(value) <= 250:
                    self.assertEqual(body["error_description"], 'The field "Work E-mail" '
                                     'contains an incorrect address.<br />', value)
            for value in good:
                self.emu.ok(method, {"fields": {"EMAIL": [{"VALUE": value}]}})
        status, body = self.emu.rest("crm.contact.add", {"fields": {
            "PHONE": [{"VALUE": "+7" + "9" * 249, "VALUE_TYPE": "MOBILE"}],
            "EMAIL": [{"VALUE": "x" * 251 + "@mail.ru", "VALUE_TYPE": "HOME"}]}})
        self.assertEqual((status, body["error_description"]), (400,
                         'The field "Mobile" must not exceed 250 characters.<br />'
                         'The field "Home E-mail" must not exceed 250 characters.<br />'))
        state = self.emu.state()
        self.assertEqual((len(state["contacts"]), len(state["companies"])), (6, 6))
        # Update is checked too and changes nothing when refused; the portal's language.
        self.emu.control("config", {"language": "ru"})
        status, body = self.emu.rest("crm.contact.update", {"id": 1, "fields": {
            "NAME": "changed", "EMAIL": [{"VALUE": "bad@", "VALUE_TYPE": "WORK"}]}})
        self.assertEqual((status, body["error_description"]),
                         (400, 'Поле "Рабочий e-mail" содержит некорректный адрес.<br />'))
        self.assertIsNone(self.emu.state()["contacts"]["1"]["NAME"])
        # In a batch: the command's error, the other commands run.
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "c": "crm.contact.add?fields[EMAIL][0][VALUE]=not%20an%20email",
            "d": "crm.deal.add?fields[CONTACT_ID]=$result[c]"}})
        self.assertEqual(list(res["result_error"]), ["c"])

    def test_required_user_fields_unknown_fields_and_currencies(self):
        self.emu.control("config", {"required_fields": {"deal": ["UF_CRM_1"],
                                                        "contact": ["UF_CRM_PASSPORT"]},
                                    "user_fields": {"deal": ["UF_CRM_2"]},
                                    "currencies": ["RUB", "USD"]})
        for fields in ({}, {"UF_CRM_1": ""}, {"UF_CRM_1": []}, {"UF_CRM_1": [""]}):
            self.assertEqual(self.emu.rest("crm.deal.add", {"fields": fields}), (400, {
                "error": "", "error_description": "The required field UF_CRM_1 is missing.<br>"}))
        deal = self.add_deal(UF_CRM_1="x", UF_CRM_2="y", UF_CRM_NOPE="z", CURRENCY_ID="USD")
        stored = self.emu.state()["deals"][str(deal)]
        self.assertEqual((stored["UF_CRM_1"], stored["UF_CRM_2"]), ("x", "y"))
        self.assertNotIn("UF_CRM_NOPE", stored)  # a field the portal lacks: dropped silently
        # Update: only a given required field is checked.
        self.emu.ok("crm.deal.update", {"id": deal, "fields": {"TITLE": "t"}})
        self.assertEqual(self.emu.rest("crm.deal.update", {"id": deal, "fields": {
            "UF_CRM_1": ""}})[0], 400)
        self.assertEqual(self.emu.rest("crm.contact.add", {"fields": {"NAME": "a"}})[1][
            "error_description"], "The required field UF_CRM_PASSPORT is missing.<br>")
        self.emu.ok("crm.company.add", {"fields": {"TITLE": "no requirements"}})
        status, body = self.emu.rest("crm.deal.add", {"fields": {"UF_CRM_1": "x",
                                                                 "CURRENCY_ID": "EUR"}})
        self.assertEqual((status, body["error_description"]),
                         (400, 'Invalid value for the "Currency" field'))
        self.assertEqual(len(self.emu.state()["deals"]), 1)
        for bad in ({"required_fields": {"lead": []}}, {"required_fields": {"deal": ["X"]}},
                    {"currencies": ["rub"]}, {"language": "de"}, {"max_input_vars": 0}):
            self.assertEqual(self.emu.control("config", bad)[0], 400, bad)

    def test_company_add_get_update_list(self):
        coid = self.emu.ok("crm.company.add", {"fields": {
            "TITLE": "Roga LLC", "PHONE": [{"VALUE": "+74951112233"}]}})
        self.assertEqual(self.emu.ok("crm.company.get", {"id": coid})["TITLE"], "Roga LLC")
        self.emu.ok("crm.company.update", {"id": coid, "fields": {"TITLE": "Roga & Kopyta"}})
        status, body = self.emu.rest("crm.company.list", {"filter": {"%TITLE": "kopyta"}})
        self.assertEqual(status, 200)
        self.assertEqual([r["ID"] for r in body["result"]], ["1"])
        self.assertEqual(body["total"], 1)
        self.assertEqual(self.emu.rest("crm.company.get", {"id": 7})[0], 400)

    # --- deals ---------------------------------------------------------------------------

    def test_deal_fields_round_trip_like_the_real_api(self):
        cid = self.emu.ok("crm.contact.add", {"fields": {"NAME": "x"}})
        deal_id = self.add_deal(TITLE="Order 123", OPPORTUNITY=4990, CURRENCY_ID="RUB",
                                CONTACT_ID=cid, ORIGINATOR_ID="shop.example.ru",
                                ORIGIN_ID="123", UF_CRM_ROISTAT="4521890", NO_SUCH_FIELD="x")
        deal = self.emu.ok("crm.deal.get", {"id": deal_id})
        self.assertEqual(deal["OPPORTUNITY"], "4990.00")
        self.assertEqual(deal["CONTACT_ID"], "1")
        self.assertEqual(deal["CATEGORY_ID"], "0")
        self.assertEqual(deal["STAGE_ID"], "NEW")
        self.assertEqual(deal["UF_CRM_ROISTAT"], "4521890")
        self.assertEqual((deal["ORIGINATOR_ID"], deal["ORIGIN_ID"]), ("shop.example.ru", "123"))
        self.assertNotIn("NO_SUCH_FIELD", deal)
        for key in ("ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
                    "CONTACT_ID", "COMPANY_ID", "DATE_CREATE", "DATE_MODIFY"):
            self.assertIn(key, deal)
        # CONTACT_IDS sets the (deprecated) CONTACT_ID too.
        d2 = self.add_deal(CONTACT_IDS=[cid])
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": d2})["CONTACT_ID"], "1")

    def test_deal_stage_must_exist_in_its_pipeline(self):
        status, body = self.emu.rest("crm.deal.add", {"fields": {"STAGE_ID": "C1:NEW",
                                                                 "CATEGORY_ID": 0}})
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "")
        self.assertIn("Stage", body["error_description"])
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {
            "CATEGORY_ID": 1, "STAGE_ID": "WON"}})[0], 400)
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {"CATEGORY_ID": 7}})[0], 400)
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {"CURRENCY_ID": "XXX"}})[0],
                         400)
        self.assertEqual(self.emu.state()["deals"], {})
        # A second pipeline: category from the stage prefix; default stage is the first.
        d1 = self.add_deal(STAGE_ID="C1:EXECUTING")
        d2 = self.add_deal(CATEGORY_ID=1)
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": d1})["CATEGORY_ID"], "1")
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": d2})["STAGE_ID"], "C1:NEW")
        status, _ = self.emu.rest("crm.deal.update", {"id": d1, "fields": {"STAGE_ID": "WON"}})
        self.assertEqual(status, 400)
        self.emu.ok("crm.deal.update", {"id": d1, "fields": {"STAGE_ID": "C1:WON"}})
        deal = self.emu.ok("crm.deal.get", {"id": d1})
        self.assertEqual((deal["STAGE_ID"], deal["STAGE_SEMANTIC_ID"], deal["CLOSED"]),
                         ("C1:WON", "S", "Y"))

    def test_deal_update_and_errors(self):
        deal_id = self.add_deal(TITLE="x", STAGE_ID="NEW")
        before = self.emu.ok("crm.deal.get", {"id": deal_id})
        self.emu.ok("crm.deal.update", {"id": deal_id, "fields": {
            "STAGE_ID": "PREPARATION", "CATEGORY_ID": 1, "OPPORTUNITY": "10.5"}})
        after = self.emu.ok("crm.deal.get", {"id": deal_id})
        self.assertEqual((after["STAGE_ID"], after["CATEGORY_ID"], after["OPPORTUNITY"],
                          after["TITLE"]), ("PREPARATION", "0", "10.50", "x"))
        self.assertGreaterEqual(after["DATE_MODIFY"], before["DATE_MODIFY"])
        for params, message in (({"id": 99, "fields": {}}, "Not found"),
                                ({"id": "abc", "fields": {}}, "ID is not defined or invalid"),
                                ({"id": deal_id, "fields": []},
                                 "Parameter 'fields' must be array.")):
            self.assertEqual(self.emu.rest("crm.deal.update", params),
                             (400, {"error": "", "error_description": message}))
        self.assertEqual(self.emu.rest("crm.deal.get", {"id": 42}),
                         (400, {"error": "", "error_description": "Not found"}))

    def test_deal_list_filters_select_order_and_paging(self):
        for i in range(60):
            self.add_deal(TITLE="d%d" % i, ORIGINATOR_ID="shop" if i % 2 else "other",
                          ORIGIN_ID=str(i), CATEGORY_ID=1 if i >= 55 else 0,
                          OPPORTUNITY=i * 10)
        status, body = self.emu.rest("crm.deal.list", {
            "filter": {"=ORIGINATOR_ID": "shop", "ORIGIN_ID": "7"}, "select": ["ID", "STAGE_ID"]})
        self.assertEqual(body["result"], [{"ID": "8", "STAGE_ID": "NEW"}])
        self.assertEqual(body["total"], 1)
        self.assertNotIn("next", body)
        # Paging: 50 per page, "next" until the end.
        status, body = self.emu.rest("crm.deal.list", {"select": ["ID"]})
        self.assertEqual((len(body["result"]), body["total"], body["next"]), (50, 60, 50))
        status, body = self.emu.rest("crm.deal.list", {"select": ["ID"], "start": 50})
        self.assertEqual((len(body["result"]), body["total"]), (10, 60))
        self.assertNotIn("next", body)
        # start=-1: no COUNT, no total.
        status, body = self.emu.rest("crm.deal.list", {"filter": {">ID": 55}, "start": -1,
                                                       "select": ["ID"]})
        self.assertEqual([r["ID"] for r in body["result"]], ["56", "57", "58", "59", "60"])
        self.assertNotIn("total", body)
        ids = lambda flt, **kw: [r["ID"] for r in self.emu.ok(
            "crm.deal.list", dict({"filter": flt, "select": ["ID"]}, **kw))]
        self.assertEqual(ids({"CATEGORY_ID": 1}), ["56", "57", "58", "59", "60"])
        self.assertEqual(ids({">=ID": 58, "<ID": 60}), ["58", "59"])
        self.assertEqual(ids({"<=OPPORTUNITY": 20}), ["1", "2", "3"])
        self.assertEqual(ids({"@ID": [3, 5], "!ID": 5}), ["3"])
        self.assertEqual(ids({"CATEGORY_ID": 1}, order={"ID": "DESC"})[0], "60")
        self.assertEqual(ids({">DATE_MODIFY": "2000-01-01T00:00:00+03:00"})[:2], ["1", "2"])
        self.assertEqual(ids({">DATE_MODIFY": "2999-01-01T00:00:00+03:00"}), [])
        # The default select is "*" plus UF_* fields.
        self.emu.ok("crm.deal.update", {"id": 1, "fields": {"UF_CRM_ROISTAT": "42"}})
        row = self.emu.ok("crm.deal.list", {"filter": {"ID": 2}})[0]
        self.assertIn("UF_CRM_ROISTAT", row)
        self.assertIn("DATE_MODIFY", row)

    def test_list_filters_arrays_mean_in_and_equals_is_exact_case_insensitive(self):
        for title in ("Alpha", "Beta", "Alphabet", "gamma"):
            self.add_deal(TITLE=title)
            self.emu.ok("crm.company.add", {"fields": {"TITLE": title}})
            self.emu.ok("crm.contact.add", {"fields": {"NAME": title}})

        def ids(method, form):
            return [r["ID"] for r in self.emu.ok(method, form=form + "&select[]=ID")]

        for method, field in (("crm.deal.list", "TITLE"), ("crm.company.list", "TITLE"),
                              ("crm.contact.list", "NAME")):
            self.assertEqual(ids(method, "filter[%%3D%s][]=alpha&filter[%%3D%s][]=GAMMA"
                                 % (field, field)), ["1", "4"], method)
            self.assertEqual(ids(method, "filter[%%3D%s]=ALPHA" % field), ["1"], method)
            self.assertEqual(ids(method, "filter[ID][]=2&filter[ID][]=3"), ["2", "3"], method)
            self.assertEqual(ids(method, "filter[@ID][]=2&filter[@ID][]=4"), ["2", "4"])
            self.assertEqual(ids(method, "filter[!@ID][]=2&filter[!@ID][]=4"), ["1", "3"])
        self.assertEqual([r["ID"] for r in self.emu.ok("crm.deal.list", {
            "filter": {"=TITLE": ["beta", "Alphabet"]}, "select": ["ID"]})], ["2", "3"])
        # parse_str splits a piece at its FIRST "=": an unencoded "=" in a key loses the
        # filter ("filter[" becomes "filter_"), and the list answers every record.
        self.assertEqual(ids("crm.deal.list", "filter[=TITLE]=Alpha"), ["1", "2", "3", "4"])

    def test_productrows_set_replaces_all_rows(self):
        deal_id = self.add_deal(OPPORTUNITY=5000)
        self.emu.ok("crm.deal.productrows.set", {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Kettle", "PRICE": "2495.00", "QUANTITY": "2"},
            {"PRODUCT_NAME": "Cup", "PRICE": 10, "QUANTITY": 1}]})
        rows = self.emu.ok("crm.deal.productrows.get", {"id": deal_id})
        self.assertEqual([r["PRODUCT_NAME"] for r in rows], ["Kettle", "Cup"])
        self.assertEqual((rows[0]["OWNER_ID"], rows[0]["OWNER_TYPE"]), (str(deal_id), "D"))
        # Not manual: OPPORTUNITY follows the rows.
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": deal_id})["OPPORTUNITY"], "5000.00")
        self.emu.ok("crm.deal.productrows.set", {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Pot", "PRICE": 100, "QUANTITY": 3}]})
        rows = self.emu.ok("crm.deal.productrows.get", {"id": deal_id})
        self.assertEqual([r["PRODUCT_NAME"] for r in rows], ["Pot"])
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": deal_id})["OPPORTUNITY"], "300.00")
        # Manual opportunity stays as set.
        manual = self.add_deal(OPPORTUNITY=777, IS_MANUAL_OPPORTUNITY="Y")
        self.emu.ok("crm.deal.productrows.set", {"id": manual, "rows": [{"PRICE": 1}]})
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": manual})["OPPORTUNITY"], "777.00")
        # No rows at all clears them.
        self.emu.ok("crm.deal.productrows.set", {"id": deal_id})
        self.assertEqual(self.emu.ok("crm.deal.productrows.get", {"id": deal_id}), [])
        self.assertEqual(self.emu.rest("crm.deal.productrows.set", {"id": 99, "rows": []}),
                         (400, {"error": "", "error_description": "Not found"}))
        self.assertEqual(self.emu.rest("crm.deal.productrows.get", {})[0], 400)

    def test_productrows_keep_an_absolute_discount_and_refuse_one_without_its_sum(self):
        deal_id = self.add_deal(OPPORTUNITY=0)
        self.emu.ok("crm.deal.productrows.set", {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Kettle", "PRICE": "2495.00", "QUANTITY": "2",
             "DISCOUNT_TYPE_ID": 1, "DISCOUNT_SUM": "250.00"},
            {"PRODUCT_NAME": "Delivery", "PRICE": "300.00", "QUANTITY": "1"}]})
        kettle, delivery = self.emu.ok("crm.deal.productrows.get", {"id": deal_id})
        # PRICE stays the final price; NETTO is the price before the discount
        self.assertEqual((kettle["PRICE"], kettle["PRICE_NETTO"], kettle["DISCOUNT_TYPE_ID"],
                          kettle["DISCOUNT_SUM"], kettle["DISCOUNT_RATE"]),
                         (2495, 2745, 1, 250, 9.11))
        self.assertEqual(delivery["DISCOUNT_TYPE_ID"], 2)
        # the rows' sum is what the buyer pays: 2 × 2495 + 300
        self.assertEqual(self.emu.ok("crm.deal.get", {"id": deal_id})["OPPORTUNITY"], "5290.00")
        # crm-deal-productrows-set.md's errors; nothing is written when one row is refused
        status, body = self.emu.rest("crm.deal.productrows.set", {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Pot", "PRICE": 1},
            {"PRODUCT_NAME": "Cup", "PRICE": 1, "DISCOUNT_TYPE_ID": 1}]})
        self.assertEqual((status, body["error"]), (400, "ERROR_CORE"))
        self.assertIn("Discount Sum (DISCOUNT_SUM) is required if Monetary", body["error_description"])
        status, body = self.emu.rest("crm.deal.productrows.set", {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Cup", "PRICE": 1, "DISCOUNT_TYPE_ID": 2}]})
        self.assertIn("Discount Rate (DISCOUNT_RATE) is required", body["error_description"])
        self.assertEqual(len(self.emu.ok("crm.deal.productrows.get", {"id": deal_id})), 2)

    def test_deal_fields_describe_standard_and_configured_user_fields(self):
        fields = self.emu.ok("crm.deal.fields", {})
        self.assertEqual(fields["TITLE"]["type"], "string")
        self.assertFalse(fields["COMMENTS"]["isReadOnly"])
        self.assertTrue(fields["ID"]["isReadOnly"])
        self.assertTrue(fields["CATEGORY_ID"]["isImmutable"])
        self.assertEqual(fields["ASSIGNED_BY_ID"]["type"], "user")
        self.assertEqual(fields["UTM_SOURCE"]["type"], "string")
        self.assertNotIn("UF_CRM_ADDR", fields)  # every UF accepted, none written yet
        self.emu.control("config", {"user_fields": {"deal": ["UF_CRM_ADDR", "UF_CRM_N"]},
                                    "deal_uf_types": {"UF_CRM_N": {"type": "integer"}}})
        fields = self.emu.ok("crm.deal.fields", {})
        self.assertEqual((fields["UF_CRM_ADDR"]["type"], fields["UF_CRM_ADDR"]["isDynamic"]),
                         ("string", True))
        self.assertEqual(fields["UF_CRM_N"]["type"], "integer")
        self.assertNotIn("UF_CRM_OTHER", fields)

    # --- findbycomm ----------------------------------------------------------------------

    def test_max_input_vars_cuts_long_queries_silently(self):
        deal = self.add_deal()
        rows = "&".join("rows[%d][PRODUCT_NAME]=p%d&rows[%d][PRICE]=1&rows[%d][QUANTITY]=1"
                        % (i, i, i, i) for i in range(400))
        res = self.emu.ok("batch", {"cmd": {"r": "crm.deal.productrows.set?id=%d&%s"
                                                 % (deal, rows)}})
        self.assertEqual((res["result"]["r"], res["result_error"]), (True, []))
        stored = self.emu.state()["productrows"][str(deal)]
        self.assertEqual(len(stored), 333)  # id + 999 of 1201 variables: 333 whole rows
        self.assertEqual(self.emu.state()["deals"][str(deal)]["OPPORTUNITY"], "333.00")
        # A form-encoded direct call is cut the same way; a JSON body is not.
        self.emu.ok("crm.deal.productrows.set", form="id=%d&%s" % (deal, rows))
        self.assertEqual(len(self.emu.state()["productrows"][str(deal)]), 333)
        self.emu.ok("crm.deal.productrows.set", {"id": deal, "rows": [
            {"PRODUCT_NAME": "p%d" % i, "PRICE": 1} for i in range(400)]})
        self.assertEqual(len(self.emu.state()["productrows"][str(deal)]), 400)
        self.assertEqual(self.emu.state()["counts"]["input_vars_truncated"], 2)
        # Configurable; past the limit even the id can be lost.
        self.emu.control("config", {"max_input_vars": 1})
        res = self.emu.ok("batch", {"cmd": {"g": "crm.deal.get?select[]=ID&id=%d" % deal}})
        self.assertEqual(res["result_error"]["g"]["error_description"],
                         "ID is not defined or invalid")

    def test_findbycomm_phone_normalisation(self):
        c1 = self.emu.ok("crm.contact.add", {"fields": {"PHONE": [{"VALUE": "8 (900) 123-45-67"}]}})
        c2 = self.emu.ok("crm.contact.add", {"fields": {"PHONE": [{"VALUE": "+7 900 765 43 21"}]}})
        co = self.emu.ok("crm.company.add", {"fields": {"PHONE": [{"VALUE": "+79001234567"}]}})
        find = lambda values, **kw: self.emu.ok("crm.duplicate.findbycomm", dict(
            {"type": "PHONE", "values": values}, **kw))
        self.assertEqual(find(["+79001234567"], entity_type="CONTACT"), {"CONTACT": [c1]})
        self.assertEqual(find(["79001234567", "89007654321"], entity_type="CONTACT"),
                         {"CONTACT": [c1, c2]})
        self.assertEqual(find(["+7 (900) 123-45-67#404"]), {"CONTACT": [c1], "COMPANY": [co]})
        self.assertEqual(find(["+79990000000"], entity_type="CONTACT"), [])
        self.assertEqual(find([79001234567], entity_type="CONTACT"), [])  # numbers are skipped

    def test_findbycomm_email_is_case_insensitive(self):
        cid = self.emu.ok("crm.contact.add", {"fields": {"EMAIL": [{"VALUE": "Ivan@Example.RU"}]}})
        self.assertEqual(self.emu.ok("crm.duplicate.findbycomm", {
            "entity_type": "CONTACT", "type": "EMAIL", "values": [" ivan@example.ru "]}),
            {"CONTACT": [cid]})

    def test_findbycomm_errors_and_the_20_value_cap(self):
        self.assertEqual(self.emu.rest("crm.duplicate.findbycomm", {"values": ["1"]}),
                         (400, {"error": "Communication type is not defined",
                                "error_description": "Parameter 'type' is required."}))
        status, body = self.emu.rest("crm.duplicate.findbycomm", {"type": "FAX", "values": ["1"]})
        self.assertEqual((status, body["error"]), (400, ""))
        self.assertIn("not supported", body["error_description"])
        self.assertEqual(self.emu.rest("crm.duplicate.findbycomm", {"type": "PHONE"})[1],
                         {"error": "", "error_description": "Communication values is not defined."})
        # Only the first 20 distinct values are looked at; the rest are ignored silently.
        late = self.emu.ok("crm.contact.add", {"fields": {"PHONE": [{"VALUE": "+79000000099"}]}})
        values = ["+790000000%02d" % i for i in range(21)] + ["+79000000099"]
        self.assertEqual(self.emu.ok("crm.duplicate.findbycomm", {
            "type": "PHONE", "values": values}), [])
        self.assertEqual(self.emu.ok("crm.duplicate.findbycomm", {
            "type": "PHONE", "values": values[-20:]}), {"CONTACT": [late]})
        self.assertEqual(self.emu.state()["counts"]["findbycomm_truncated"], 1)

    # --- pipelines -----------------------------------------------------------------------

    def test_pipelines_and_stages(self):
        status, body = self.emu.rest("crm.category.list", {"entityTypeId": 2})
        cats = {c["id"]: c for c in body["result"]["categories"]}
        self.assertEqual(set(cats), {0, 1})
        self.assertEqual((cats[0]["isDefault"], cats[1]["name"]), ("Y", "Wholesale"))
        self.assertEqual(body["total"], 2)
        self.assertEqual(self.emu.rest("crm.category.list", {"entityTypeId": 999})[0], 400)
        stages = self.emu.ok("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}})
        self.assertEqual([s["STATUS_ID"] for s in stages], [
            "NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON",
            "LOSE", "APOLOGY"])
        self.assertEqual(stages[5]["SEMANTICS"], "S")
        stages = self.emu.ok("crm.status.list", {"order": {"SORT": "ASC"},
                                                 "filter": {"ENTITY_ID": "DEAL_STAGE_1"}})
        self.assertEqual([s["STATUS_ID"] for s in stages], [
            "C1:NEW", "C1:PREPARATION", "C1:EXECUTING", "C1:FINAL_INVOICE", "C1:WON", "C1:LOSE"])
        self.assertEqual(stages[0]["CATEGORY_ID"], "1")
        old = self.emu.ok("crm.dealcategory.stage.list", {"id": 1})
        self.assertEqual(old[0], {"NAME": "New", "SORT": "10", "STATUS_ID": "C1:NEW"})
        self.assertEqual(len(self.emu.ok("crm.dealcategory.stage.list", {})), 8)
        self.assertEqual(self.emu.ok("crm.dealcategory.stage.list", {"id": 9}), [])

    # --- batch ---------------------------------------------------------------------------

    def test_batch_chains_contact_deal_rows_with_result_references(self):
        status, body = self.emu.rest("batch", {"halt": 0, "cmd": {
            "c": "crm.contact.add?fields[NAME]=Ivan&fields[PHONE][0][VALUE]=%2B79001234567",
            "d": "crm.deal.add?fields[TITLE]=Order%201&fields[CONTACT_ID]=$result[c]"
                 "&fields[STAGE_ID]=C1:NEW",
            "r": "crm.deal.productrows.set?id=$result[d]&rows[0][PRODUCT_NAME]=Kettle"
                 "&rows[0][PRICE]=2495&rows[0][QUANTITY]=2",
            "g": "crm.deal.get?id=$result[d]",
            "t": "crm.deal.update?id=$result[g][ID]&fields[TITLE]=Order%20$result[g][ID]%20x"}})
        self.assertEqual(status, 200)
        res = body["result"]
        self.assertEqual((res["result"]["c"], res["result"]["d"], res["result"]["r"]), (1, 1, True))
        self.assertEqual(res["result_error"], [])
        self.assertEqual(res["result_total"], [])
        self.assertEqual(res["result_next"], [])
        self.assertEqual(set(res["result_time"]["c"]), {"start", "finish", "duration",
                                                        "processing", "date_start",
                                                        "date_finish", "operating",
                                                        "operating_reset_at"})
        self.assertIn("operating", body["time"])
        state = self.emu.state()
        self.assertEqual(state["deals"]["1"]["CONTACT_ID"], "1")
        self.assertEqual(state["deals"]["1"]["CATEGORY_ID"], "1")
        self.assertEqual(state["deals"]["1"]["TITLE"], "Order 1 x")
        self.assertEqual(state["productrows"]["1"][0]["PRODUCT_NAME"], "Kettle")
        counts = state["counts"]
        self.assertEqual((counts["http_requests"], counts["commands"]), (1, 5))
        self.assertEqual(counts["by_method"]["batch"], 1)
        self.assertEqual(counts["by_method"]["crm.deal.add"], 1)

    def test_batch_errors_go_to_result_error_and_halt_stops(self):
        cmd = {"a": "crm.deal.get?id=99", "b": "crm.deal.add?fields[TITLE]=x",
               "c": "crm.deal.list?select[]=ID"}
        res = self.emu.ok("batch", {"halt": 0, "cmd": cmd})
        self.assertEqual(res["result_error"], {"a": {"error": "",
                                                     "error_description": "Not found"}})
        self.assertEqual(res["result"]["b"], 1)
        self.assertEqual(res["result_total"], {"c": 1})
        res = self.emu.ok("batch", {"halt": 1, "cmd": cmd})
        self.assertEqual(res["result"], [])
        self.assertEqual(list(res["result_error"]), ["a"])
        self.assertEqual(res["result_time"], [])
        self.assertEqual(len(self.emu.state()["deals"]), 1)

    def test_batch_reference_to_a_failed_command_is_not_an_error(self):
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "c": "crm.contact.get?id=99",
            "d": "crm.deal.add?fields[CONTACT_ID]=$result[c][ID]"}})
        self.assertEqual(list(res["result_error"]), ["c"])
        self.assertEqual(self.emu.state()["deals"]["1"]["CONTACT_ID"], None)

    def test_batch_reference_to_a_failed_command_reads_the_whole_result_map(self):
        # CRestUtil::processBatchElement stops the walk at the missing key and keeps the
        # result map; (int) of a non-empty array is 1: deal 1's rows, contact 1.
        self.emu.ok("crm.contact.add", {"fields": {"NAME": "First"}})
        self.add_deal(TITLE="First deal")
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "l": "crm.deal.list?select[]=ID",
            "c0": "crm.contact.get?id=99",
            "d0": "crm.deal.get?id=99",
            "r": "crm.deal.productrows.set?id=$result[d0]&rows[0][PRODUCT_NAME]=Wrong"
                 "&rows[0][PRICE]=7",
            "d1": "crm.deal.add?fields[TITLE]=Second&fields[CONTACT_ID]=$result[c0]"}})
        self.assertEqual(sorted(res["result_error"]), ["c0", "d0"])
        self.assertEqual((res["result"]["r"], res["result"]["d1"]), (True, 2))
        state = self.emu.state()
        self.assertEqual(state["productrows"]["1"][0]["PRODUCT_NAME"], "Wrong")
        self.assertEqual(state["deals"]["1"]["OPPORTUNITY"], "7.00")
        self.assertEqual(state["deals"]["2"]["CONTACT_ID"], "1")
        # With nothing succeeded yet the map is empty: (int) [] is 0, an invalid id.
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "d0": "crm.deal.get?id=99",
            "r": "crm.deal.productrows.set?id=$result[d0]&rows[0][PRODUCT_NAME]=x"}})
        self.assertEqual(res["result_error"]["r"]["error_description"],
                         "The parameter id is invalid or not defined.")

    def test_batch_references_are_resolved_in_every_value(self):
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "c": "crm.contact.add?fields[NAME]=Ivan",
            "n": "crm.contact.add?fields[NAME]=$result[c]&fields[LAST_NAME]=x%20$result[c]%20y"
                 "&fields[SECOND_NAME]=%24result%5Bc%5D&fields[COMMENTS]=$RESULT[c]"
                 "&fields[POST]=$result_error[c]&fields[SOURCE_DESCRIPTION]=a$result[c]%40x.ru",
            "d": "crm.deal.add?fields[TITLE]=Kettle",
            "g": "crm.deal.get?id=$result[d]",
            "r": "crm.deal.productrows.set?id=$result[d]&rows[0][PRODUCT_NAME]=$result[g][TITLE]"
                 "&rows[0][PRICE]=$result[g][ID]&rows[1][PRODUCT_NAME]=$result[g][TITLE][0]"}})
        self.assertEqual(res["result_error"], [])
        contact = self.emu.state()["contacts"]["2"]
        self.assertEqual(contact["NAME"], "1")            # the referenced value, not the text
        self.assertEqual(contact["LAST_NAME"], "x 1 y")   # embedded: substituted in place
        self.assertEqual(contact["SECOND_NAME"], "1")     # after URL-decoding
        self.assertIsNone(contact["COMMENTS"])            # $RESULT matches, but no such key
        self.assertEqual(contact["POST"], "1")            # $result + path "_error[c]"
        # "([^\s]*)" is greedy: the match runs to the next space, so "@x.ru" is eaten too.
        self.assertEqual(contact["SOURCE_DESCRIPTION"], "a1")
        rows = self.emu.state()["productrows"]["1"]
        self.assertEqual([r["PRODUCT_NAME"] for r in rows], ["Kettle", "K"])  # string offset
        self.assertEqual(rows[0]["PRICE"], 1)

    def test_batch_halt_and_the_php_array_shapes(self):
        self.add_deal()
        cmd = ["crm.deal.get?id=1", "crm.deal.get?id=99", "crm.deal.add?fields[TITLE]=x",
               "crm.deal.get?id=98"]
        res = self.emu.ok("batch", {"halt": 1, "cmd": cmd})
        self.assertEqual(list(res["result"]), [{"ID": "1"} and res["result"][0]])
        self.assertIsInstance(res["result"], list)       # keys 0: a JSON list
        self.assertEqual(res["result_error"], {"1": {"error": "",
                                                     "error_description": "Not found"}})
        self.assertEqual(len(self.emu.state()["deals"]), 1)  # "2" never ran
        res = self.emu.ok("batch", {"halt": 0, "cmd": cmd})
        self.assertEqual(sorted(res["result"]), ["0", "2"])  # keys 0, 2: an object
        self.assertEqual(sorted(res["result_error"]), ["1", "3"])
        res = self.emu.ok("batch", {"halt": 0, "cmd": cmd[1:2] + cmd[3:]})
        self.assertEqual(res["result"], [])
        self.assertEqual([e["error_description"] for e in res["result_error"]],
                         ["Not found", "Not found"])        # keys 0, 1: a JSON list

    def test_batch_over_50_commands(self):
        cmd = {"k%02d" % i: "crm.deal.add?fields[TITLE]=t%d" % i for i in range(52)}
        res = self.emu.ok("batch", {"cmd": cmd})
        self.assertEqual(len(res["result"]), 50)
        self.assertEqual(res["result_error"], {
            k: {"error": "ERROR_BATCH_LENGTH_EXCEEDED",
                "error_description": "Max batch length exceeded"} for k in ("k50", "k51")})
        counts = self.emu.state()["counts"]
        self.assertEqual((counts["http_requests"], counts["commands"]), (1, 50))

    def test_batch_form_encoded_list_cmd_and_nested_batch(self):
        form = urllib.parse.urlencode([("halt", "0"),
                                       ("cmd[0]", "crm.deal.add?fields[TITLE]=a b"),
                                       ("cmd[1]", "crm.deal.get?id=$result[0]"),
                                       ("cmd[2]", "batch?cmd[x]=crm.deal.list")])
        res = self.emu.ok("batch", form=form)
        self.assertEqual(res["result"][0], 1)
        self.assertEqual(res["result"][1]["TITLE"], "a b")
        self.assertEqual(res["result_error"]["2"]["error"], "ERROR_BATCH_METHOD_NOT_ALLOWED")
        res = self.emu.ok("batch", {"cmd": ["crm.deal.get?id=1", "crm.deal.get?id=1"]})
        self.assertIsInstance(res["result"], list)  # keys 0..n-1 give a JSON array

    # --- limits --------------------------------------------------------------------------

    def test_leaky_bucket_refuses_with_503_and_applies_nothing(self):
        self.emu.control("config", {"rate": 0.001, "burst": 3})
        for _ in range(3):
            self.add_deal()
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {}}),
                         (503, {"error": "QUERY_LIMIT_EXCEEDED",
                                "error_description": "Too many requests"}))
        self.assertEqual(len(self.emu.state()["deals"]), 3)
        self.assertEqual(self.emu.state()["counts"]["query_limit_exceeded"], 1)
        # One batch is one request, however many commands it has.
        self.emu.control("config", {"rate": 0.001, "burst": 1})
        self.emu.ok("batch", {"cmd": {str(i): "crm.deal.add?fields[TITLE]=b" for i in range(10)}})
        self.assertEqual(self.emu.rest("crm.deal.list", {})[0], 503)
        self.assertEqual(len(self.emu.state()["deals"]), 13)
        # The bucket drains at `rate` per second.
        self.emu.control("config", {"rate": 20, "burst": 1})
        self.emu.ok("crm.deal.list", {})
        self.assertEqual(self.emu.rest("crm.deal.list", {})[0], 503)
        time.sleep(0.1)
        self.emu.ok("crm.deal.list", {})

    def test_operating_limit_blocks_one_method_with_429(self):
        self.emu.control("config", {"operating_limit": {"crm.deal.get": 2},
                                    "operating_cost": 1, "operating_window": 1})
        deal_id = self.add_deal()
        status, body = self.emu.rest("crm.deal.get", {"id": deal_id})
        self.assertEqual(body["time"]["operating"], 1)
        self.emu.ok("crm.deal.get", {"id": deal_id})
        status, body = self.emu.rest("crm.deal.get", {"id": deal_id})
        self.assertEqual(status, 429)
        self.assertEqual(body["error"], "OPERATION_TIME_LIMIT")
        self.assertGreater(body["time"]["operating_reset_at"], time.time() - 1)
        self.emu.ok("crm.deal.list", {})  # other methods keep working
        res = self.emu.ok("batch", {"cmd": {"g": "crm.deal.get?id=1", "l": "crm.deal.list"}})
        self.assertEqual(res["result_error"]["g"]["error"], "OPERATION_TIME_LIMIT")
        self.assertIn("l", res["result"])
        time.sleep(1.1)
        self.emu.ok("crm.deal.get", {"id": deal_id})

    def test_operating_is_per_method_inside_a_batch_and_batch_is_not_metered(self):
        self.emu.control("config", {"operating_limit": {"crm.deal.add": 5, "batch": 0},
                                    "operating_cost": 1})
        cmd = {"a%d" % i: "crm.deal.add?fields[TITLE]=t%d" % i for i in range(7)}
        cmd.update({"l1": "crm.deal.list?select[]=ID", "l2": "crm.deal.list?select[]=ID"})
        status, body = self.emu.rest("batch", {"halt": 0, "cmd": cmd})
        self.assertEqual(status, 200)   # batch itself is never blocked or metered
        res = body["result"]
        self.assertEqual(sorted(res["result"]), ["a0", "a1", "a2", "a3", "a4", "l1", "l2"])
        self.assertEqual(res["result_error"], {
            k: {"error": "OPERATION_TIME_LIMIT",
                "error_description": "Method is blocked due to operation time limit."}
            for k in ("a5", "a6")})
        times = res["result_time"]
        self.assertEqual([times["a%d" % i]["operating"] for i in range(5)], [1, 2, 3, 4, 5])
        self.assertEqual((times["l1"]["operating"], times["l2"]["operating"]), (1, 2))
        self.assertGreaterEqual(times["a0"]["operating_reset_at"], int(time.time()) + 590)
        self.assertEqual(body["time"]["operating"], 0)
        self.assertEqual(len(self.emu.state()["deals"]), 5)
        counts = self.emu.state()["counts"]
        self.assertEqual(counts["operation_time_limit"], 2)
        self.assertEqual(counts["by_method"], {"batch": 1, "crm.deal.add": 7,
                                               "crm.deal.list": 2})
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {}})[0], 429)
        self.assertEqual(self.emu.state()["counts"]["operation_time_limit"], 3)

    # --- faults --------------------------------------------------------------------------

    def test_faults_answer_errors_count_and_filter_by_method(self):
        self.emu.control("fault", {"mode": "error503", "count": 1})
        status, headers, data = self.emu.raw("POST", "/rest/%s/%s/crm.deal.add" % (USER, CODE),
                                             b"{}", {"Content-Type": "application/json"})
        self.assertEqual(status, 503)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.add_deal()  # count 1 used up
        self.emu.control("fault", {"mode": "error500"})
        self.assertEqual(self.emu.rest("crm.deal.list", {})[1]["error"], "INTERNAL_SERVER_ERROR")
        self.emu.control("fault", {"mode": "query_limit", "methods": ["batch"]})
        self.emu.ok("crm.deal.list", {})
        self.assertEqual(self.emu.rest("batch", {"cmd": {}}),
                         (503, {"error": "QUERY_LIMIT_EXCEEDED",
                                "error_description": "Too many requests"}))
        self.emu.control("fault", {"mode": "expired_token", "count": 2})
        self.assertEqual(self.emu.rest("crm.deal.list", {})[0], 401)
        self.assertEqual(self.emu.rest("crm.deal.list", {})[1]["error"], "expired_token")
        self.emu.ok("crm.deal.list", {})
        state = self.emu.state()
        self.assertEqual(state["counts"]["faulted"], 5)
        self.assertEqual(len(state["deals"]), 1)
        self.assertEqual(self.emu.control("fault", {"mode": "bogus"})[0], 400)

    def test_fault_command_error_fails_matching_commands_in_batch_and_direct(self):
        desc = 'Field "UF_CRM_X" is required.'
        self.assertEqual(self.emu.control("fault", {
            "mode": "command_error", "methods": ["crm.deal.add"], "count": 2,
            "code": "", "description": desc})[0], 200)
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "c": "crm.contact.add?fields[NAME]=A", "d": "crm.deal.add?fields[TITLE]=x",
            "l": "crm.deal.list"}})
        self.assertEqual(res["result_error"], {"d": {"error": "", "error_description": desc}})
        self.assertEqual(sorted(res["result"]), ["c", "l"])
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {"TITLE": "y"}}),
                         (400, {"error": "", "error_description": desc}))
        self.assertEqual(self.emu.state()["deals"], {})   # nothing written
        self.add_deal(TITLE="z")                          # count 2 used up
        self.assertEqual(self.emu.state()["counts"]["faulted"], 2)
        self.assertEqual(self.emu.state()["fault"]["mode"], "none")

    def test_fault_command_error_unkeyed_and_omit(self):
        self.emu.control("fault", {"mode": "command_error", "methods": ["crm.deal.get"],
                                   "code": "NOT_FOUND", "description": "Not found",
                                   "unkeyed": True})
        self.add_deal()
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "a": "crm.deal.get?id=1", "b": "crm.deal.list", "c": "crm.deal.get?id=1"}})
        self.assertEqual(res["result_error"], [{"error": "NOT_FOUND",
                                                "error_description": "Not found"}] * 2)
        self.assertEqual(list(res["result"]), ["b"])
        # omit: neither result nor error; halt still stops after the failing command.
        self.emu.control("fault", {"mode": "command_error", "methods": ["crm.deal.get"],
                                   "omit": True, "count": 0})
        res = self.emu.ok("batch", {"halt": 0, "cmd": {
            "a": "crm.deal.get?id=1", "b": "crm.deal.list"}})
        self.assertEqual((res["result_error"], list(res["result"])), ([], ["b"]))
        res = self.emu.ok("batch", {"halt": 1, "cmd": {
            "a": "crm.deal.get?id=1", "b": "crm.deal.list"}})
        self.assertEqual((res["result"], res["result_error"]), ([], []))
        self.emu.control("fault", {"mode": "none"})
        self.emu.ok("crm.deal.get", {"id": 1})
        for bad in ({"description": 5}, {"unkeyed": "yes"}, {"code": "x" * 1001}):
            self.assertEqual(self.emu.control("fault", dict(mode="command_error", **bad))[0],
                             400)

    def test_fault_reset_drops_the_request_unapplied(self):
        self.emu.control("fault", {"mode": "reset", "count": 1})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.emu.rest("crm.deal.add", {"fields": {"TITLE": "x"}})
        self.assertEqual(self.emu.state()["deals"], {})

    def test_fault_lost_applies_then_drops_the_answer(self):
        self.emu.control("fault", {"mode": "lost", "count": 1, "methods": ["crm.deal.add"]})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.emu.rest("crm.deal.add", {"fields": {"TITLE": "x", "ORIGIN_ID": "5"}})
        self.assertEqual(self.emu.state()["deals"]["1"]["ORIGIN_ID"], "5")
        self.assertEqual(self.emu.ok("crm.deal.list", {"filter": {"ORIGIN_ID": "5"}})[0]["ID"],
                         "1")

    def test_fault_hang_holds_until_cleared_or_timeout(self):
        self.emu.control("fault", {"mode": "hang"})
        outcome = {}

        def call():
            t0 = time.monotonic()
            try:
                self.emu.rest("crm.deal.add", {"fields": {}})
                outcome["error"] = None
            except (ConnectionError, http.client.HTTPException, socket.timeout) as exc:
                outcome["error"] = exc
            outcome["elapsed"] = time.monotonic() - t0

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.4)
        self.assertNotIn("elapsed", outcome)  # still held
        self.emu.control("fault", {"mode": "none"})
        thread.join(5)
        self.assertIsNotNone(outcome["error"])
        self.assertLess(outcome["elapsed"], 3)
        self.assertEqual(self.emu.state()["deals"], {})
        # Without a clear, the hold ends by itself after hang_seconds.
        self.emu.control("config", {"hang_seconds": 0.3})
        self.emu.control("fault", {"mode": "hang", "count": 1})
        t0 = time.monotonic()
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.emu.rest("crm.deal.list", {})
        self.assertLess(time.monotonic() - t0, 3)
        self.emu.ok("crm.deal.list", {})

    def test_fault_slow_answers_normally_after_the_delay(self):
        self.emu.control("fault", {"mode": "slow", "delay_ms": 400, "count": 1,
                                   "methods": ["crm.deal.add"]})
        t0 = time.monotonic()
        deal_id = self.add_deal(TITLE="late")
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        self.assertEqual(self.emu.state()["deals"][str(deal_id)]["TITLE"], "late")
        t0 = time.monotonic()
        self.add_deal(TITLE="on time")  # count 1 used up
        self.assertLess(time.monotonic() - t0, 0.4)
        self.assertEqual(self.emu.control("fault", {"mode": "slow", "delay_ms": "1s"})[0], 400)

    # --- outgoing events -----------------------------------------------------------------

    def test_deal_add_and_update_post_outgoing_webhooks(self):
        receiver = EventReceiver()
        try:
            self.emu.control("event-target", {"url": receiver.url, "application_token": "tok"})
            deal_id = self.add_deal(TITLE="x")
            ctype, form = receiver.next()
            self.assertEqual(ctype, "application/x-www-form-urlencoded")
            self.assertEqual(form["event"], "ONCRMDEALADD")
            self.assertEqual(form["data[FIELDS][ID]"], str(deal_id))
            self.assertEqual(form["auth[application_token]"], "tok")
            for key in ("ts", "event_handler_id", "auth[domain]", "auth[client_endpoint]",
                        "auth[server_endpoint]", "auth[member_id]"):
                self.assertIn(key, form)
            self.emu.ok("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "EXECUTING"}})
            self.assertEqual(receiver.next()[1]["event"], "ONCRMDEALUPDATE")
            # A manager's change in the CRM (a call, a chat) bypasses the webhook.
            status, body = self.emu.control("deal", {"id": deal_id, "fields": {"STAGE_ID": "WON"}})
            self.assertEqual((status, body["id"]), (200, deal_id))
            self.assertEqual(receiver.next()[1]["data[FIELDS][ID]"], str(deal_id))
            status, body = self.emu.control("deal", {"fields": {"TITLE": "Call", "OPPORTUNITY": 9}})
            self.assertEqual(receiver.next()[1]["event"], "ONCRMDEALADD")
            self.assertEqual(self.emu.state()["deals"][str(body["id"])]["OPPORTUNITY"], "9.00")
            self.assertEqual(self.emu.state()["counts"]["http_requests"], 2)
            # Without a token in the request, the one from --application-token-file is used.
            self.emu.control("event-target", {"url": receiver.url})
            self.emu.control("deal", {"fields": {}})
            self.assertEqual(receiver.next()[1]["auth[application_token]"], APP_TOKEN)
            self.assertEqual(self.emu.control("deal", {"fields": {"STAGE_ID": "NOPE"}})[0], 400)
        finally:
            receiver.close()

    def test_failed_event_is_not_retried(self):
        receiver = EventReceiver(status=500)
        try:
            self.emu.control("event-target", {"url": receiver.url})
            self.add_deal()
            receiver.next()
            deadline = time.monotonic() + 5
            while self.emu.state()["events"]["failed"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            self.assertTrue(receiver.events.empty())
            self.assertEqual(self.emu.state()["events"]["failed"], 1)
        finally:
            receiver.close()

    def test_event_fault_loses_the_next_events_and_never_resends_them(self):
        receiver = EventReceiver()
        try:
            self.emu.control("event-target", {"url": receiver.url})
            self.assertEqual(self.emu.control("event-fault", {"lose": 2})[0], 200)
            first = self.add_deal(TITLE="lost")
            self.emu.ok("crm.deal.update", {"id": first, "fields": {"TITLE": "lost too"}})
            second = self.add_deal(TITLE="posted")
            # events go out in order: the first one posted is the third change
            ctype, form = receiver.next()
            self.assertEqual((form["event"], form["data[FIELDS][ID]"]),
                             ("ONCRMDEALADD", str(second)))
            deadline = time.monotonic() + 5
            while self.emu.state()["events"]["sent"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(receiver.events.empty())
            events = self.emu.state()["events"]
            self.assertEqual((events["lost"], events["sent"]), (2, 1))
            self.assertEqual([h["error"] for h in events["history"][:2]],
                             ["lost (event-fault)"] * 2)
            for bad in ({"lose": -1}, {"lose": "1"}, {}, {"lose": True}):
                self.assertEqual(self.emu.control("event-fault", bad)[0], 400, bad)
        finally:
            receiver.close()

    def test_clock_freezes_the_portal_time_in_dates_time_blocks_and_events(self):
        receiver = EventReceiver()
        try:
            self.emu.control("event-target", {"url": receiver.url})
            frozen = 1773385200  # 2026-03-13T07:00:00Z
            self.assertEqual(self.emu.control("clock", {"now": frozen}), (200, {"ok": True,
                                                                                "now": frozen}))
            a = self.add_deal(TITLE="a")
            status, body = self.emu.rest("crm.deal.update", {"id": a, "fields": {"TITLE": "b"}})
            deal = self.emu.ok("crm.deal.get", {"id": a})
            # the portal's zone, +03:00, never UTC
            self.assertEqual((deal["DATE_CREATE"], deal["DATE_MODIFY"]),
                             ("2026-03-13T10:00:00+03:00", "2026-03-13T10:00:00+03:00"))
            self.assertEqual((body["time"]["start"], body["time"]["date_start"]),
                             (frozen, "2026-03-13T10:00:00+03:00"))
            self.assertEqual(receiver.next()[1]["ts"], str(frozen))
            self.assertEqual(self.emu.control("clock", {"now": None})[0], 200)
            self.emu.ok("crm.deal.update", {"id": a, "fields": {"TITLE": "c"}})
            self.assertGreater(self.emu.ok("crm.deal.get", {"id": a})["DATE_MODIFY"],
                               "2026-03-13T10:00:00+03:00")
            for bad in ({"now": "x"}, {}, {"now": -1}, {"now": True}):
                self.assertEqual(self.emu.control("clock", bad)[0], 400, bad)
            self.emu.control("clock", {"now": frozen})
            self.emu.control("reset")  # a reset gives the real time back
            self.assertNotEqual(self.emu.ok("crm.deal.get", {"id": self.add_deal()})
                                ["DATE_CREATE"], "2026-03-13T10:00:00+03:00")
        finally:
            receiver.close()

    def test_date_filters_compare_points_in_time_not_text(self):
        self.emu.control("clock", {"now": 1773385200})  # 10:00:00+03:00 = 07:00:00Z
        a = self.add_deal(TITLE="a")
        ids = lambda flt: [r["ID"] for r in self.emu.ok(
            "crm.deal.list", {"filter": flt, "select": ["ID"]})]
        # the deal's own second: ">=" finds it, ">" does not, in any offset
        self.assertEqual(ids({">=DATE_MODIFY": "2026-03-13T07:00:00Z"}), [str(a)])
        self.assertEqual(ids({">=DATE_MODIFY": "2026-03-13T07:00:00+00:00"}), [str(a)])
        self.assertEqual(ids({">DATE_MODIFY": "2026-03-13T10:00:00+03:00"}), [])
        self.assertEqual(ids({"=DATE_MODIFY": "2026-03-13T07:00:00Z"}), [str(a)])
        # as text "2026-03-13T10:00:00+03:00" sorts after "2026-03-13T08:00:00Z"; as a
        # time it is an hour before
        self.assertEqual(ids({">=DATE_MODIFY": "2026-03-13T08:00:00Z"}), [])
        self.assertEqual(ids({"<DATE_MODIFY": "2026-03-13T08:00:00Z"}), [str(a)])

    def test_stage_semantic_id_follows_the_stage(self):
        deal = self.add_deal(TITLE="x")
        for stage, semantic in (("WON", "S"), ("EXECUTING", "P"), ("LOSE", "F"),
                                ("APOLOGY", "F"), ("NEW", "P")):
            self.emu.ok("crm.deal.update", {"id": deal, "fields": {"STAGE_ID": stage}})
            row = self.emu.ok("crm.deal.list", {"filter": {"ID": deal},
                                                "select": ["STAGE_ID", "STAGE_SEMANTIC_ID"]})[0]
            self.assertEqual((row["STAGE_ID"], row["STAGE_SEMANTIC_ID"]), (stage, semantic))

    # --- control and robustness ----------------------------------------------------------

    def test_reset_clears_data_and_counts_but_keeps_pipelines(self):
        self.add_deal()
        self.emu.ok("crm.contact.add", {"fields": {}})
        self.emu.control("fault", {"mode": "error500"})
        self.emu.control("reset")
        state = self.emu.state()
        self.assertEqual((state["deals"], state["contacts"], state["counts"]["http_requests"]),
                         ({}, {}, 0))
        self.assertEqual(state["fault"]["mode"], "none")
        self.assertEqual(self.add_deal(STAGE_ID="C1:NEW"), 1)

    def test_bad_input_never_breaks_the_emulator(self):
        path = "/rest/%s/%s/crm.deal.add" % (USER, CODE)
        json_hdr = {"Content-Type": "application/json"}
        status, _, data = self.emu.raw("POST", path, b"{not json", json_hdr)
        self.assertEqual((status, json.loads(data)["error"]), (400, "INVALID_REQUEST"))
        self.assertEqual(self.emu.raw("POST", path, b"[1,2]", json_hdr)[0], 400)
        self.assertEqual(self.emu.raw("POST", path, b"\xff\xfe", {})[0], 400)
        self.assertEqual(self.emu.raw("POST", path, b"[" * 100000, json_hdr)[0], 400)
        weird = b"a[[[[b]=1&&=&[x]=2&fields[=3&fields]]=4&%zz=%zz&" + b"x" + b"[a]" * 100 + b"=1"
        self.assertEqual(self.emu.raw("POST", path, weird, {})[0], 400)  # fields not array
        status, _, _ = self.emu.raw("POST", path, b"x", {"Content-Length": "99999999999"})
        self.assertEqual(status, 413)
        self.assertEqual(self.emu.raw("POST", path, b"x", {"Content-Length": "abc"})[0], 400)
        self.assertEqual(self.emu.raw("GET", "/nowhere")[0], 404)
        self.assertEqual(self.emu.raw("PUT", "/_emu/state", b"")[0], 404)
        self.assertEqual(self.emu.raw("POST", "/_emu/config", b"{bad")[0], 400)
        self.assertEqual(self.emu.control("config", {"rate": -1})[0], 400)
        self.assertEqual(self.emu.rest("batch", {"cmd": "not a dict"})[0], 200)
        self.assertEqual(self.emu.rest("batch", {"cmd": {"x": 5, "y": "?&&=[]"}})[0], 200)
        for bad in ({"filter": "x", "order": 5, "select": {"a": {}}},
                    {"filter": {">DATE_MODIFY": ["x"], "%TITLE": {}, "@ID": []}},
                    {"start": "zz"}):
            self.assertEqual(self.emu.rest("crm.deal.list", bad)[0], 200)
        self.assertEqual(self.emu.rest("crm.deal.add", {"fields": {
            "OPPORTUNITY": "1e999", "CONTACT_ID": {"a": 1}, "TITLE": ["x"],
            "PHONE": "x", "UF_CRM_X": [{"a": 1}]}})[0], 200)
        # Keep-alive still works after all that.
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/_emu/health")
            self.assertEqual(conn.getresponse().read(), b'{"ok":true}')
        conn.close()
        self.assertNotIn("emulator bug", self.emu.stderr())
        self.assertNotIn(CODE, self.emu.stderr())


class CommandLineTest(unittest.TestCase):
    def test_default_bucket_is_2_per_second_burst_50_and_sigterm_exits_cleanly(self):
        emu = Emulator()
        try:
            # 50 requests always pass from empty; then it drains at 2/s, so the number of
            # successes before the first 503 is 50 plus at most 2 per elapsed second.
            t0, statuses = time.monotonic(), []
            while 503 not in statuses and len(statuses) < 200:
                statuses.append(emu.rest("crm.deal.list", {})[0])
            elapsed = time.monotonic() - t0
            self.assertEqual(statuses[-1], 503)
            self.assertEqual(statuses[:50], [200] * 50)
            self.assertLessEqual(statuses.count(200), 50 + 2 * elapsed + 1)
            # A request held by "hang" does not delay shutdown.
            emu.control("fault", {"mode": "hang"})
            threading.Thread(target=lambda: self._swallow(emu), daemon=True).start()
            time.sleep(0.2)
        finally:
            t0 = time.monotonic()
            self.assertEqual(emu.stop(), 0)
        self.assertLess(time.monotonic() - t0, 4)

    @staticmethod
    def _swallow(emu):
        try:
            emu.rest("crm.deal.list", {})
        except Exception:
            pass

    def test_refuses_non_loopback_host_and_empty_code(self):
        with tempfile.TemporaryDirectory() as d:
            code = os.path.join(d, "code")
            open(code, "w").close()
            for args in (["--host", "0.0.0.0"], []):
                proc = subprocess.run(
                    [sys.executable, EMULATOR, "--port", "0", "--user-id", "1",
                     "--code-file", code, *args], capture_output=True, timeout=10)
                self.assertEqual(proc.returncode, 2)


if __name__ == "__main__":
    unittest.main()
