"""Self-test of the Roistat emulator: runs roistat_emu.py in a subprocess on port 0 and
checks every behaviour the orderbridge tests rely on, through real HTTP.

Run from the repository root:  python3 -m unittest tests/emulators/test_roistat_emu.py
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roistat_emu.py")
PROJECT = "12345"
KEY = "test-api-key-0123456789"


class Emulator:
    """One emulator process, its port, and small HTTP helpers around it."""

    def __init__(self, *extra_args):
        self.dir = tempfile.TemporaryDirectory(prefix="roistat-emu-test-")
        key_file = os.path.join(self.dir.name, "key")
        with open(key_file, "w") as f:
            f.write(KEY + "\n")
        self.port_file = os.path.join(self.dir.name, "port")
        self.log = open(os.path.join(self.dir.name, "stderr.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, EMULATOR, "--port", "0", "--port-file", self.port_file,
             "--project", PROJECT, "--api-key-file", key_file, *extra_args],
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

    def connect(self, timeout=5):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, timeout=5):
        """One HTTP exchange; returns (status, decoded JSON or None)."""
        own = conn is None
        conn = conn or self.connect(timeout)
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data else None)
        finally:
            if own:
                conn.close()

    def api(self, name, body=None, key=KEY, project=PROJECT, http_codes=True, method="POST",
            query_key=False, conn=None, timeout=5):
        """Call /api/v1/<name> the way orderbridge does (Api-key header, Use-Http-Code)."""
        path = "/api/v1/" + name
        params = []
        if project is not None:
            params.append("project=" + project)
        if query_key:
            params.append("key=" + key)
        if params:
            path += "?" + "&".join(params)
        headers = {"Content-Type": "application/json"}
        if key is not None and not query_key:
            headers["Api-key"] = key
        if http_codes:
            headers["Use-Http-Code"] = "1"
        if method == "POST" and body is None:
            body = b""
        return self.request(method, path, body, headers, conn=conn, timeout=timeout)

    def control(self, method, path, body=None):
        if method == "POST" and body is None:
            body = b""
        return self.request(method, "/_emu/" + path, body)

    def state(self):
        return self.control("GET", "state")[1]

    def fault(self, **spec):
        status, answer = self.control("POST", "fault", spec)
        assert status == 200, answer

    def raw(self, data, read_timeout=5):
        """Send raw bytes and return whatever the server answers before closing."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # so a short body ends in EOF, not in the read timeout
            chunks = []
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except (ConnectionError, socket.timeout):
                pass
            return b"".join(chunks)


def order(oid, **fields):
    return dict({"id": oid, "name": "Order " + oid, "date_create": 1773385200, "status": "new",
                 "price": "4990.00", "cost": "3000.00"}, **fields)


class EmulatorTestCase(unittest.TestCase):
    """Shares one emulator (rate limit high enough not to interfere); resets it per test."""

    emu_args = ("--rate", "1000")

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(*cls.emu_args)

    @classmethod
    def tearDownClass(cls):
        log = cls.emu.stderr()
        rc = cls.emu.stop()
        if rc != 0 or "Traceback" in log:
            raise AssertionError("emulator exited with %r:\n%s" % (rc, log))

    def setUp(self):
        self.assertEqual(self.emu.control("POST", "reset"), (200, {"ok": True}))

    def assertApiError(self, answer, status, code):
        self.assertEqual(answer[0], status)
        self.assertEqual(answer[1]["status"], "error")
        self.assertEqual(answer[1]["error"], code)
        self.assertIsInstance(answer[1]["description"], str)


class TestAuthAndProject(EmulatorTestCase):

    def test_health_answers_ok(self):
        self.assertEqual(self.emu.control("GET", "health"), (200, {"ok": True}))

    def test_missing_key_is_authentication_failed_with_http_200_by_default(self):
        self.assertApiError(self.emu.api("project/add-orders", [], key=None, http_codes=False),
                            200, "authentication_failed")

    def test_wrong_key_is_401_with_use_http_code(self):
        self.assertApiError(self.emu.api("project/add-orders", [], key="nope"), 401, "authentication_failed")

    def test_key_in_query_is_accepted(self):
        status, answer = self.emu.api("project/add-orders", [order("1")], query_key=True)
        self.assertEqual((status, answer["saved"]), (200, 1))

    def test_wrong_project_is_access_denied(self):
        self.assertApiError(self.emu.api("project/add-orders", [], project="999"), 403, "access_denied")
        self.assertApiError(self.emu.api("project/add-orders", [], project="999", http_codes=False),
                            200, "access_denied")

    def test_missing_project_is_resource_not_found(self):
        self.assertApiError(self.emu.api("project/add-orders", [], project=None), 404, "resource_not_found")

    def test_unknown_method_is_resource_not_found(self):
        self.assertApiError(self.emu.api("project/nothing-here", []), 404, "resource_not_found")

    def test_refused_requests_store_nothing(self):
        self.emu.api("project/add-orders", [order("1")], key="nope")
        self.emu.api("project/add-orders", [order("1")], project="1")
        self.assertEqual(self.emu.state()["orders"], {})


class TestAddOrders(EmulatorTestCase):

    def test_new_orders_are_saved_with_roistat_counters(self):
        status, answer = self.emu.api("project/add-orders", [order("1"), order("2", roistat="777")])
        self.assertEqual(status, 200)
        self.assertEqual(answer, {"processed": 2, "skipped_by_status": 0, "skipped_by_waiting_visit_info": 0,
                                  "skipped_by_internal_error": 0, "skipped_because_not_changed": 0,
                                  "skipped_by_invalid_format": 0, "saved": 2, "comment": "",
                                  "uploaded": 2, "status": "success"})
        stored = self.emu.state()["orders"]
        self.assertEqual(stored["2"], dict(order("2", roistat="777"), updates=1))

    def test_identical_resend_is_not_changed_and_change_is_full_replace(self):
        self.emu.api("project/add-orders", [order("1", fields={"Manager": "Ann"})])
        answer = self.emu.api("project/add-orders", [order("1", fields={"Manager": "Ann"})])[1]
        self.assertEqual((answer["saved"], answer["skipped_because_not_changed"]), (0, 1))
        replacement = {"id": "1", "status": "paid", "price": "5000"}
        answer = self.emu.api("project/add-orders", [replacement])[1]
        self.assertEqual((answer["saved"], answer["uploaded"]), (1, 1))
        self.assertEqual(self.emu.state()["orders"]["1"], dict(replacement, updates=2))

    def test_invalid_elements_are_skipped_by_invalid_format(self):
        bad = [
            {"name": "no id"},
            {"id": 17},
            {"id": ""},
            "not an object",
            order("p1", price="12,50"),
            order("p2", price="abc"),
            order("p3", price=True),
            order("p4", price=-1),
            order("c1", cost="1e3"),
            order("d1", date_create="13.03.2026"),
            order("f1", fields=["x"]),
            order("f2", fields={"comment": "ж" * 1001}),
            order("f3", fields={"site": {"lid": "s1"}}),
        ]
        good = [order("ok1", price=4990, cost=10.5), order("ok2", date_create="2026-03-13 10:00", price="0"),
                order("ok3", date_create="1773385200", cost=None),
                order("ok4", fields={"comment": "ж" * 1000, "site": "s1", "sum_paid": "10.00"})]
        status, answer = self.emu.api("project/add-orders", bad + good)
        self.assertEqual(status, 200)
        self.assertEqual((answer["processed"], answer["skipped_by_invalid_format"], answer["saved"]),
                         (len(bad) + len(good), len(bad), len(good)))
        self.assertEqual(sorted(self.emu.state()["orders"]), ["ok1", "ok2", "ok3", "ok4"])

    def test_body_that_is_not_json_is_incorrect_request(self):
        self.assertApiError(self.emu.api("project/add-orders", b"[{"), 400, "incorrect_request")
        self.assertApiError(self.emu.api("project/add-orders", b"[NaN]"), 400, "incorrect_request")
        self.assertApiError(self.emu.api("project/add-orders", b"\xff\xfe"), 400, "incorrect_request")
        self.assertApiError(self.emu.api("project/add-orders", b"[" * 100000), 400, "incorrect_request")

    def test_body_that_is_not_an_array_is_validation_error(self):
        self.assertApiError(self.emu.api("project/add-orders", {"id": "1"}), 400,
                            "request_data_validation_error")
        self.assertApiError(self.emu.api("project/add-orders", {"id": "1"}, http_codes=False), 200,
                            "request_data_validation_error")

    def test_waiting_visit_is_skipped_until_released(self):
        self.assertEqual(self.emu.control("POST", "visits", {"waiting": ["555"]}), (200, {"ok": True}))
        answer = self.emu.api("project/add-orders", [order("1", roistat="555"), order("2", roistat="556")])[1]
        self.assertEqual((answer["skipped_by_waiting_visit_info"], answer["saved"], answer["uploaded"]), (1, 1, 1))
        self.assertNotIn("1", self.emu.state()["orders"])
        self.emu.control("POST", "visits", {"waiting": []})
        answer = self.emu.api("project/add-orders", [order("1", roistat="555")])[1]
        self.assertEqual((answer["skipped_by_waiting_visit_info"], answer["saved"]), (0, 1))

    def test_visits_endpoint_rejects_bad_body(self):
        self.assertEqual(self.emu.control("POST", "visits", {"waiting": "555"})[0], 400)
        self.assertEqual(self.emu.control("POST", "visits", b"nope")[0], 400)
        self.assertEqual(self.emu.control("POST", "visits", {})[0], 400)
        self.assertEqual(self.emu.control("POST", "visits", {"known": [5]})[0], 400)

    def test_with_known_visits_every_other_visit_waits_and_no_visit_never_does(self):
        self.assertEqual(self.emu.control("POST", "visits", {"known": ["100"]}), (200, {"ok": True}))
        answer = self.emu.api("project/add-orders", [order("1", roistat="100"), order("2", roistat="200"),
                                                     order("3"), order("4", roistat="")])[1]
        self.assertEqual((answer["processed"], answer["skipped_by_waiting_visit_info"], answer["saved"]),
                         (4, 1, 3))
        self.assertEqual(sorted(self.emu.state()["orders"]), ["1", "3", "4"])
        self.emu.control("POST", "visits", {"known": None})
        answer = self.emu.api("project/add-orders", [order("2", roistat="200")])[1]
        self.assertEqual((answer["skipped_by_waiting_visit_info"], answer["saved"]), (0, 1))
        self.assertIsNone(self.emu.state()["known_visits"])

    def test_a_status_not_in_the_dictionary_is_accepted_by_default(self):
        answer = self.emu.api("project/add-orders", [order("1", status="mystery")])[1]
        self.assertEqual((answer["skipped_by_status"], answer["saved"]), (0, 1))

    def test_a_status_not_in_the_dictionary_is_skipped_by_status_when_switched_on(self):
        self.emu.api("project/set-statuses", [{"id": "new", "name": "New", "type": "progress"}])
        self.assertEqual(self.emu.control("POST", "statuses", {"unknown": "skip"}), (200, {"ok": True}))
        answer = self.emu.api("project/add-orders", [order("1", status="new"), order("2", status="paid"),
                                                     {"id": "3"}])[1]
        self.assertEqual((answer["processed"], answer["skipped_by_status"], answer["saved"],
                          answer["uploaded"], answer["status"]), (3, 1, 2, 2, "success"))
        self.assertEqual(sorted(self.emu.state()["orders"]), ["1", "3"])


class TestStatusDictionaryControl(EmulatorTestCase):
    OURS = [{"id": "new", "name": "New", "type": "progress"},
            {"id": "paid", "name": "Paid", "type": "paid"}]
    THEIRS = [{"id": "x", "name": "Someone else's", "type": "progress"}]

    def test_statuses_endpoint_replaces_the_dictionary_as_another_integration_would(self):
        self.emu.api("project/set-statuses", self.OURS)
        self.assertEqual(self.emu.control("POST", "statuses", {"statuses": self.THEIRS}), (200, {"ok": True}))
        self.assertEqual(self.emu.state()["statuses"], self.THEIRS)
        self.assertEqual(self.emu.api("project/set-statuses", self.OURS), (200, {"status": "success"}))
        self.assertEqual(self.emu.state()["statuses"], self.OURS)

    def test_a_pinned_dictionary_comes_back_after_every_set_statuses(self):
        self.emu.control("POST", "statuses", {"statuses": self.THEIRS, "pinned": True, "unknown": "skip"})
        self.assertEqual(self.emu.api("project/set-statuses", self.OURS), (200, {"status": "success"}))
        state = self.emu.state()
        self.assertEqual((state["statuses"], state["counts"]["set_statuses"]), (self.THEIRS, 1))
        answer = self.emu.api("project/add-orders", [order("1", status="new")])[1]
        self.assertEqual((answer["skipped_by_status"], answer["saved"]), (1, 0))
        self.emu.control("POST", "statuses", {"pinned": False})
        self.emu.api("project/set-statuses", self.OURS)
        self.assertEqual(self.emu.api("project/add-orders", [order("1", status="new")])[1]["saved"], 1)

    def test_statuses_endpoint_rejects_bad_body(self):
        for bad in ({"statuses": [{"id": "x", "name": "X", "type": "done"}]}, {"statuses": "x"},
                    {"pinned": "yes"}, {"unknown": "drop"}, []):
            self.assertEqual(self.emu.control("POST", "statuses", bad)[0], 400, bad)
        self.assertEqual(self.emu.state()["unknown_status"], "accept")


class TestStatusesAndLists(EmulatorTestCase):
    STATUSES = [{"id": "new", "name": "New", "type": "progress"},
                {"id": "confirmed", "name": "Confirmed", "type": "paid"},
                {"id": "canceled", "name": "Canceled", "type": "canceled"}]

    def test_set_statuses_replaces_the_dictionary(self):
        self.assertEqual(self.emu.api("project/set-statuses", self.STATUSES), (200, {"status": "success"}))
        self.assertEqual(self.emu.api("project/set-statuses", self.STATUSES[:1]), (200, {"status": "success"}))
        self.assertEqual(self.emu.api("project/integration/status/list", {}),
                         (200, {"data": self.STATUSES[:1], "status": "success"}))
        self.assertEqual(self.emu.state()["statuses"], self.STATUSES[:1])

    def test_set_statuses_rejects_unknown_type_and_keeps_old_dictionary(self):
        self.emu.api("project/set-statuses", self.STATUSES)
        bad = [{"id": "x", "name": "X", "type": "done"}]
        self.assertApiError(self.emu.api("project/set-statuses", bad), 400, "request_data_validation_error")
        self.assertApiError(self.emu.api("project/set-statuses", {}), 400, "request_data_validation_error")
        self.assertEqual(self.emu.state()["statuses"], self.STATUSES)

    def test_status_list_also_answers_get(self):
        self.assertEqual(self.emu.api("project/integration/status/list", method="GET"),
                         (200, {"data": [], "status": "success"}))

    def test_order_list_uses_the_documented_shape(self):
        self.emu.api("project/set-statuses", self.STATUSES)
        self.emu.api("project/add-orders", [
            order("1", roistat="777", client_id="c9", fields={"Manager": "Ann"}, status="confirmed"),
            order("2", date_create="2026-03-13 10:00", price="10.50", status="mystery"),
            {"id": "3"}])
        status, answer = self.emu.api("project/integration/order/list", {"limit": 2, "offset": 0})
        self.assertEqual(status, 200)
        self.assertEqual((answer["status"], answer["total"], len(answer["data"])), ("success", 3, 2))
        self.assertRegex(answer["data"][0].pop("update_date"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
        self.assertEqual(answer["data"][0], {
            "id": "1", "creation_date": "2026-03-13T07:00:00+0000", "revenue": 4990, "cost": 3000,
            "client_id": "c9", "status": {"id": "confirmed", "type": "paid", "name": "Confirmed"},
            "visit_id": "777", "custom_fields": {"Manager": "Ann"}})
        second = answer["data"][1]
        self.assertEqual((second["creation_date"], second["revenue"], second["status"]),
                         ("2026-03-13T10:00:00+0000", 10.5, {"id": "mystery", "type": "unused", "name": "mystery"}))
        rest = self.emu.api("project/integration/order/list", {"limit": 10, "offset": 2})[1]
        self.assertEqual([o["id"] for o in rest["data"]], ["3"])
        self.assertApiError(self.emu.api("project/integration/order/list", {"limit": -1}), 400,
                            "request_data_validation_error")


class TestOrderListFilters(EmulatorTestCase):
    """order/list's documented filters (help-en Orders page), its paging, and the live
    quirk of a one-condition "and"."""
    STATUSES = TestStatusesAndLists.STATUSES

    def setUp(self):
        super().setUp()
        self.emu.api("project/set-statuses", self.STATUSES)
        self.emu.api("project/add-orders", [
            order("a1", date_create="2026-03-01 10:00", price="100.00", roistat="1001", status="new"),
            order("a2", date_create="2026-03-02 10:00", price="250.50", roistat="1002", status="confirmed"),
            order("b3", date_create="2026-03-03 10:00", price="0", client_id="c-77", status="canceled"),
            order("b4", date_create="2026-03-04 10:00", price="999.99", status="new")])

    def ids(self, filters, **page):
        status, answer = self.emu.api("project/integration/order/list", dict(filters=filters, **page))
        self.assertEqual(status, 200, answer)
        return [o["id"] for o in answer["data"]], answer["total"]

    def test_each_documented_operator_on_dates_numbers_and_texts(self):
        self.assertEqual(self.ids([["creation_date", ">", "2026-03-02T10:00:00+0000"]]), (["b3", "b4"], 2))
        self.assertEqual(self.ids([["creation_date", ">=", "2026-03-02T13:00:00+03:00"]]),
                         (["a2", "b3", "b4"], 3), "the offset is read")
        self.assertEqual(self.ids([["creation_date", "<", "2026-03-02T10:00:00.000Z"]]), (["a1"], 1))
        self.assertEqual(self.ids([["creation_date", "<=", "2026-03-02T10:00:00Z"]]), (["a1", "a2"], 2))
        self.assertEqual(self.ids([["revenue", ">", "250.49"]]), (["a2", "b4"], 2))
        self.assertEqual(self.ids([["id", "=", "b3"]]), (["b3"], 1))
        self.assertEqual(self.ids([["client_id", "like", "C-7"]]), (["b3"], 1), "a part, any case")
        self.assertEqual(self.ids([["visit_id", "like", "100%"]]), (["a1", "a2"], 2))

    def test_the_status_filter_is_the_funnel(self):
        self.assertEqual(self.ids([["status", "=", "0"]]), (["a1", "b4"], 2), "in work")
        self.assertEqual(self.ids([["status", "=", "1"]]), (["a2"], 1), "paid")
        self.assertEqual(self.ids([["status", "=", "2"]]), (["b3"], 1), "cancelled")

    def test_a_flat_list_is_and_and_groups_nest(self):
        self.assertEqual(self.ids([["status", "=", "0"], ["revenue", "<", "500"]]), (["a1"], 1))
        self.assertEqual(self.ids({"and": [["status", "=", "0"], ["revenue", "<", "500"]]}), (["a1"], 1))
        self.assertEqual(self.ids({"or": [["id", "=", "a1"], ["id", "=", "b4"]]}), (["a1", "b4"], 2))
        self.assertEqual(self.ids({"or": [["id", "=", "b3"]]}), (["b3"], 1))
        self.assertEqual(self.ids({"and": [{"or": [["id", "=", "a1"], ["id", "=", "a2"]]},
                                           ["status", "=", "1"]]}), (["a2"], 1))

    def test_a_single_condition_and_is_a_server_error_the_flat_form_is_not(self):
        for http_codes in (True, False):
            status, answer = self.emu.api("project/integration/order/list",
                                          {"filters": {"and": [["id", "=", "a1"]]}},
                                          http_codes=http_codes)
            self.assertEqual((status, answer["status"], answer["error"]), (500, "error", "internal_error"))
        self.assertEqual(self.ids([["id", "=", "a1"]]), (["a1"], 1))

    def test_paging_counts_every_match_in_total(self):
        flt = [["creation_date", ">", "2026-03-01T00:00:00+0000"]]
        self.assertEqual(self.ids(flt, limit=3, offset=0), (["a1", "a2", "b3"], 4))
        self.assertEqual(self.ids(flt, limit=3, offset=3), (["b4"], 4))
        self.assertEqual(self.ids(flt, limit=3, offset=6), ([], 4))

    def test_what_cannot_be_filtered_is_refused_not_ignored(self):
        for flt in ([["source_type", "=", "standard"]], [["custom_fields", "=", "x"]],
                    [["visit", "=", "1"]], [["id", "!=", "a1"]], [["revenue", "like", "1"]],
                    [["creation_date", ">", "yesterday"]], [["status", "=", "paid"]],
                    [["id", "="]], {"not": [["id", "=", "a1"]]}, {"or": []}, "id=a1"):
            status, answer = self.emu.api("project/integration/order/list", {"filters": flt})
            self.assertEqual((status, answer.get("error")), (400, "request_data_validation_error"), flt)


class TestOrdersChangedByHand(EmulatorTestCase):
    """/_emu/order: what a user changes or deletes in Roistat's interface."""

    def listed(self, oid):
        data = self.emu.api("project/integration/order/list", {"filters": [["id", "=", oid]]})[1]["data"]
        return data[0] if data else None

    def test_price_status_and_visit_change_and_an_upload_changes_them_back(self):
        sent = order("1", roistat="777", status="new")
        self.emu.api("project/add-orders", [sent])
        self.assertEqual(self.emu.control("POST", "order", {"id": "1", "price": "12.34", "status": "x",
                                                            "visit": None})[0], 200)
        row = self.listed("1")
        self.assertEqual((row["revenue"], row["status"]["id"], row["visit_id"]), (12.34, "x", None))
        self.assertEqual(self.emu.state()["orders"]["1"]["updates"], 1, "not an upload")
        answer = self.emu.api("project/add-orders", [sent])[1]
        self.assertEqual((answer["saved"], answer["skipped_because_not_changed"]), (1, 0))
        row = self.listed("1")
        self.assertEqual((row["revenue"], row["status"]["id"], row["visit_id"]), (4990, "new", "777"))

    def test_a_deleted_order_is_gone_until_it_is_uploaded_again(self):
        self.emu.api("project/add-orders", [order("1"), order("2")])
        self.assertEqual(self.emu.control("POST", "order", {"id": "1", "delete": True})[0], 200)
        self.assertIsNone(self.listed("1"))
        self.assertIsNotNone(self.listed("2"))
        self.emu.api("project/add-orders", [order("1")])
        self.assertIsNotNone(self.listed("1"))

    def test_a_bad_edit_is_refused(self):
        self.emu.api("project/add-orders", [order("1")])
        for body in ({"id": "nope", "price": "1"}, {"price": "1"}, {"id": "1", "price": "abc"},
                     {"id": "1", "delete": False}, {"id": "1", "colour": "red"}):
            self.assertEqual(self.emu.control("POST", "order", body)[0], 400, body)
        self.assertEqual(self.listed("1")["revenue"], 4990)


class TestHttpHandling(EmulatorTestCase):

    def test_keep_alive_reuses_one_connection(self):
        conn = self.emu.connect()
        try:
            self.emu.api("project/add-orders", [order("1")], conn=conn)
            sock = conn.sock
            self.assertIsNotNone(sock)
            self.assertEqual(self.emu.api("project/add-orders", [order("2")], conn=conn)[0], 200)
            self.assertEqual(self.emu.api("project/integration/status/list", {}, conn=conn)[0], 200)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_post_without_content_length_is_411(self):
        answer = self.emu.raw(b"POST /api/v1/project/add-orders?project=12345 HTTP/1.1\r\n"
                              b"Host: x\r\nApi-key: " + KEY.encode() + b"\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 411 "), answer)

    def test_body_over_the_cap_is_413_without_reading_it(self):
        answer = self.emu.raw(b"POST /api/v1/project/add-orders?project=12345 HTTP/1.1\r\n"
                              b"Host: x\r\nContent-Length: 9000000\r\n\r\n[")
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertIn(b"Content-Length:", answer)

    def test_garbage_does_not_crash_the_emulator(self):
        self.emu.raw(b"\x00\x01\x02 garbage\r\n\r\n")
        self.emu.raw(b"POST /api/v1/project/add-orders HTTP/1.1\r\nContent-Length: 10\r\n\r\n[1")
        self.assertEqual(self.emu.control("GET", "health"), (200, {"ok": True}))

    def test_state_counts_and_history(self):
        self.emu.api("project/add-orders", [order("1"), order("2")])
        self.emu.api("project/set-statuses", [])
        self.emu.api("project/add-orders", [order("3")], key="nope")
        state = self.emu.state()
        self.assertEqual(state["counts"], {"requests": 3, "add_orders": 1, "set_statuses": 1,
                                           "rate_limited": 0, "faulted": 0, "orders_received": 2})
        self.assertEqual(state["received"], {"1": 1, "2": 1})  # per order id; refused: none
        self.assertEqual([(h["path"], h["n_orders"], h["http_status"]) for h in state["history"]],
                         [("/api/v1/project/add-orders", 2, 200), ("/api/v1/project/set-statuses", 0, 200),
                          ("/api/v1/project/add-orders", 1, 401)])
        self.assertLessEqual(state["history"][0]["at"], time.time())

    def test_reset_clears_everything(self):
        self.emu.control("POST", "visits", {"waiting": ["1"], "known": ["2"]})
        self.emu.control("POST", "statuses", {"statuses": [], "pinned": True, "unknown": "skip"})
        self.emu.fault(mode="error500")
        self.emu.control("POST", "reset")
        self.emu.api("project/add-orders", [order("1")])
        self.emu.control("POST", "reset")
        state = self.emu.state()
        self.assertEqual((state["orders"], state["statuses"], state["history"], state["waiting"]), ({}, [], [], []))
        self.assertEqual(set(state["counts"].values()), {0})
        self.assertEqual(state["fault"]["mode"], "none")
        self.assertEqual((state["known_visits"], state["pinned_statuses"], state["unknown_status"]),
                         (None, None, "accept"))


class TestFaults(EmulatorTestCase):

    def test_error500_for_count_requests_then_normal(self):
        self.emu.fault(mode="error500", count=2)
        self.assertApiError(self.emu.api("project/add-orders", [order("1")]), 500, "internal_error")
        self.assertApiError(self.emu.api("project/add-orders", [order("1")], http_codes=False),
                            500, "internal_error")
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[1]["saved"], 1)
        self.assertEqual(self.emu.state()["counts"]["faulted"], 2)

    def test_error503_until_cleared_and_control_paths_unaffected(self):
        self.emu.fault(mode="error503")
        for _ in range(3):
            self.assertApiError(self.emu.api("project/add-orders", [order("1")]), 503, "internal_error")
        self.assertEqual(self.emu.control("GET", "health")[0], 200)
        self.assertEqual(self.emu.state()["orders"], {})
        self.emu.fault(mode="none")
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[0], 200)

    def test_methods_limits_the_fault(self):
        self.emu.fault(mode="error500", count=1, methods=["set-statuses"])
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[0], 200)
        self.assertEqual(self.emu.api("project/set-statuses", [])[0], 500)
        self.assertEqual(self.emu.api("project/set-statuses", [])[0], 200)

    def test_reset_closes_the_connection_without_answer(self):
        self.emu.fault(mode="reset", count=1)
        with self.assertRaises(ConnectionError):
            self.emu.api("project/add-orders", [order("1")])
        self.assertEqual(self.emu.state()["orders"], {})
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[0], 200)

    def test_lost_applies_the_request_but_never_answers(self):
        self.emu.fault(mode="lost", count=1)
        with self.assertRaises(ConnectionError):
            self.emu.api("project/add-orders", [order("1")])
        state = self.emu.state()
        self.assertEqual(state["orders"]["1"]["updates"], 1)
        self.assertEqual((state["counts"]["add_orders"], state["history"][-1]["http_status"]), (1, None))

    def test_slow_delays_the_answer(self):
        self.emu.fault(mode="slow", delay_ms=300, count=1)
        started = time.monotonic()
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_hang_holds_the_request_until_the_fault_is_cleared(self):
        self.emu.fault(mode="hang", count=1)
        outcome = []

        def call():
            try:
                outcome.append(self.emu.api("project/add-orders", [order("1")], timeout=10))
            except Exception as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.4)
        self.assertTrue(caller.is_alive(), "hung request answered early: %r" % outcome)
        self.emu.fault(mode="none")
        caller.join(5)
        self.assertFalse(caller.is_alive())
        self.assertIsInstance(outcome[0], ConnectionError)
        self.assertEqual(self.emu.state()["orders"], {})

    def test_then_takes_over_when_the_count_runs_out(self):
        self.emu.fault(mode="error400", count=1, then={"mode": "hang"})
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[0], 400)
        self.assertEqual(self.emu.state()["fault"]["mode"], "hang")
        outcome = []
        caller = threading.Thread(target=lambda: outcome.append(
            self._call_or_error(lambda: self.emu.api("project/add-orders", [order("2")],
                                                     timeout=10))))
        caller.start()
        time.sleep(0.4)
        self.assertTrue(caller.is_alive(), "the follow-up hang answered: %r" % outcome)
        self.emu.fault(mode="none")
        caller.join(5)
        self.assertIsInstance(outcome[0], ConnectionError)
        self.assertEqual(self.emu.state()["orders"], {})
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "error400",
                                                             "then": {"mode": "hang"}})[0], 400)

    @staticmethod
    def _call_or_error(fn):
        try:
            return fn()
        except Exception as exc:
            return exc

    def test_answer_error_is_http_200_with_the_envelope_and_changes_nothing(self):
        self.emu.fault(mode="answer_error", count=1, methods=["set-statuses"], error="incorrect_request",
                       description="Statuses are invalid")
        self.assertEqual(self.emu.api("project/set-statuses", TestStatusDictionaryControl.OURS),
                         (200, {"status": "error", "error": "incorrect_request",
                                "description": "Statuses are invalid"}))
        state = self.emu.state()
        self.assertEqual((state["statuses"], state["counts"]["set_statuses"]), ([], 0))
        self.assertEqual(state["history"][-1]["error"], "incorrect_request")
        self.emu.fault(mode="answer_error", count=1)
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[1]["error"], "internal_error")
        self.assertEqual(self.emu.state()["orders"], {})

    def test_no_status_answer_is_an_empty_object_and_changes_nothing(self):
        self.emu.fault(mode="no_status", count=1)
        self.assertEqual(self.emu.api("project/set-statuses", TestStatusDictionaryControl.OURS), (200, {}))
        self.assertEqual(self.emu.state()["statuses"], [])

    def test_not_json_answer_is_an_html_page_and_changes_nothing(self):
        self.emu.fault(mode="not_json", count=1)
        conn = self.emu.connect()
        try:
            conn.request("POST", "/api/v1/project/set-statuses?project=" + PROJECT,
                         body=json.dumps(TestStatusDictionaryControl.OURS),
                         headers={"Api-key": KEY, "Use-Http-Code": "1"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/html"))
        self.assertTrue(body.startswith(b"<html>"), body)
        self.assertEqual(self.emu.state()["statuses"], [])

    def test_skip_counts_every_order_under_its_counter_and_stores_none(self):
        for counter in ("skipped_by_status", "skipped_by_waiting_visit_info", "skipped_by_internal_error",
                        "skipped_by_invalid_format", "none"):
            self.emu.fault(mode="skip", count=1, skip_as=counter)
            status, answer = self.emu.api("project/add-orders", [order("1"), order("2")])
            self.assertEqual((status, answer["status"], answer["processed"], answer["saved"],
                              answer["uploaded"]), (200, "success", 2, 0, 0), counter)
            skips = {k: v for k, v in answer.items() if k.startswith("skipped_") and v}
            self.assertEqual(skips, {} if counter == "none" else {counter: 2})
            self.assertEqual(self.emu.state()["orders"], {})
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[1]["saved"], 1)

    def test_skip_leaves_other_methods_alone_and_still_checks_the_key(self):
        self.emu.fault(mode="skip", count=1)
        self.assertEqual(self.emu.api("project/set-statuses", []), (200, {"status": "success"}))
        self.assertApiError(self.emu.api("project/add-orders", [order("1")], key="nope"), 401,
                            "authentication_failed")
        self.assertEqual(self.emu.state()["fault"]["mode"], "none")

    def test_bad_fault_spec_is_400(self):
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "explode"})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "error400", "then": {"mode": "hang"}})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "error400", "count": 1,
                                                            "then": {"mode": "bad"}})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "slow", "delay_ms": "1s"})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "hang", "methods": "add-orders"})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "skip", "skip_as": "saved"})[0], 400)
        self.assertEqual(self.emu.control("POST", "fault", {"mode": "answer_error", "error": 5})[0], 400)


class TestRateLimit(EmulatorTestCase):
    emu_args = ("--rate", "3")

    def test_requests_over_the_rate_are_refused_and_change_nothing(self):
        for _ in range(3):
            self.assertEqual(self.emu.api("project/integration/status/list", {})[0], 200)
        self.assertApiError(self.emu.api("project/add-orders", [order("1")]), 429, "request_limit_error")
        self.assertApiError(self.emu.api("project/add-orders", [order("1")], http_codes=False),
                            200, "request_limit_error")
        state = self.emu.state()
        self.assertEqual(state["orders"], {})
        self.assertEqual((state["counts"]["rate_limited"], state["counts"]["add_orders"]), (2, 0))
        time.sleep(1.05)
        self.assertEqual(self.emu.api("project/add-orders", [order("1")])[1]["saved"], 1)


class TestLifecycle(unittest.TestCase):

    def test_port_file_default_rate_and_sigterm(self):
        emu = Emulator()
        try:
            self.assertTrue(0 < emu.port < 65536)
            self.assertEqual([f for f in os.listdir(emu.dir.name) if ".tmp" in f], [])
            conn = emu.connect()
            codes = [emu.api("project/integration/status/list", {}, conn=conn)[0] for _ in range(12)]
            conn.close()
            self.assertEqual(codes, [200] * 10 + [429] * 2)
            log = emu.stderr()
            self.assertIn("status/list -> 429", log)
            self.assertNotIn(KEY, log)
        finally:
            self.assertEqual(emu.stop(signal.SIGTERM), 0)

    def test_sigint_while_a_request_hangs_exits_cleanly(self):
        emu = Emulator()
        emu.fault(mode="hang")
        outcome = []

        def call():
            try:
                outcome.append(emu.api("project/add-orders", [order("1")], timeout=10))
            except Exception as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.2)
        started = time.monotonic()
        self.assertEqual(emu.stop(signal.SIGINT), 0)
        self.assertLess(time.monotonic() - started, 3)
        caller.join(5)
        self.assertIsInstance(outcome[0], ConnectionError)


if __name__ == "__main__":
    unittest.main()
