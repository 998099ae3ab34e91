#!/usr/bin/env python3
"""Bitrix24 portal emulator for orderbridge tests (Python 3 standard library only).

Emulates the incoming-webhook REST API of one Bitrix24 portal, as far as orderbridge
uses it: contacts, companies, deals, deal product rows, crm.duplicate.findbycomm,
pipelines and stages, and `batch` with `$result[...]` references, `halt` and
`result_error`. Behaviour follows the official docs (bitrix24/b24restdocs) and, where
the docs are silent, the portal's own PHP: CRestProvider::methodsBatch and
CRestUtil::processBatchElement for batch, CCrmDuplicateRestProxy and
DuplicateCommunicationCriterion::normalizePhone (main's NormalizePhone) for findbycomm.
On top: the leaky-bucket request limit, an optional per-method "operating" budget,
switchable faults, outgoing ONCRMDEAL* webhooks (and a fault that loses them), a settable
portal clock, and /_emu/* control endpoints.

Portal behaviours a client must survive (issue #9; each cites its source where it is
implemented): a batch reference to a failed command yields the whole result map, which an
id parameter reads as (int) array = 1 (php_intval, resolve_batch_ref); references are
resolved in every decoded value, the name matched in any case but looked up in lower case,
the match running to the next space; result_* are PHP arrays (php_array) and may even lose
their keys (fault command_error, "unkeyed"); each command's result_time carries its own
method's operating, batch itself is not metered, and a method over its budget fails inside
a batch with a keyed OPERATION_TIME_LIMIT (OperatingMeter); the CRM refuses e-mails that
fail main's check_email(), multi-field values over 250 characters, missing required user
fields and unknown currencies, and drops user fields it lacks (Emulator._check_crm_fields);
max_input_vars cuts long form queries silently (php_parse_str). Where the real behaviour is
not known, the emulator takes the harsher choice and says so beside the code.

Invariants: all mutable state lives in one Emulator object behind one lock (an RLock
inside a Condition, so a hung request can wait on it). A request refused before it runs
(auth, rate limit, bad body, any fault but "lost") changes only counters, never CRM
data; a refused CRM call changes nothing either, since every method validates before
it writes. Everything read from the network is bounded (body size, parameter count,
nesting depth, connections).
"""

import argparse
import collections
import copy
import datetime
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import socket
import struct
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_DEFAULT = 8 * 1024 * 1024
MAX_PARAM_PAIRS = 20000        # form-encoded key=value pairs per request or batch command
MAX_PARAM_DEPTH = 16           # nesting of fields[PHONE][0][VALUE]-style keys
MAX_CONNECTIONS = 64           # concurrent connections; more are closed at once
HANG_TIMEOUT_S = 120.0
PAGE_SIZE = 50                 # list methods: fixed page size
BATCH_MAX = 50                 # CRestUtil::BATCH_MAX_LENGTH
FINDBYCOMM_MAX = 20            # values examined per crm.duplicate.findbycomm call
EVENT_QUEUE_LEN = 1000
EVENT_TIMEOUT_S = 5.0
# The portal writes every date-time in its own zone with the offset, never in UTC
# (api-reference/data-types.md: datetime "2024-08-30T12:19:57+02:00"); a Moscow portal,
# so that a client that drops the offset or compares the text is three hours off.
PORTAL_TZ = datetime.timezone(datetime.timedelta(hours=3))
CURRENCIES = ("RUB", "USD", "EUR", "UAH", "BYN", "KZT", "CNY", "GBP")
FAULT_MODES = ("none", "error503", "error500", "hang", "reset", "lost", "expired_token",
               "query_limit", "slow", "command_error")
FAULT_TEXT_MAX = 1000          # command_error: longest code / description accepted
COUNTERS = ("http_requests", "commands", "query_limit_exceeded", "operation_time_limit",
            "faulted", "findbycomm_truncated", "input_vars_truncated")

# Pipelines preset: (id, name, sort, stages); a stage is (STATUS_ID, NAME, SORT, COLOR, EXTRA
# semantics). Sorts and colours as in crm-status-list.md; the default pipeline sorts after the
# custom one, as in the crm.category.list example, so clients cannot rely on list order.
PIPELINES = (
    (0, "General", 300, (
        ("NEW", "New", 10, "#39A8EF", "process"),
        ("PREPARATION", "Document preparation", 20, "#2FC6F6", "process"),
        ("PREPAYMENT_INVOICE", "Prepayment invoice", 30, "#55D0E0", "process"),
        ("EXECUTING", "In progress", 40, "#47E4C2", "process"),
        ("FINAL_INVOICE", "Final invoice", 50, "#FFA900", "process"),
        ("WON", "Deal successful", 60, "#7BD500", "success"),
        ("LOSE", "Deal failed", 70, "#FF5752", "failure"),
        ("APOLOGY", "Failure reason analysis", 80, "#FF5752", "apology"))),
    (1, "Wholesale", 200, (
        ("C1:NEW", "New", 10, "#39A8EF", "process"),
        ("C1:PREPARATION", "Document preparation", 20, "#2FC6F6", "process"),
        ("C1:EXECUTING", "In progress", 30, "#47E4C2", "process"),
        ("C1:FINAL_INVOICE", "Final invoice", 40, "#FFA900", "process"),
        ("C1:WON", "Deal successful", 50, "#7BD500", "success"),
        ("C1:LOSE", "Deal failed", 60, "#FF5752", "failure"))),
)
SEMANTICS = {"process": None, "success": "S", "failure": "F", "apology": "F"}

# Field sets. "*" in a select means the scalar fields; PHONE/EMAIL must be named explicitly.
DEAL_FIELDS = (
    "ID", "TITLE", "TYPE_ID", "STAGE_ID", "PROBABILITY", "CURRENCY_ID", "OPPORTUNITY",
    "IS_MANUAL_OPPORTUNITY", "TAX_VALUE", "LEAD_ID", "COMPANY_ID", "CONTACT_ID", "QUOTE_ID",
    "BEGINDATE", "CLOSEDATE", "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE",
    "DATE_MODIFY", "OPENED", "CLOSED", "COMMENTS", "ADDITIONAL_INFO", "LOCATION_ID",
    "CATEGORY_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "IS_RECURRING", "IS_RETURN_CUSTOMER",
    "IS_REPEATED_APPROACH", "SOURCE_ID", "SOURCE_DESCRIPTION", "ORIGINATOR_ID", "ORIGIN_ID",
    "MOVED_BY_ID", "MOVED_TIME", "UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT",
    "UTM_TERM", "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY")
DEAL_WRITABLE = frozenset((
    "TITLE", "TYPE_ID", "STAGE_ID", "PROBABILITY", "CURRENCY_ID", "OPPORTUNITY",
    "IS_MANUAL_OPPORTUNITY", "TAX_VALUE", "COMPANY_ID", "CONTACT_ID", "BEGINDATE", "CLOSEDATE",
    "OPENED", "COMMENTS", "ADDITIONAL_INFO", "ASSIGNED_BY_ID", "SOURCE_ID", "SOURCE_DESCRIPTION",
    "ORIGINATOR_ID", "ORIGIN_ID", "IS_RECURRING", "IS_RETURN_CUSTOMER", "IS_REPEATED_APPROACH",
    "UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM"))
# crm.deal.fields: each standard field's type and flags, as the docs' answer shows them
# (b24restdocs api-reference/crm/deals/crm-deal-fields.md, "Response Handling"; the fields
# that page cuts off are typed as in api-reference/crm/main-entities-fields.md). A field
# not in DEAL_WRITABLE is read-only, as the portal says of ID, DATE_CREATE, ….
DEAL_FIELD_TYPES = {
    "ID": "integer", "TITLE": "string", "TYPE_ID": "crm_status", "STAGE_ID": "crm_status",
    "PROBABILITY": "integer", "CURRENCY_ID": "crm_currency", "OPPORTUNITY": "double",
    "IS_MANUAL_OPPORTUNITY": "char", "TAX_VALUE": "double", "LEAD_ID": "crm_lead",
    "COMPANY_ID": "crm_company", "CONTACT_ID": "crm_contact", "QUOTE_ID": "crm_quote",
    "BEGINDATE": "date", "CLOSEDATE": "date", "ASSIGNED_BY_ID": "user",
    "CREATED_BY_ID": "user", "MODIFY_BY_ID": "user", "DATE_CREATE": "datetime",
    "DATE_MODIFY": "datetime", "OPENED": "char", "CLOSED": "char", "COMMENTS": "string",
    "ADDITIONAL_INFO": "string", "LOCATION_ID": "location", "CATEGORY_ID": "crm_category",
    "STAGE_SEMANTIC_ID": "string", "IS_NEW": "char", "IS_RECURRING": "char",
    "IS_RETURN_CUSTOMER": "char", "IS_REPEATED_APPROACH": "char", "SOURCE_ID": "crm_status",
    "SOURCE_DESCRIPTION": "string", "ORIGINATOR_ID": "string", "ORIGIN_ID": "string",
    "MOVED_BY_ID": "user", "MOVED_TIME": "datetime", "UTM_SOURCE": "string",
    "UTM_MEDIUM": "string", "UTM_CAMPAIGN": "string", "UTM_CONTENT": "string",
    "UTM_TERM": "string", "LAST_ACTIVITY_TIME": "datetime", "LAST_ACTIVITY_BY": "user"}
# user field types crm.deal.fields reports (crm-deal-user-defined-field-types.md)
UF_TYPES = frozenset(("string", "integer", "double", "boolean", "date", "datetime",
                      "enumeration", "employee", "file", "url", "address", "money",
                      "crm_status", "crm", "iblock_element", "iblock_section"))
CONTACT_FIELDS = (
    "ID", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "TYPE_ID", "SOURCE_ID",
    "SOURCE_DESCRIPTION", "POST", "COMMENTS", "OPENED", "EXPORT", "HAS_PHONE", "HAS_EMAIL",
    "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY",
    "COMPANY_ID", "LEAD_ID", "ORIGINATOR_ID", "ORIGIN_ID", "ORIGIN_VERSION", "UTM_SOURCE",
    "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")
CONTACT_WRITABLE = frozenset((
    "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "TYPE_ID", "SOURCE_ID",
    "SOURCE_DESCRIPTION", "POST", "COMMENTS", "OPENED", "EXPORT", "ASSIGNED_BY_ID",
    "COMPANY_ID", "ORIGINATOR_ID", "ORIGIN_ID", "ORIGIN_VERSION", "UTM_SOURCE", "UTM_MEDIUM",
    "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM"))
COMPANY_FIELDS = (
    "ID", "TITLE", "COMPANY_TYPE", "INDUSTRY", "EMPLOYEES", "REVENUE", "CURRENCY_ID",
    "COMMENTS", "OPENED", "IS_MY_COMPANY", "HAS_PHONE", "HAS_EMAIL", "ASSIGNED_BY_ID",
    "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY", "LEAD_ID", "ORIGINATOR_ID",
    "ORIGIN_ID", "ORIGIN_VERSION", "UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT",
    "UTM_TERM")
COMPANY_WRITABLE = frozenset((
    "TITLE", "COMPANY_TYPE", "INDUSTRY", "EMPLOYEES", "REVENUE", "CURRENCY_ID", "COMMENTS",
    "OPENED", "ASSIGNED_BY_ID", "ORIGINATOR_ID", "ORIGIN_ID", "ORIGIN_VERSION", "UTM_SOURCE",
    "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM"))
MULTI_FIELDS = ("PHONE", "EMAIL")
ID_FIELDS = frozenset(("ID", "CATEGORY_ID", "CONTACT_ID", "COMPANY_ID", "ASSIGNED_BY_ID",
                       "CREATED_BY_ID", "MODIFY_BY_ID", "MOVED_BY_ID", "LEAD_ID", "QUOTE_ID"))
NUMERIC_FIELDS = ID_FIELDS | {"OPPORTUNITY", "TAX_VALUE", "PROBABILITY", "SORT", "REVENUE"}
DATE_FIELDS = frozenset(("DATE_CREATE", "DATE_MODIFY", "BEGINDATE", "CLOSEDATE", "MOVED_TIME",
                         "LAST_ACTIVITY_TIME", "BIRTHDATE"))
# Field titles for the CRM field-validation message 'Invalid value for the "X" field'.
FIELD_TITLES = {"STAGE_ID": "Stage", "CATEGORY_ID": "Pipeline", "CURRENCY_ID": "Currency"}
# Filter prefixes, longest first so that ">=" is not read as ">" (crm-deal-list.md).
FILTER_OPS = ("!@", ">=", "<=", "!=", "=%", "%=", "@", ">", "<", "=", "!", "%")

# Texts of the refusals the CRM gives in the portal's language (POST /_emu/config
# {"language": "en"|"ru"}), verbatim from the lang files: crm/lang/*/classes/general/
# crm_field_multi.php (CRM_MF_ERR_*, CRM_FM_ENTITY_*) and main/lang/*/classes/general/
# usertype.php (USER_TYPE_FIELD_VALUE_IS_MISSING).
MESSAGES = {
    "en": {"email": 'The field "#FIELD_NAME#" contains an incorrect address.',
           "strlen": 'The field "#FIELD_NAME#" must not exceed 250 characters.',
           "required": "The required field #FIELD_NAME# is missing."},
    "ru": {"email": 'Поле "#FIELD_NAME#" содержит некорректный адрес.',
           "strlen": 'Поле "#FIELD_NAME#" не может быть более 250 символов.',
           "required": "Не введено значение обязательного поля #FIELD_NAME#."},
}
MULTI_FIELD_TITLES = {  # CCrmFieldMulti::GetEntityNameByComplex("<TYPE>_<VALUE_TYPE>")
    "en": {"EMAIL_WORK": "Work E-mail", "EMAIL_HOME": "Home E-mail",
           "EMAIL_MAILING": "Newsletters email", "EMAIL_OTHER": "Other E-mail",
           "PHONE_MOBILE": "Mobile", "PHONE_WORK": "Work Phone", "PHONE_FAX": "Fax",
           "PHONE_HOME": "Home Phone", "PHONE_PAGER": "Pager Number",
           "PHONE_MAILING": "SMS marketing phone", "PHONE_OTHER": "Other Phone Number"},
    "ru": {"EMAIL_WORK": "Рабочий e-mail", "EMAIL_HOME": "Частный e-mail",
           "EMAIL_MAILING": "E-mail для рассылок", "EMAIL_OTHER": "Другой e-mail",
           "PHONE_MOBILE": "Мобильный телефон", "PHONE_WORK": "Рабочий телефон",
           "PHONE_FAX": "Номер факса", "PHONE_HOME": "Домашний телефон",
           "PHONE_PAGER": "Номер пейджера", "PHONE_MAILING": "Телефон для рассылок",
           "PHONE_OTHER": "Другой телефон"},
}
MULTI_VALUE_MAX = 250          # CCrmFieldMulti::CheckComplexFields: mb_strlen(VALUE) > 250
UF_NAME_RE = re.compile(r"UF_CRM_[A-Z0-9_]{1,40}")
CONFIG_LIST_MAX = 100          # names per entity in required_fields / user_fields
MAX_INPUT_VARS_DEFAULT = 1000  # php.ini max_input_vars

HTML_503 = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
            b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
            b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class RestError(Exception):
    """A refusal answered with the REST envelope {"error", "error_description"}."""

    def __init__(self, status, code, description, extra=None):
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra or {}

    def body(self):
        out = {"error": self.code, "error_description": self.description}
        out.update(self.extra)
        return out


class CommandFault(RestError):
    """A command refused by the "command_error" fault: a CRM error (HTTP 400) that, in a
    batch, can also lose its key (unkeyed) or vanish from the answer (omit)."""

    def __init__(self, fault):
        super().__init__(400, fault["code"], fault["description"])
        self.unkeyed, self.omit = fault["unkeyed"], fault["omit"]


def crm_error(description):
    """CRM method errors: HTTP 400 with an EMPTY error code (RestException's default)."""
    return RestError(400, "", description)


def field_error(field):
    return crm_error('Invalid value for the "%s" field' % FIELD_TITLES.get(field, field))


def log(msg):
    sys.stderr.write("b24-emu %s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --- PHP semantics that clients can observe -----------------------------------------------

def php_json(obj):
    """json_encode() as PHP does it: ASCII only (\\uXXXX) and escaped slashes."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def php_array(mapping):
    """A PHP array as json_encode sees it: keys 0..n-1 in order give a JSON list (so an
    empty array is []), anything else an object."""
    if all(k == str(i) for i, k in enumerate(mapping)):
        return list(mapping.values())
    return dict(mapping)


def php_bool(value):
    """(bool) cast: "", "0", 0, null, [] are false; any other string (even "false") true."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def php_intval(value):
    """(int) / intval(): the leading integer of a string, 0 when there is none; an array
    is 1 when it has elements and 0 when empty (php.net, "Converting to integer": arrays
    convert as booleans). This matters in batch: `id=$result[d0]` after a failed d0 is the
    whole result map (CRestUtil::processBatchElement), so it becomes id 1."""
    if isinstance(value, (dict, list)):
        return 1 if value else 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if abs(value) < 1e18 else 0
    if isinstance(value, str):
        m = re.match(r"\s*([+-]?\d{1,18})", value)
        return int(m.group(1)) if m else 0
    return 0


def php_floatval(value):
    """floatval() as a Decimal: the leading number of a string, 0 when there is none."""
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value if value.is_finite() and abs(value) < Decimal("1e15") else Decimal(0)
    if isinstance(value, (int, float)):
        try:
            d = Decimal(str(value))
            return d if d.is_finite() and abs(d) < Decimal("1e15") else Decimal(0)
        except InvalidOperation:
            return Decimal(0)
    if isinstance(value, str):
        m = re.match(r"\s*([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?)", value)
        if m:
            d = Decimal(m.group(1))
            return d if abs(d) < Decimal("1e15") else Decimal(0)
    return Decimal(0)


def money(value):
    """OPPORTUNITY and friends come back as strings with two decimals ("4990.00")."""
    return str(php_floatval(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def to_str(value):
    """A scalar as PHP would store it in a string column; None for null; _NOT_SCALAR else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%.15g" % value
    if isinstance(value, str):
        return value
    return _NOT_SCALAR


_NOT_SCALAR = object()


def split_php_key(key):
    """'fields[PHONE][0][VALUE]' -> ['fields', 'PHONE', '0', 'VALUE'], as parse_str() does."""
    i = key.find("[")
    if i <= 0:
        return [key.replace(" ", "_").replace(".", "_")]
    base, rest, segments = key[:i], key[i:], []
    while rest.startswith("["):
        j = rest.find("]")
        if j < 0:
            if not segments:  # PHP turns an unmatched "[" into "_" and keeps the rest
                base = base + "_" + rest[1:]
            break
        segments.append(rest[1:j])
        rest = rest[j + 1:]
    return [base.replace(" ", "_").replace(".", "_")] + segments


def listify(value):
    """Turn {"0": a, "1": b} into [a, b], recursively: PHP arrays with sequential keys."""
    if isinstance(value, dict):
        value = {k: listify(v) for k, v in value.items()}
        if value and all(k == str(i) for i, k in enumerate(value)):
            return list(value.values())
    return value


def php_parse_str(query, max_vars=None, post=False, on_truncate=None):
    """parse_str(): PHP bracket syntax into nested dicts (lists where the keys are 0..n-1).

    max_input_vars (php.ini, default 1000) bounds how many variables PHP reads: past the
    limit it stops and drops the rest silently, with only a warning in the server log
    ("Input variables exceeded 1000"; php-src main/php_variables.c: php_default_treat_data
    counts every non-empty "&"-separated piece of a query string or parse_str() input,
    php_std_post_handler every "name=value" piece of a form body; a piece without "=" is
    ignored there). It applies to a request's query string, a form-encoded body and each
    batch command (CRestUtil::ParseBatchQuery calls parse_str()). A JSON body is read
    with json_decode, which max_input_vars does not bound (it limits only the parsing of
    input variables); the emulator applies no limit there, but the cmd strings inside a
    JSON batch are still parse_str()'d one by one. on_truncate() is called when pieces
    are dropped."""
    result = {}
    pairs = [p for p in query.split("&") if p and (not post or "=" in p)]
    if max_vars is not None and len(pairs) > max_vars:
        pairs = pairs[:max_vars]
        if on_truncate is not None:
            on_truncate()
    if len(pairs) > MAX_PARAM_PAIRS:
        raise RestError(400, "INVALID_REQUEST", "Too many request parameters")
    for pair in pairs:
        raw_key, _, raw_value = pair.partition("=")
        key = urllib.parse.unquote_plus(raw_key).lstrip(" ")
        if not key:
            continue
        path = split_php_key(key)
        if len(path) > MAX_PARAM_DEPTH:
            continue  # PHP drops variables nested deeper than max_input_nesting_level
        node = result
        for seg, nxt in zip(path, path[1:] + [None]):
            if seg == "":  # "[]" appends with the next free integer key
                ints = [int(k) for k in node if re.fullmatch(r"-?\d+", k)]
                seg = str(max(ints) + 1 if ints else 0)
            if nxt is None:
                node[seg] = urllib.parse.unquote_plus(raw_value)
            else:
                if not isinstance(node.get(seg), dict):
                    node[seg] = {}
                node = node[seg]
    return listify(result)


def get_param(params, name, default=None):
    """resolveParam(): the parameter by its name, in any letter case (id, ID, Id...)."""
    if name in params:
        return params[name]
    lower = name.lower()
    for key, value in params.items():
        if key.lower() == lower:
            return value
    return default


def as_items(value):
    """A list given either as a JSON array or as a PHP array with arbitrary keys."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return None


# --- main's check_email() (main/tools.php) ------------------------------------------------

# "\p{L}" is a letter of any script; Python's re has no \p{L}, so every letter is mapped to
# "a" first (a letter is allowed wherever "a" is, and nowhere else).
_EMAIL_ATOM = r"[=_0-9a-z+~'!$&*^`|#%/?{}-]"
_EMAIL_DOMAIN = r"[a-z0-9-]"
_EMAIL_RE = re.compile(r"^%s+(\.%s+)*@((%s+\.)+)(%s{2,20})$"
                       % (_EMAIL_ATOM, _EMAIL_ATOM, _EMAIL_DOMAIN, _EMAIL_DOMAIN), re.I)
_EMAIL_BRACKETS_RE = re.compile(r".*?[<\[(](.*?)[>\])].*", re.I)


def bx_check_email(email, strict=False):
    """check_email($email, $strict = false) as main/tools.php has it, without the optional
    DNS check: not strict, the value is trimmed and an address in <...>, [...] or (...) is
    taken out of it ("Ivan <i@x.ru>"); more than 320 characters is refused (RFC 2821
    4.5.3.1); then local part of atoms joined by single dots, "@", one or more domain
    labels each followed by a dot, and a last label of 2 to 20 letters, digits or "-"."""
    if not isinstance(email, str):
        return False
    if not strict:
        email = email.strip(" \t\n\r\0\x0b")
        m = _EMAIL_BRACKETS_RE.search(email)
        if m and m.group(1) != "":
            email = m.group(1)
    if len(email) > 320:
        return False
    letters = "".join("a" if unicodedata.category(c).startswith("L") else c for c in email)
    return _EMAIL_RE.search(letters) is not None


# --- findbycomm normalisation (DuplicateCommunicationCriterion::prepareCodes) -------------

def bx_normalize_phone(number, min_length=1):
    """main's NormalizePhone(): digits; "8..." -> "7..."; "00"/"011" prefixes dropped."""
    if len(number.encode("utf-8")) < min_length:
        return False
    if len(number.encode("utf-8")) >= 10 and number.startswith("+8"):
        number = "00" + number[1:]
    number = re.sub(r"[^0-9#*]", "", number)
    if len(number) >= 10:
        if number[:2] in ("80", "81", "82"):
            pass
        elif number.startswith("00"):
            number = number[2:]
        elif number.startswith("011"):
            number = number[3:]
        elif number.startswith("8"):
            number = "7" + number[1:]
        elif number.startswith("0"):
            number = number[1:]
    return number


def normalize_phone(value):
    """The match code of a phone: normalised digits without an extension ("#404")."""
    if not isinstance(value, str) or value == "":
        return ""
    result = bx_normalize_phone(value, 1)
    if result is False or result == "":
        result = re.sub(r"[^0-9#*,;]", "", value)
    return re.sub(r"(\d+)([;#]*)([\d,]*)", r"\1", result)


def comm_code(comm_type, value):
    if comm_type == "PHONE":
        return normalize_phone(value)
    return value.strip().lower() if isinstance(value, str) else ""


# --- dates ---------------------------------------------------------------------------------

def iso(ts):
    return datetime.datetime.fromtimestamp(ts, PORTAL_TZ).replace(microsecond=0).isoformat()


def parse_date(value):
    """A filter or field date: ISO 8601 (with or without offset), Y-m-d H:i:s or d.m.Y."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    formats = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d",
               "%d.%m.%Y %H:%M:%S", "%d.%m.%Y")
    for fmt in formats:
        try:
            dt = datetime.datetime.strptime(value, fmt)
        except ValueError:
            continue
        return dt if dt.tzinfo else dt.replace(tzinfo=PORTAL_TZ)
    return None


# --- limits ----------------------------------------------------------------------------------

class LeakyBucket:
    """limits.md: each request raises a counter that drains at `rate` per second; a request
    that would take it past `burst` is refused (and does not raise it)."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.level, self.last = 0.0, time.monotonic()

    def admit(self):
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.last) * self.rate)
        self.last = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


class OperatingMeter:
    """Per-method execution-time budget over a sliding window (limits.md, "operating").

    Real portals (rest's Engine\Access\LoadLimiter) add each call's execution time into
    ten one-minute baskets per method and webhook; `operating` in a `time` block is that
    method's accumulated time in the window, `operating_reset_at` when the oldest basket
    leaves it. The emulator adds `cost` seconds per executed command (a failed command
    adds nothing: LoadLimiter::registerEnding is not reached when the method throws).
    The portal blocks a method once its sum EXCEEDS the limit (LoadLimiter::is, ">");
    the emulator blocks once it REACHES it, the harsher choice, so that with cost 1 and
    limit N exactly N calls pass. A blocked call is refused with 429 OPERATION_TIME_LIMIT
    (inside a batch: that command's error, the others run). `batch` itself is in
    LoadLimiter::$ignoreMethod: never metered, never blocked, its own `time` block shows
    operating 0 ("An external call to batch is not accounted for in operating")."""

    IGNORED = frozenset(("batch",))

    def __init__(self):
        self.limits, self.cost, self.window = {}, 0.0, 600.0
        self.entries = collections.defaultdict(collections.deque)

    def _prune(self, method, now):
        entries = self.entries[method]
        while entries and entries[0][0] + self.window <= now:
            entries.popleft()
        return entries

    def blocked(self, method, now):
        limit = self.limits.get(method)
        return method not in self.IGNORED and limit is not None and \
            sum(c for _, c in self._prune(method, now)) >= limit

    def add(self, method, now):
        if self.cost > 0 and method not in self.IGNORED:
            self.entries[method].append((now, self.cost))

    def status(self, method, now):
        """(operating_reset_at, operating) for the time block of an answer."""
        entries = () if method in self.IGNORED else self._prune(method, now)
        reset_at = entries[0][0] + self.window if entries else now + self.window
        return int(reset_at), round(sum(c for _, c in entries), 6)


# --- the portal ------------------------------------------------------------------------------

CallResult = collections.namedtuple("CallResult", "result total next")


class Emulator:
    """One portal: CRM data, counters, limits, faults and the outgoing-event queue."""

    def __init__(self, user_id, code, rate, burst, domain, app_token):
        self.user_id, self.code, self.domain = user_id, code, domain
        self.default_app_token = app_token
        self.cond = threading.Condition(threading.RLock())
        self.lock = self.cond  # "with emu.lock" reads better at call sites
        self.rate, self.burst = rate, burst
        self.hang_seconds = HANG_TIMEOUT_S
        self.operating = OperatingMeter()
        # Portal settings (POST /_emu/config; kept across /_emu/reset like rate and burst).
        self.required_fields = {"deal": [], "contact": [], "company": []}
        self.user_fields = {"deal": None, "contact": None, "company": None}
        # the deal user fields' descriptions in crm.deal.fields: {name: {"type", "multiple",
        # "read_only"}}; a listed user field without one is a writable single string
        self.deal_uf_types = {}
        self.currencies = CURRENCIES
        self.language = "en"
        self.max_input_vars = MAX_INPUT_VARS_DEFAULT
        self.stopping = False
        self.fault_generation = 0
        self.event_target = None  # {"url", "application_token", "handler_id"}
        self.handler_ids = 0
        # The portal's clock (POST /_emu/clock): None = the real time, else frozen at
        # that Unix time, so that a test can make several changes in one second. Every
        # time the portal shows (DATE_*, time blocks, an event's ts) reads it; the rate
        # limiter and the operating meter keep the real time, as they measure durations.
        self.clock_now = None
        self.events = EventSender(self)
        self._build_pipelines()
        self.methods = {
            "crm.contact.add": self.contact_add, "crm.contact.get": self.contact_get,
            "crm.contact.update": self.contact_update, "crm.contact.list": self.contact_list,
            "crm.company.add": self.company_add, "crm.company.get": self.company_get,
            "crm.company.update": self.company_update, "crm.company.list": self.company_list,
            "crm.deal.add": self.deal_add, "crm.deal.get": self.deal_get,
            "crm.deal.update": self.deal_update, "crm.deal.list": self.deal_list,
            "crm.deal.fields": self.deal_fields,
            "crm.deal.productrows.set": self.productrows_set,
            "crm.deal.productrows.get": self.productrows_get,
            "crm.duplicate.findbycomm": self.findbycomm,
            "crm.category.list": self.category_list, "crm.status.list": self.status_list,
            "crm.dealcategory.stage.list": self.dealcategory_stage_list,
        }
        self._clear()

    def _build_pipelines(self):
        self.categories = {}   # id -> {"name", "sort", "stages": [STATUS_ID...]}
        self.stages = {}       # STATUS_ID -> (category id, semantics letter or None)
        self.status_items = []  # crm.status.list rows
        next_id = 101
        for cat_id, name, sort, stages in PIPELINES:
            self.categories[cat_id] = {"name": name, "sort": sort,
                                       "stages": [s[0] for s in stages]}
            entity = "DEAL_STAGE" if cat_id == 0 else "DEAL_STAGE_%d" % cat_id
            for status_id, stage_name, stage_sort, color, extra in stages:
                self.stages[status_id] = (cat_id, SEMANTICS[extra])
                self.status_items.append({
                    "ID": str(next_id), "ENTITY_ID": entity, "STATUS_ID": status_id,
                    "NAME": stage_name, "NAME_INIT": stage_name if extra != "process" else "",
                    "SORT": str(stage_sort), "SYSTEM": "Y" if stage_sort == 10 or
                    extra in ("success", "failure") else "N",
                    "CATEGORY_ID": None if cat_id == 0 else str(cat_id), "COLOR": color,
                    "SEMANTICS": SEMANTICS[extra], "EXTRA": {"SEMANTICS": extra, "COLOR": color}})
                next_id += 2

    def _clear(self):
        """Forget all CRM data, counters, faults and limiter state (pipelines stay)."""
        self.contacts, self.companies, self.deals, self.productrows = {}, {}, {}, {}
        self.next_ids = {"contact": 1, "company": 1, "deal": 1, "multifield": 1, "row": 1}
        self.uf_names = {"contact": set(), "company": set(), "deal": set()}
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.by_method = collections.Counter()
        self.fault = {"mode": "none", "count": None, "methods": None}
        self.fault_generation += 1
        self.bucket = LeakyBucket(self.rate, self.burst)
        self.operating.entries.clear()
        self.events.clear()
        self.clock_now = None  # the real time again (see __init__)

    # --- control -------------------------------------------------------------------------

    def reset(self):
        with self.lock:
            self._clear()
            self.cond.notify_all()  # a reset also releases hung requests

    def stop(self):
        with self.lock:
            self.stopping = True
            self.cond.notify_all()

    def configure(self, spec):
        """POST /_emu/config: rate, burst, operating_limit {method: seconds},
        operating_cost (seconds per command), operating_window, hang_seconds, and the
        portal's settings: required_fields {"deal"|"contact"|"company": ["UF_CRM_..."]},
        user_fields {entity: [names] or null} (null: every UF_CRM_* exists), currencies
        ["RUB", ...], language "en"|"ru", max_input_vars N. Keys left out keep their value."""
        if not isinstance(spec, dict):
            raise ValueError("config must be a JSON object")

        def number(name, low, high):
            value = spec[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value <= high:
                raise ValueError("%s must be a number from %g to %g" % (name, low, high))
            return float(value)

        def uf_lists(name, allow_null):
            value = spec[name]
            if not isinstance(value, dict) or not set(value) <= set(self.required_fields):
                raise ValueError(name + " must be {deal|contact|company: [UF_CRM_...]}")
            out = {}
            for entity, names in value.items():
                if names is None and allow_null:
                    out[entity] = None
                elif not isinstance(names, list) or len(names) > CONFIG_LIST_MAX or not all(
                        isinstance(n, str) and UF_NAME_RE.fullmatch(n) for n in names):
                    raise ValueError("%s.%s must be a list of at most %d UF_CRM_* names"
                                     % (name, entity, CONFIG_LIST_MAX))
                else:
                    out[entity] = list(names)
            return out

        with self.lock:
            if "rate" in spec:
                self.rate = number("rate", 0, 1e6)
            if "burst" in spec:
                self.burst = number("burst", 1, 1e6)
            if "rate" in spec or "burst" in spec:
                self.bucket = LeakyBucket(self.rate, self.burst)
            if "operating_limit" in spec:
                limits = spec["operating_limit"] or {}
                if not isinstance(limits, dict) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                        for v in limits.values()):
                    raise ValueError("operating_limit must be {method: seconds}")
                self.operating.limits = {k.lower(): float(v) for k, v in limits.items()}
            if "operating_cost" in spec:
                self.operating.cost = number("operating_cost", 0, 1e6)
            if "operating_window" in spec:
                self.operating.window = number("operating_window", 0.01, 1e6)
            if "hang_seconds" in spec:
                self.hang_seconds = number("hang_seconds", 0, HANG_TIMEOUT_S)
            if "required_fields" in spec:
                self.required_fields.update(uf_lists("required_fields", False))
            if "user_fields" in spec:
                self.user_fields.update(uf_lists("user_fields", True))
            if "deal_uf_types" in spec:
                types = spec["deal_uf_types"]
                if not isinstance(types, dict) or len(types) > CONFIG_LIST_MAX or not all(
                        isinstance(k, str) and UF_NAME_RE.fullmatch(k) and isinstance(v, dict)
                        and v.get("type", "string") in UF_TYPES
                        and set(v) <= {"type", "multiple", "read_only"}
                        for k, v in types.items()):
                    raise ValueError("deal_uf_types must be {UF_CRM_...: {type, multiple, "
                                     "read_only}}")
                self.deal_uf_types = copy.deepcopy(types)
            if "currencies" in spec:
                currencies = spec["currencies"]
                if not isinstance(currencies, list) or not 1 <= len(currencies) <= 50 or \
                        not all(isinstance(c, str) and re.fullmatch(r"[A-Z]{3}", c)
                                for c in currencies):
                    raise ValueError("currencies must be a list of 1 to 50 codes like RUB")
                self.currencies = tuple(currencies)
            if "language" in spec:
                if spec["language"] not in MESSAGES:
                    raise ValueError("language must be one of " + ", ".join(MESSAGES))
                self.language = spec["language"]
            if "max_input_vars" in spec:
                value = spec["max_input_vars"]
                if isinstance(value, bool) or not isinstance(value, int) or \
                        not 1 <= value <= MAX_PARAM_PAIRS:
                    raise ValueError("max_input_vars must be an integer from 1 to %d"
                                     % MAX_PARAM_PAIRS)
                self.max_input_vars = value
            return self.config()

    def config(self):
        return {"rate": self.rate, "burst": self.burst,
                "operating_limit": dict(self.operating.limits),
                "operating_cost": self.operating.cost,
                "operating_window": self.operating.window, "hang_seconds": self.hang_seconds,
                "required_fields": copy.deepcopy(self.required_fields),
                "user_fields": copy.deepcopy(self.user_fields),
                "deal_uf_types": copy.deepcopy(self.deal_uf_types),
                "currencies": list(self.currencies), "language": self.language,
                "max_input_vars": self.max_input_vars}

    def set_fault(self, spec):
        """POST /_emu/fault. One fault at a time: a new one replaces the old.

        Request faults ({"mode": "error503"|"error500"|"hang"|"reset"|"lost"|"expired_token"|
        "query_limit"|"slow", "count": N, "methods": [...], "delay_ms": ms}) hit whole HTTP
        requests whose method is listed (a batch is the method "batch").

        {"mode": "command_error", "methods": [...], "count": N, "code": "", "description":
        "...", "unkeyed": false, "omit": false} hits single COMMANDS instead: every command
        of a listed method (all methods when "methods" is absent), in a batch or as a direct
        call, fails with that error before it writes anything (direct call: HTTP 400 with
        {"error": code, "error_description": description}; in a batch: its result_error
        entry). "unkeyed": the batch's result_error is then answered as a JSON list, its
        keys lost, as a real answer showed it (fast_bitrix24 tests/real_responses/
        crm_get_batch_mix_success_and_errors.py). "omit": the failing command has neither a
        result nor an error entry (halt still stops after it). "count" counts failing
        commands; 0 or absent = until the fault is set again."""
        if not isinstance(spec, dict) or spec.get("mode") not in FAULT_MODES:
            raise ValueError("mode must be one of " + ", ".join(FAULT_MODES))
        count = spec.get("count") or 0
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10 ** 6:
            raise ValueError("count must be an integer from 0 to 1000000")
        methods = spec.get("methods")
        if methods is not None and (not isinstance(methods, list) or not all(
                isinstance(m, str) and m for m in methods)):
            raise ValueError("methods must be a list of method names")
        delay = spec.get("delay_ms", 1000)
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 10 ** 6:
            raise ValueError("delay_ms must be an integer from 0 to 1000000")
        fault = {"mode": spec["mode"], "count": count or None, "delay_ms": delay,
                 "methods": {m.lower() for m in methods} if methods else None}
        if spec["mode"] == "command_error":
            for name, default in (("code", ""), ("description", "Command refused by the "
                                                                "emulator's command_error fault")):
                value = spec.get(name, default)
                if not isinstance(value, str) or len(value) > FAULT_TEXT_MAX:
                    raise ValueError("%s must be a string of at most %d characters"
                                     % (name, FAULT_TEXT_MAX))
                fault[name] = value
            for name in ("unkeyed", "omit"):
                if not isinstance(spec.get(name, False), bool):
                    raise ValueError(name + " must be true or false")
                fault[name] = spec.get(name, False)
        with self.lock:
            self.fault = fault
            self.fault_generation += 1
            self.cond.notify_all()  # wake requests held by an earlier "hang"

    def _fault_hits(self, method):
        """Use up one `count` of the current fault for `method`; the fault or None."""
        fault = self.fault
        if fault["mode"] == "none" or (fault["methods"] and method not in fault["methods"]):
            return None
        if fault["count"] is not None:
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.fault = {"mode": "none", "count": None, "methods": None}
        self.counts["faulted"] += 1
        return fault

    def take_fault(self, method):
        """The request fault that hits this request, or None. Counts it and uses up
        `count`. A command_error fault is not a request fault: see take_command_fault."""
        with self.lock:
            if self.fault["mode"] == "command_error":
                return None
            fault = self._fault_hits(method)
            if fault is None:
                return None
            if fault["mode"] == "query_limit":
                self.counts["query_limit_exceeded"] += 1
            return fault["mode"], self.fault_generation, fault.get("delay_ms", 1000) / 1000.0

    def take_command_fault(self, method):
        """The command_error fault for one command of `method`, or None (lock held)."""
        if self.fault["mode"] != "command_error":
            return None
        return self._fault_hits(method)

    def wait_hang(self, generation):
        """Hold a request until the faults are set again, a reset, shutdown, or the timeout."""
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or self.fault_generation != generation,
                               timeout=self.hang_seconds)

    def now(self):
        """The portal's clock: Unix time, frozen when /_emu/clock set it."""
        return time.time() if self.clock_now is None else self.clock_now

    def set_clock(self, spec):
        """POST /_emu/clock {"now": unix seconds | null}: freeze the portal's clock at
        that time, or give it back the real time."""
        if not isinstance(spec, dict) or "now" not in spec:
            raise ValueError('body must be {"now": unix seconds or null}')
        value = spec["now"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 253402300799):
            raise ValueError("now must be a Unix time (0 to 253402300799) or null")
        with self.lock:
            self.clock_now = value

    def set_event_target(self, spec):
        if not isinstance(spec, dict):
            raise ValueError('body must be {"url": "...", "application_token": "..."}')
        url = spec.get("url")
        with self.lock:
            if not url:
                self.event_target = None
                return
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError("url must be an http(s) URL")
            token = spec.get("application_token", self.default_app_token)
            if not isinstance(token, str):
                raise ValueError("application_token must be a string")
            self.handler_ids += 1
            self.event_target = {"url": url, "application_token": token,
                                 "handler_id": self.handler_ids}

    def snapshot(self):
        with self.lock:
            counts = dict(self.counts)
            counts["by_method"] = dict(self.by_method)
            return copy.deepcopy({
                "contacts": {str(k): v for k, v in self.contacts.items()},
                "companies": {str(k): v for k, v in self.companies.items()},
                "deals": {str(k): v for k, v in self.deals.items()},
                "productrows": {str(k): v for k, v in self.productrows.items()},
                "counts": counts,
                "fault": dict({k: v for k, v in self.fault.items() if k != "delay_ms"},
                              methods=sorted(self.fault["methods"] or [])),
                "config": self.config(),
                "event_target": self.event_target and {
                    "url": self.event_target["url"],
                    "handler_id": self.event_target["handler_id"]},
                "events": self.events.stats(),
            })

    # --- admission -----------------------------------------------------------------------

    def auth_ok(self, user_id, code):
        return user_id == str(self.user_id) and hmac.compare_digest(
            code.encode("utf-8", "replace"), self.code.encode("utf-8"))

    def admit(self):
        """One request against the leaky bucket (rate 0: nothing drains, a hard cap of
        `burst` requests); counts a refusal."""
        with self.lock:
            if not self.bucket.admit():
                self.counts["query_limit_exceeded"] += 1
                return False
            return True

    def count_truncation(self):
        with self.lock:
            self.counts["input_vars_truncated"] += 1

    def count_request(self):
        with self.lock:
            self.counts["http_requests"] += 1

    # --- running commands ------------------------------------------------------------------

    def time_block(self, start, finish, processing, method=None):
        """An answer's "time": start and finish are the portal's clock (microtime(true) on
        its server, the clock DATE_MODIFY is written with; frozen when /_emu/clock froze
        it), date_* the same in the portal's zone (api-reference/data-types.md#time)."""
        if self.clock_now is not None:
            start = finish = self.clock_now
        out = {"start": start, "finish": finish, "duration": finish - start,
               "processing": processing, "date_start": iso(start), "date_finish": iso(finish)}
        if method is not None:
            out["operating_reset_at"], out["operating"] = self.operating.status(method, finish)
        return out

    def execute(self, method, params):
        """Run one REST method (single call or batch command). Caller holds the lock.
        Returns (CallResult, processing_start, processing_end); raises RestError."""
        self.counts["commands"] += 1
        self.by_method[method] += 1
        handler = self.methods.get(method)
        if handler is None:
            raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        now = time.time()
        if self.operating.blocked(method, now):
            self.counts["operation_time_limit"] += 1
            raise RestError(429, "OPERATION_TIME_LIMIT",
                            "Method is blocked due to operation time limit.",
                            {"time": self.time_block(now, now, 0.0, method)})
        fault = self.take_command_fault(method)
        if fault is not None:
            raise CommandFault(fault)
        started = time.time()
        result = handler(params)
        if not isinstance(result, CallResult):
            result = CallResult(result, None, None)
        finished = time.time()
        self.operating.add(method, finished)
        return result, started, finished

    def call(self, method, params, start):
        """A single (non-batch) call: the answer envelope, or RestError."""
        with self.lock:
            result, p_start, p_end = self.execute(method, params)
            body = {"result": result.result}
            if result.total is not None:
                body["total"] = result.total
            if result.next is not None:
                body["next"] = result.next
            body["time"] = self.time_block(start, time.time(), p_end - p_start, method)
            return body

    def batch(self, params, start):
        """batch, as CRestProvider::methodsBatch runs it: up to 50 commands in order, each
        a "method?query" string; errors go to result_error per command; halt stops at the
        first error; commands past the 50th each get ERROR_BATCH_LENGTH_EXCEEDED."""
        halt = php_bool(get_param(params, "halt", False))
        cmd = get_param(params, "cmd")
        if isinstance(cmd, list):
            cmd = {str(i): v for i, v in enumerate(cmd)}
        sections = {name: {} for name in ("result", "next", "total", "time", "error")}
        unkeyed = False
        with self.lock:
            self.by_method["batch"] += 1
            count = 0
            for key, call in (cmd.items() if isinstance(cmd, dict) else ()):
                count += 1
                if count > BATCH_MAX:
                    error = RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED",
                                      "Max batch length exceeded")
                elif not isinstance(call, str):
                    continue
                else:
                    error = self._batch_command(key, call, sections)
                if error is not None:
                    if isinstance(error, CommandFault):
                        unkeyed = unkeyed or error.unkeyed
                    if not (isinstance(error, CommandFault) and error.omit):
                        sections["error"][key] = {"error": error.code,
                                                  "error_description": error.description}
                    if halt:  # the commands after it do not run: neither result nor error
                        break
            body = {"result": {
                "result": php_array(sections["result"]),
                "result_error": list(sections["error"].values()) if unkeyed
                else php_array(sections["error"]),
                "result_total": php_array(sections["total"]),
                "result_next": php_array(sections["next"]),
                "result_time": php_array(sections["time"])}}
            now = time.time()
            body["time"] = self.time_block(start, now, now - start, "batch")
            return body

    def _batch_command(self, key, call, sections):
        """Run one batch command into `sections`; return its RestError or None."""
        method, _, query = call.partition("?")
        query = query.split("#", 1)[0]  # parse_url() drops a fragment
        method = method.strip().lower()
        try:
            params = php_parse_str(query, self.max_input_vars,
                                   on_truncate=self.count_truncation) if query else {}
            params = resolve_batch_refs(params, sections)
            if method == "batch":
                raise RestError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED",
                                "Method is not allowed for batch usage")
            result, p_start, p_end = self.execute(method, params)
        except RestError as err:
            return err
        sections["result"][key] = result.result
        if result.total is not None:
            sections["total"][key] = result.total
        if result.next is not None:
            sections["next"][key] = result.next
        # Each command's time block carries operating/operating_reset_at of ITS method
        # (CRestServer::appendDebugInfo runs for every CRestServerBatchItem).
        sections["time"][key] = self.time_block(p_start, p_end, p_end - p_start, method)
        return None

    # --- common CRM helpers ----------------------------------------------------------------

    def _now(self):
        return iso(self.now())

    def _fields(self, params):
        fields = get_param(params, "fields")
        if not isinstance(fields, dict):
            raise crm_error("Parameter 'fields' must be array.")
        opts = get_param(params, "params")
        if opts is not None and not isinstance(opts, (dict, list)):
            raise crm_error("Parameter 'params' must be array.")
        return fields

    @staticmethod
    def _id(params, message="ID is not defined or invalid"):
        entity_id = php_intval(get_param(params, "id"))
        if entity_id <= 0:
            raise crm_error(message)
        return entity_id

    def _apply_scalars(self, entity, record, fields, writable):
        """Copy writable scalar fields and UF_CRM_* fields; unknown fields are ignored."""
        for name, value in fields.items():
            if name in writable:
                if name in ID_FIELDS:
                    number = php_intval(value)  # an array is 1: see php_intval
                    record[name] = str(number) if number > 0 else (
                        "0" if name == "COMPANY_ID" else None)
                elif name in ("OPPORTUNITY", "TAX_VALUE", "REVENUE"):
                    if to_str(value) is not _NOT_SCALAR:
                        record[name] = money(value)
                else:
                    text = to_str(value)
                    if text is not _NOT_SCALAR:
                        record[name] = text
            elif name.startswith("UF_CRM_"):
                known = self.user_fields.get(entity)
                if known is not None and name not in known and \
                        name not in self.required_fields.get(entity, ()):
                    continue  # a field the portal lacks is dropped without an error
                items = as_items(value)
                if items is not None:
                    stored = [to_str(v) for v in items if to_str(v) not in (_NOT_SCALAR, None)]
                else:
                    stored = to_str(value)
                    if stored is _NOT_SCALAR:
                        continue
                record[name] = stored
                self.uf_names[entity].add(name)

    def _check_crm_fields(self, entity, fields, update):
        """The refusals of CCrm<Entity>::CheckFields that the emulator knows, all checked
        before anything is written; raises one CRM error (HTTP 400, empty code) whose
        description is the portal's LAST_ERROR: the messages, each ended by "<br />"
        (CCrmFieldMulti) or "<br>" (CAdminException), in the order the portal checks.

        Multi-fields (crm_field_multi.php CheckComplexFields, contact and company only):
        any VALUE longer than 250 characters; an EMAIL VALUE that is not empty and fails
        main's check_email(). Required user fields (main's CUserTypeManager::CheckFields):
        on add every required field needs a non-empty value; on update only those given.
        The portal checks required user fields through REST only when its option
        rest_enable_req_uf_check is on (crm's RestSettings, default off): configuring
        required_fields plays such a portal."""
        texts, titles = MESSAGES[self.language], MULTI_FIELD_TITLES[self.language]
        messages = []
        for type_id in (MULTI_FIELDS if entity in ("contact", "company") else ()):
            for item in as_items(fields.get(type_id)) or ():
                if not isinstance(item, dict):
                    continue
                value = to_str(item.get("VALUE"))
                value = value if isinstance(value, str) else ""
                value_type = to_str(item.get("VALUE_TYPE"))
                value_type = value_type if isinstance(value_type, str) and value_type \
                    else "WORK"
                title = titles.get(type_id + "_" + value_type, "")  # unknown: false -> ""
                if len(value) > MULTI_VALUE_MAX:
                    messages.append(texts["strlen"].replace("#FIELD_NAME#", title) + "<br />")
                if type_id == "EMAIL" and value != "" and not bx_check_email(value):
                    messages.append(texts["email"].replace("#FIELD_NAME#", title) + "<br />")
        for name in self.required_fields.get(entity, ()):
            if update and name not in fields:
                continue
            value = fields.get(name)
            items = as_items(value) if isinstance(value, (dict, list)) else [value]
            if not any(isinstance(to_str(v), str) and to_str(v) != "" for v in items):
                messages.append(texts["required"].replace("#FIELD_NAME#", name) + "<br>")
        if messages:
            raise crm_error("".join(messages))

    def _apply_multifields(self, record, fields, update):
        """PHONE/EMAIL: on add the given list; on update an item without ID is appended,
        one with ID changes that item, and with an empty VALUE or DELETE=Y removes it."""
        for type_id in MULTI_FIELDS:
            if type_id not in fields:
                continue
            items = as_items(fields[type_id])
            if items is None:
                continue
            current = record.get(type_id, []) if update else []
            for item in items:
                if not isinstance(item, dict):
                    continue
                value = to_str(item.get("VALUE"))
                value = value if isinstance(value, str) else ""
                value_type = to_str(item.get("VALUE_TYPE"))
                delete = str(item.get("DELETE", "")).upper() == "Y"
                item_id = str(php_intval(item.get("ID")))
                if update and item_id != "0":
                    for existing in current:
                        if existing["ID"] == item_id:
                            if delete or value == "":
                                current.remove(existing)
                            else:
                                existing["VALUE"] = value
                                if isinstance(value_type, str) and value_type:
                                    existing["VALUE_TYPE"] = value_type
                            break
                    continue
                if value == "" or delete:
                    continue
                current.append({"ID": str(self.next_ids["multifield"]),
                                "VALUE_TYPE": value_type if isinstance(value_type, str)
                                and value_type else "WORK",
                                "VALUE": value, "TYPE_ID": type_id})
                self.next_ids["multifield"] += 1
            if current:
                record[type_id] = current
            else:
                record.pop(type_id, None)
            record["HAS_" + type_id] = "Y" if current else "N"

    def _touch(self, record):
        record["DATE_MODIFY"] = self._now()
        record["MODIFY_BY_ID"] = str(self.user_id)

    def _list(self, entity, records, params, fields):
        """A *.list answer: filter, order, select, 50 per page from `start`."""
        flt = get_param(params, "filter") or {}
        flt = flt if isinstance(flt, dict) else {}
        rows = [r for r in records if all(match_filter(r, k, v) for k, v in flt.items())]
        order = get_param(params, "order") or {}
        order = order if isinstance(order, dict) else {}
        rows.sort(key=lambda r: php_intval(r.get("ID")))
        for field, direction in reversed(list(order.items())):
            rows.sort(key=lambda r, f=field.upper(): sort_key(r.get(f), f),
                      reverse=str(direction).upper() == "DESC")
        start = php_intval(get_param(params, "start", 0))
        page_from = max(start, 0)
        page = rows[page_from:page_from + PAGE_SIZE]
        names = select_names(get_param(params, "select"), fields, self.uf_names.get(entity, ()))
        result = [project(r, names) for r in page]
        if start == -1:  # huge-data.md: start=-1 skips the COUNT; no total, no next
            return CallResult(result, None, None)
        more = page_from + PAGE_SIZE < len(rows)
        return CallResult(result, len(rows), page_from + PAGE_SIZE if more else None)

    def _get(self, table, params):
        record = table.get(self._id(params))
        if record is None:
            raise crm_error("Not found")
        return copy.deepcopy(record)

    # --- contacts and companies ----------------------------------------------------------

    def _party_add(self, entity, table, params, writable, defaults):
        fields = self._fields(params)
        self._check_crm_fields(entity, fields, update=False)
        new_id = self.next_ids[entity]
        now = self._now()
        record = {"ID": str(new_id)}
        record.update(defaults)
        record.update({"OPENED": "Y", "HAS_PHONE": "N", "HAS_EMAIL": "N",
                       "ASSIGNED_BY_ID": str(self.user_id), "CREATED_BY_ID": str(self.user_id),
                       "MODIFY_BY_ID": str(self.user_id), "DATE_CREATE": now, "DATE_MODIFY": now,
                       "ORIGINATOR_ID": None, "ORIGIN_ID": None, "ORIGIN_VERSION": None})
        self._apply_scalars(entity, record, fields, writable)
        self._apply_multifields(record, fields, update=False)
        table[new_id] = record
        self.next_ids[entity] += 1
        return new_id

    def _party_update(self, entity, table, params, writable):
        record = table.get(self._id(params))
        if record is None:
            raise crm_error("Not found")
        fields = self._fields(params)
        self._check_crm_fields(entity, fields, update=True)
        self._apply_scalars(entity, record, fields, writable)
        self._apply_multifields(record, fields, update=True)
        self._touch(record)
        return True

    def contact_add(self, params):
        return self._party_add("contact", self.contacts, params, CONTACT_WRITABLE, {
            "NAME": None, "SECOND_NAME": None, "LAST_NAME": None, "TYPE_ID": "CLIENT",
            "SOURCE_ID": None, "COMPANY_ID": None, "EXPORT": "Y", "COMMENTS": None})

    def contact_get(self, params):
        return self._get(self.contacts, params)

    def contact_update(self, params):
        return self._party_update("contact", self.contacts, params, CONTACT_WRITABLE)

    def contact_list(self, params):
        return self._list("contact", list(self.contacts.values()), params, CONTACT_FIELDS)

    def company_add(self, params):
        new_id = self.next_ids["company"]
        return self._party_add("company", self.companies, params, COMPANY_WRITABLE, {
            "TITLE": "Company #%d" % new_id, "COMPANY_TYPE": "CUSTOMER", "CURRENCY_ID": "RUB",
            "IS_MY_COMPANY": "N", "COMMENTS": None})

    def company_get(self, params):
        return self._get(self.companies, params)

    def company_update(self, params):
        return self._party_update("company", self.companies, params, COMPANY_WRITABLE)

    def company_list(self, params):
        return self._list("company", list(self.companies.values()), params, COMPANY_FIELDS)

    # --- deals -------------------------------------------------------------------------------

    def _check_stage(self, stage, category):
        if stage not in self.categories[category]["stages"]:
            raise field_error("STAGE_ID")

    def _set_stage(self, record, stage):
        category, semantic = self.stages[stage]
        record["STAGE_ID"] = stage
        record["STAGE_SEMANTIC_ID"] = semantic or "P"
        record["CLOSED"] = "Y" if semantic else "N"
        record["IS_NEW"] = "Y" if self.categories[category]["stages"][0] == stage else "N"
        record["MOVED_TIME"] = self._now()
        record["MOVED_BY_ID"] = str(self.user_id)

    def _check_deal_fields(self, fields):
        """A CURRENCY_ID that is not one of the portal's currencies (POST /_emu/config
        {"currencies": [...]}) is refused. The legacy CCrmDeal::CheckFields does not look
        at the currency, and what the portal's newer field checks answer is not known from
        the sources: refusing is the harsher choice, in the words of the other field
        refusals."""
        if "CURRENCY_ID" in fields and to_str(fields["CURRENCY_ID"]) not in self.currencies:
            raise field_error("CURRENCY_ID")

    def deal_add(self, params):
        """crm.deal.add. CATEGORY_ID defaults to the pipeline named by a "C<n>:" STAGE_ID,
        else 0; STAGE_ID must be a stage of that pipeline (defaults to its first)."""
        fields = self._fields(params)
        self._check_deal_fields(fields)
        stage = to_str(fields.get("STAGE_ID"))
        stage = stage if isinstance(stage, str) and stage else None
        if "CATEGORY_ID" in fields:
            category = php_intval(fields["CATEGORY_ID"])
        else:
            m = re.match(r"C(\d+):", stage or "")
            category = int(m.group(1)) if m else 0
        if category not in self.categories:
            raise field_error("CATEGORY_ID")
        stage = stage or self.categories[category]["stages"][0]
        self._check_stage(stage, category)
        self._check_crm_fields("deal", fields, update=False)
        new_id = self.next_ids["deal"]
        now = self.now()
        record = {name: None for name in DEAL_FIELDS}
        record.update({
            "ID": str(new_id), "TITLE": "Deal #%d" % new_id, "TYPE_ID": "SALE",
            "CURRENCY_ID": "RUB", "OPPORTUNITY": "0.00", "IS_MANUAL_OPPORTUNITY": "N",
            "TAX_VALUE": "0.00", "COMPANY_ID": "0", "BEGINDATE": iso(now),
            "CLOSEDATE": iso(now + 7 * 86400), "ASSIGNED_BY_ID": str(self.user_id),
            "CREATED_BY_ID": str(self.user_id), "MODIFY_BY_ID": str(self.user_id),
            "DATE_CREATE": iso(now), "DATE_MODIFY": iso(now), "OPENED": "Y",
            "CATEGORY_ID": str(category), "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N",
            "IS_REPEATED_APPROACH": "N", "SOURCE_ID": "WEB"})
        self._set_stage(record, stage)
        writable = DEAL_WRITABLE - {"STAGE_ID"}
        self._apply_scalars("deal", record, fields, writable)
        contact_ids = as_items(fields.get("CONTACT_IDS"))
        if "CONTACT_ID" not in fields and contact_ids:
            self._apply_scalars("deal", record, {"CONTACT_ID": contact_ids[0]}, writable)
        self.deals[new_id] = record
        self.next_ids["deal"] += 1
        self.events.emit("ONCRMDEALADD", new_id)
        return new_id

    def deal_get(self, params):
        return self._get(self.deals, params)

    def deal_update(self, params):
        """crm.deal.update: only the given fields change; CATEGORY_ID is immutable and
        ignored (crm-deal-update.md: move pipelines with crm.item.update)."""
        record = self.deals.get(self._id(params))
        if record is None:
            raise crm_error("Not found")
        fields = self._fields(params)
        self._check_deal_fields(fields)
        stage = to_str(fields.get("STAGE_ID"))
        if isinstance(stage, str) and stage:
            self._check_stage(stage, int(record["CATEGORY_ID"]))
        else:
            stage = None
        self._check_crm_fields("deal", fields, update=True)
        self._apply_scalars("deal", record, fields, DEAL_WRITABLE - {"STAGE_ID"})
        if stage and stage != record["STAGE_ID"]:
            self._set_stage(record, stage)
        self._touch(record)
        self.events.emit("ONCRMDEALUPDATE", int(record["ID"]))
        return True

    def deal_list(self, params):
        return self._list("deal", list(self.deals.values()), params, DEAL_FIELDS)

    def deal_fields(self, params):
        """crm.deal.fields: {FIELD: {type, isRequired, isReadOnly, isImmutable, isMultiple,
        isDynamic, title}} (crm-deal-fields.md). CATEGORY_ID is immutable, as the page shows.
        User fields: those of user_fields["deal"] when it is a list; when it is null (every
        UF_CRM_* accepted) only the ones written so far are described — the harsher choice,
        since a real portal describes only the fields it has."""
        out = {}
        for name in DEAL_FIELDS:
            out[name] = {"type": DEAL_FIELD_TYPES.get(name, "string"), "isRequired": False,
                         "isReadOnly": name not in DEAL_WRITABLE,
                         "isImmutable": name == "CATEGORY_ID", "isMultiple": False,
                         "isDynamic": False, "title": FIELD_TITLES.get(name, name)}
        known = self.user_fields.get("deal")
        names = list(known) if known is not None else sorted(self.uf_names["deal"])
        for name in names + [n for n in self.required_fields["deal"] if n not in names]:
            spec = self.deal_uf_types.get(name, {})
            out[name] = {"type": spec.get("type", "string"),
                         "isRequired": name in self.required_fields["deal"],
                         "isReadOnly": bool(spec.get("read_only", False)),
                         "isImmutable": False, "isMultiple": bool(spec.get("multiple", False)),
                         "isDynamic": True, "title": name, "listLabel": name,
                         "formLabel": name, "filterLabel": name}
        return out

    @staticmethod
    def _check_discount(item):
        """The discount refusals of crm.deal.productrows.set, verbatim from its page's error
        table (crm-deal-productrows-set.md; HTTP 400 ERROR_CORE with the portal's "<br>"):
        an explicit DISCOUNT_TYPE_ID 1 needs DISCOUNT_SUM, an explicit 2 needs DISCOUNT_RATE,
        and a rate of 100 % needs DISCOUNT_SUM."""
        kind = item.get("DISCOUNT_TYPE_ID")
        if kind is None:
            return
        kind = php_intval(kind)
        if kind == 1 and item.get("DISCOUNT_SUM") in (None, ""):
            raise RestError(400, "ERROR_CORE", "Discount Sum (DISCOUNT_SUM) is required if "
                            "Monetary Discount Type (DISCOUNT_TYPE_ID) is defined.<br>")
        if kind == 2 and item.get("DISCOUNT_RATE") in (None, ""):
            raise RestError(400, "ERROR_CORE", "Discount Rate (DISCOUNT_RATE) is required if "
                            "Percentage Discount Type (DISCOUNT_TYPE_ID) is defined.<br>")
        if kind == 2 and php_floatval(item.get("DISCOUNT_RATE")) == 100 and \
                item.get("DISCOUNT_SUM") in (None, ""):
            raise RestError(400, "ERROR_CORE", "Discount Sum (DISCOUNT_SUM) is required if "
                            "Percentage Discount Type (DISCOUNT_TYPE_ID) is defined and "
                            "Discount Rate (DISCOUNT_RATE) is 100%<br>")

    def productrows_set(self, params):
        """Replaces ALL rows (missing or non-array `rows` clears them). When the deal's
        IS_MANUAL_OPPORTUNITY is not "Y", OPPORTUNITY becomes the sum of the rows (PRICE is
        the final price per unit, after the row's discount: crm-deal-productrows-set.md).
        Every row is checked before any is written."""
        deal_id = self._id(params, "The parameter id is invalid or not defined.")
        deal = self.deals.get(deal_id)
        if deal is None:
            raise crm_error("Not found")
        items = as_items(get_param(params, "rows")) or []
        for item in items:
            if isinstance(item, dict):
                self._check_discount(item)
        rows, total = [], Decimal(0)
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            row = make_product_row(self.next_ids["row"] + len(rows), deal_id, n, item)
            rows.append(row)
            total += php_floatval(item.get("PRICE", 0)) * php_floatval(item.get("QUANTITY", 1))
        self.next_ids["row"] += len(rows)
        self.productrows[deal_id] = rows
        if deal["IS_MANUAL_OPPORTUNITY"] != "Y":
            opportunity = money(total)
            if opportunity != deal["OPPORTUNITY"]:
                deal["OPPORTUNITY"] = opportunity
                self._touch(deal)
                self.events.emit("ONCRMDEALUPDATE", deal_id)
        return True

    def productrows_get(self, params):
        deal_id = self._id(params, "The parameter id is invalid or not defined.")
        if deal_id not in self.deals:
            raise crm_error("Not found")
        return copy.deepcopy(self.productrows.get(deal_id, []))

    # --- duplicates, pipelines ---------------------------------------------------------------

    def findbycomm(self, params):
        """CCrmDuplicateRestProxy FINDBYCOMM: at most 20 distinct non-empty string values
        are looked at, later ones are ignored silently (counted in findbycomm_truncated);
        answer {"LEAD"|"CONTACT"|"COMPANY": [ids]} with only the types found, or []."""
        comm_type = get_param(params, "type")
        comm_type = comm_type.upper() if isinstance(comm_type, str) else ""
        if comm_type not in ("EMAIL", "PHONE"):
            if comm_type == "":  # verbatim from crm-duplicate-find-by-comm.md
                raise RestError(400, "Communication type is not defined",
                                "Parameter 'type' is required.")
            raise crm_error("Communication type '%s' is not supported in current context."
                            % comm_type)
        values = as_items(get_param(params, "values"))
        if not values:
            raise crm_error("Communication values is not defined.")
        entity_type = get_param(params, "entity_type")
        entity_type = entity_type.upper() if isinstance(entity_type, str) else ""
        if entity_type == "DEAL":
            raise crm_error("Deal is not supported in current context.")
        types = [entity_type] if entity_type in ("LEAD", "CONTACT", "COMPANY") else \
            ["LEAD", "CONTACT", "COMPANY"]
        tables = {"LEAD": {}, "CONTACT": self.contacts, "COMPANY": self.companies}
        found, seen = {}, []
        usable = [v for v in values if isinstance(v, str) and v != ""]
        for value in usable:
            code = comm_code(comm_type, value)
            if code in seen:
                continue
            seen.append(code)
            if len(seen) > FINDBYCOMM_MAX:
                self.counts["findbycomm_truncated"] += 1
                break
            for etype in types:
                hits = [eid for eid, rec in sorted(tables[etype].items())
                        if code and any(comm_code(comm_type, item["VALUE"]) == code
                                        for item in rec.get(comm_type, []))][:FINDBYCOMM_MAX]
                for eid in hits:
                    if eid not in found.setdefault(etype, []):
                        found[etype].append(eid)
        found = {k: v for k, v in found.items() if v}
        return found if found else []

    def category_list(self, params):
        entity_type = php_intval(get_param(params, "entityTypeId"))
        if entity_type != 2:
            if entity_type in (1, 3, 4, 7, 31):
                names = {1: "LEAD", 3: "CONTACT", 4: "COMPANY", 7: "QUOTE", 31: "SMART_INVOICE"}
                raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED",
                                "Entity type `%s` is not supported" % names[entity_type])
            raise RestError(400, "NOT_FOUND", "Smart process not found")
        items = []
        for cat_id, cat in sorted(self.categories.items(), key=lambda kv: kv[1]["sort"]):
            item = {"id": cat_id, "name": cat["name"], "sort": cat["sort"], "entityTypeId": 2,
                    "isDefault": "Y" if cat_id == 0 else "N"}
            if cat_id != 0:
                item.update({"originId": "", "originatorId": ""})
            items.append(item)
        return CallResult({"categories": items}, len(items), None)

    def status_list(self, params):
        flt = get_param(params, "filter") or {}
        flt = flt if isinstance(flt, dict) else {}
        rows = [r for r in self.status_items if all(match_filter(r, k, v) for k, v in flt.items())]
        order = get_param(params, "order") or {"SORT": "ASC"}
        order = order if isinstance(order, dict) else {}
        for field, direction in reversed(list(order.items())):
            rows.sort(key=lambda r, f=field.upper(): sort_key(r.get(f), f),
                      reverse=str(direction).upper() == "DESC")
        return CallResult(copy.deepcopy(rows), len(rows), None)

    def dealcategory_stage_list(self, params):
        """Deprecated crm.dealcategory.stage.list: id 0/absent = default pipeline, an
        unknown id = nothing."""
        category = php_intval(get_param(params, "id", 0))
        if category not in self.categories:
            return CallResult([], 0, None)
        rows = [{"NAME": s["NAME"], "SORT": s["SORT"], "STATUS_ID": s["STATUS_ID"]}
                for s in self.status_items if self.stages[s["STATUS_ID"]][0] == category]
        return CallResult(rows, len(rows), None)

    # --- "a manager" (POST /_emu/<entity>): the CRM UI, not the webhook ---------------------

    def manager_write(self, entity, spec):
        """Create ({"fields"}) or update ({"id", "fields"}) a record as a manager would:
        no rate limit, no counters; deal changes still fire the outgoing events."""
        if not isinstance(spec, dict):
            raise ValueError('body must be {"id"?: n, "fields": {...}}')
        add, update = {
            "deal": (self.deal_add, self.deal_update),
            "contact": (self.contact_add, self.contact_update),
            "company": (self.company_add, self.company_update)}[entity]
        with self.lock:
            if spec.get("id") is None:
                return add({"fields": spec.get("fields")})
            update({"id": spec["id"], "fields": spec.get("fields")})
            return php_intval(spec["id"])


def make_product_row(row_id, deal_id, index, item):
    """A stored product row in crm.deal.productrows.get's shape (prices as numbers)."""
    price = php_floatval(item.get("PRICE", 0))
    quantity = php_floatval(item.get("QUANTITY", 1))

    def num(d):
        return int(d) if d == d.to_integral_value() else float(d)

    name = to_str(item.get("PRODUCT_NAME"))
    name = name if isinstance(name, str) and name else "[%d]" % row_id
    tax = item.get("TAX_RATE")
    kind = php_intval(item.get("DISCOUNT_TYPE_ID", 2)) or 2
    discount_sum = php_floatval(item.get("DISCOUNT_SUM", 0))
    # crm-deal-productrows-set.md: PRICE is the final price per unit; PRICE_EXCLUSIVE the
    # price with the discount, without tax; PRICE_NETTO the price before the discount,
    # without tax. With no tax here, NETTO = PRICE + the absolute discount per unit.
    netto = price + discount_sum if kind == 1 else price
    return {
        "ID": str(row_id), "OWNER_ID": str(deal_id), "OWNER_TYPE": "D",
        "PRODUCT_ID": php_intval(item.get("PRODUCT_ID", 0)), "PRODUCT_NAME": name,
        "ORIGINAL_PRODUCT_NAME": name, "PRODUCT_DESCRIPTION": None,
        "PRICE": num(price), "PRICE_EXCLUSIVE": num(price), "PRICE_NETTO": num(netto),
        "PRICE_BRUTTO": num(netto), "PRICE_ACCOUNT": money(price), "QUANTITY": num(quantity),
        "DISCOUNT_TYPE_ID": kind,
        "DISCOUNT_RATE": num(php_floatval(item.get("DISCOUNT_RATE", 0)) if kind == 2 or not
                             netto else (discount_sum / netto * 100).quantize(Decimal("0.01"))),
        "DISCOUNT_SUM": num(discount_sum),
        "TAX_RATE": None if tax in (None, "") else num(php_floatval(tax)),
        "TAX_INCLUDED": "Y" if to_str(item.get("TAX_INCLUDED")) == "Y" else "N",
        "CUSTOMIZED": "Y", "MEASURE_CODE": php_intval(item.get("MEASURE_CODE", 796)) or 796,
        "MEASURE_NAME": to_str(item.get("MEASURE_NAME")) if isinstance(
            to_str(item.get("MEASURE_NAME")), str) else "pcs",
        "SORT": php_intval(item.get("SORT", 10 * (index + 1))), "XML_ID": None, "TYPE": 1,
        "STORE_ID": None}


# --- batch references (CRestUtil::processBatchElement) --------------------------------------

# The portal builds its pattern from the keys of the batch's result map (CRestUtil::
# processBatchStructure: implode('|', array_keys($arResult)); CRestProvider::methodsBatch
# creates them as result, next, total, time, error): "/\$(result|next|total|time|error)
# ([^\s]*)/i". So the NAMES are $result, $next, $total, $time, $error, matched in any
# letter case, but looked up case-sensitively ($arResult['RESULT'] does not exist: the
# value becomes null). "$result_error[c]" is "$result" followed by the path "_error[c]",
# i.e. the RESULT of c, not its error. Every [key] in the path counts, wherever it stands.
BATCH_REF_RE = re.compile(r"\$(result|next|total|time|error)([^\s]*)", re.IGNORECASE)
BATCH_PATH_RE = re.compile(r"\[([^\]]+)\]")
PHP_INT_KEY_RE = re.compile(r"0|-?[1-9][0-9]{0,17}")  # keys PHP stores as integers


def _php_isset_step(node, key):
    """isset($node[$key]) and, when set, $node[$key]; (False, None) otherwise."""
    if isinstance(node, dict):
        value = node.get(key)
        return (value is not None), value
    if isinstance(node, list):
        if PHP_INT_KEY_RE.fullmatch(key) and 0 <= int(key) < len(node) \
                and node[int(key)] is not None:
            return True, node[int(key)]
        return False, None
    if isinstance(node, str) and PHP_INT_KEY_RE.fullmatch(key):
        index = int(key)  # isset("abc"[1]): a string offset, one character
        if -len(node) <= index < len(node):
            return True, node[index]
    return False, None


def resolve_batch_ref(value, sections):
    """Substitute $result[key][FIELD]... (and $next/$total/$time/$error) in one value.

    As CRestUtil::processBatchElement does it: the path is walked while each key isset();
    at the first missing key the walk stops and KEEPS what it reached, so a reference to a
    failed command yields the whole result map so far (an id parameter then reads it as
    (int) array = 1, see php_intval). A value that is exactly one reference becomes the
    referenced value itself (an int, or even an array); inside a longer string a number or
    string is substituted and anything else left as written. No error is ever raised."""
    if not isinstance(value, str):
        return value
    query = value
    for match in BATCH_REF_RE.finditer(value):
        keys = BATCH_PATH_RE.findall(match.group(2))
        if not keys:
            continue
        node = sections.get(match.group(1))  # PHP looks the name up case-sensitively
        for key in keys:
            found, child = _php_isset_step(node, key)
            if not found:
                break
            node = child
        if match.group(0) == query:
            query = node
        elif isinstance(query, str):
            if isinstance(node, (int, float)) and not isinstance(node, bool):
                node = str(node)  # is_numeric() then (string)
            if isinstance(node, str):
                query = query.replace(match.group(0), node)
    return query


def resolve_batch_refs(params, sections):
    if isinstance(params, dict):
        return {k: resolve_batch_refs(v, sections) for k, v in params.items()}
    if isinstance(params, list):
        return [resolve_batch_refs(v, sections) for v in params]
    return resolve_batch_ref(params, sections)


# --- list helpers: filter, order, select -----------------------------------------------------

def _scalar_for_compare(value, field):
    if value is None or value == "" or value is _NOT_SCALAR or isinstance(value, (dict, list)):
        return None
    if field in DATE_FIELDS:
        return parse_date(value) if isinstance(value, str) else None
    if field in NUMERIC_FIELDS:
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return None
    return str(value).casefold()  # MySQL's *_ci collations


def _like(pattern, text):
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


def match_filter(record, key, wanted):
    """One filter entry of crm.*.list: prefix operator + field name; arrays mean IN.
    Dates compare as points in time, whatever offset the filter's value is written with
    (the portal turns the value into a DateTime before the SQL compares it), never as text:
    "2026-03-13T08:00:00Z" is later than "2026-03-13T10:00:00+03:00"."""
    op, field = "", str(key)
    for candidate in FILTER_OPS:
        if field.startswith(candidate):
            op, field = candidate, field[len(candidate):]
            break
    field = field.upper()
    if field in MULTI_FIELDS:
        values = [item["VALUE"] for item in record.get(field, [])] or [None]
    else:
        values = [record.get(field)]
    wanted_list = as_items(wanted) if isinstance(wanted, (list, dict)) else [wanted]
    wanted_list = wanted_list or [None]

    def equal(have, want):
        want = to_str(want)
        if want is _NOT_SCALAR:
            return False
        return _scalar_for_compare(have, field) == _scalar_for_compare(want, field)

    if op in ("", "=", "@"):
        return any(equal(v, w) for v in values for w in wanted_list)
    if op in ("!", "!=", "!@"):
        return not any(equal(v, w) for v in values for w in wanted_list)
    if op in (">", ">=", "<", "<="):
        want = _scalar_for_compare(to_str(wanted_list[0]), field)
        for v in values:
            have = _scalar_for_compare(v, field)
            if have is None or want is None or type(have) is not type(want):
                continue
            if (op == ">" and have > want) or (op == ">=" and have >= want) or \
                    (op == "<" and have < want) or (op == "<=" and have <= want):
                return True
        return False
    text = to_str(wanted_list[0])
    text = text if isinstance(text, str) else ""
    if op == "%":
        return any(v is not None and text.casefold() in str(v).casefold() for v in values)
    return any(v is not None and _like(text, str(v)) for v in values)  # "=%", "%="


def sort_key(value, field):
    """Order with NULLs first, numbers and dates by value, text case-insensitively."""
    v = _scalar_for_compare(value, field)
    if v is None:
        return (0, "")
    if isinstance(v, datetime.datetime):
        return (1, v.timestamp())
    return (1, v)


def select_names(select, scalar_fields, uf_names):
    """Field names a list row carries. Default (no select) is "*" + "UF_*"; "*" is the
    scalar fields; PHONE/EMAIL appear only when named; ID is always there."""
    items = as_items(select) if isinstance(select, (list, dict)) else (
        [select] if isinstance(select, str) and select else [])
    items = [str(s).upper() for s in items if to_str(s) not in (None, _NOT_SCALAR)] or \
        ["*", "UF_*"]
    names = ["ID"]
    for item in items:
        if item == "*":
            add = [f for f in scalar_fields]
        elif item == "UF_*":
            add = sorted(uf_names)
        elif item in scalar_fields or item in MULTI_FIELDS or item.startswith("UF_"):
            add = [item]
        else:
            add = []
        names.extend(n for n in add if n not in names)
    return names


def project(record, names):
    out = {}
    for name in names:
        if name in MULTI_FIELDS:
            if record.get(name):
                out[name] = copy.deepcopy(record[name])
        else:
            out[name] = copy.deepcopy(record.get(name))
    return out


# --- outgoing webhooks -------------------------------------------------------------------------

class EventSender:
    """ONCRMDEALADD/ONCRMDEALUPDATE to the registered handler, as Bitrix24's queue server
    posts them: form-encoded, in order, one attempt each, no retry, failures only logged.

    POST /_emu/event-fault {"lose": N} loses the next N events emitted: they are never
    posted, only counted ("lost") and logged, as a delivery that failed on the way is
    (b24restdocs api-reference/events/index.md: "If your server does not respond or
    returns an error, the Bitrix24 queue server will log the failure but will not resend
    the event"; local-webhooks.md says the same of outgoing webhooks). Counted at emit
    time, so "the next N" are the next N changes, whatever is still queued."""

    def __init__(self, emu):
        self.emu = emu
        self.queue = queue.Queue(maxsize=EVENT_QUEUE_LEN)
        self.counts = {"sent": 0, "failed": 0, "dropped": 0, "lost": 0}
        self.lose_next = 0
        self.history = collections.deque(maxlen=200)
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.thread = threading.Thread(target=self._run, name="events", daemon=True)
        self.thread.start()

    def clear(self):
        self.counts = {"sent": 0, "failed": 0, "dropped": 0, "lost": 0}
        self.lose_next = 0
        self.history.clear()
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass

    def stats(self):
        out = dict(self.counts)
        out["pending"] = self.queue.qsize()
        out["history"] = list(self.history)
        return out

    def set_fault(self, spec):
        """POST /_emu/event-fault {"lose": N}: the next N events are lost (0 = none)."""
        lose = spec.get("lose") if isinstance(spec, dict) else None
        if isinstance(lose, bool) or not isinstance(lose, int) or not 0 <= lose <= 10 ** 6:
            raise ValueError('body must be {"lose": N}, N from 0 to 1000000')
        with self.emu.lock:
            self.lose_next = lose

    def emit(self, event, deal_id):
        """Queue an event for the current target (caller holds the emulator lock)."""
        target = self.emu.event_target
        if target is None:
            return
        if self.lose_next > 0:
            self.lose_next -= 1
            self.counts["lost"] += 1
            self.history.append({"event": event, "id": deal_id, "status": None,
                                 "error": "lost (event-fault)"})
            log("event %s deal=%d -> lost (event-fault), not resent" % (event, deal_id))
            return
        try:
            self.queue.put_nowait((event, deal_id, dict(target)))
        except queue.Full:
            self.counts["dropped"] += 1

    def _run(self):
        while True:
            event, deal_id, target = self.queue.get()
            emu = self.emu
            form = [
                ("event", event), ("event_handler_id", str(target["handler_id"])),
                ("data[FIELDS][ID]", str(deal_id)), ("ts", str(int(emu.now()))),
                ("auth[domain]", emu.domain),
                ("auth[client_endpoint]", "https://%s/rest/" % emu.domain),
                ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"),
                ("auth[member_id]", hashlib.md5(emu.domain.encode()).hexdigest()),
                ("auth[application_token]", target["application_token"])]
            request = urllib.request.Request(
                target["url"], data=urllib.parse.urlencode(form).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "User-Agent": "Bitrix24 Webhook Engine"}, method="POST")
            status, error = None, None
            try:
                with self.opener.open(request, timeout=EVENT_TIMEOUT_S) as response:
                    status = response.status
                    response.read(65536)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception as exc:  # best effort: the queue server only logs failures
                error = str(exc)[:200]
            ok = status is not None and 200 <= status < 300
            with emu.lock:
                self.counts["sent" if ok else "failed"] += 1
                self.history.append({"event": event, "id": deal_id, "status": status,
                                     "error": error})
            log("event %s deal=%d -> %s" % (event, deal_id, status or error))


# --- HTTP ---------------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request never blocks shutdown
    request_queue_size = 64

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the connection cap: close at once
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection gives its thread back after this

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_PUT(self):
        self._route()

    def do_DELETE(self):
        self._route()

    def version_string(self):
        return self.server_version  # "Server: nginx", like a cloud portal

    def log_request(self, code="-", size="-"):
        pass  # _route logs one line per request itself

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    # --- plumbing -------------------------------------------------------------------------

    def _route(self):
        self._status = None  # HTTP status actually sent; None = no answer
        self._note = ""
        started = time.time()
        url = urllib.parse.urlsplit(self.path)
        shown = re.sub(r"^(/rest/[^/]*/)[^/]+/", r"\1***/", url.path)  # never log the code
        try:
            if url.path.startswith("/_emu/"):
                self._control(url.path)
            elif url.path.startswith("/rest/"):
                self._rest(url, started)
            else:
                if self._read_body() is not None:
                    self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>",
                               "text/html; charset=utf-8")
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            self._note = "client went away"
        except Exception as exc:  # never let one bad request take a thread down silently
            self.close_connection = True
            self._note = "emulator bug: %r" % exc
            if self._status is None:
                self._send_json(500, {"error": "INTERNAL_SERVER_ERROR",
                                      "error_description": "Internal server error"}, close=True)
        self.log_message("%s %s -> %s %.1fms %s", self.command, shown, self._status or "-",
                         (time.time() - started) * 1000, self._note)

    def _send(self, status, data, content_type, close=False):
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status, obj, close=False):
        self._send(status, php_json(obj).encode("ascii"), "application/json; charset=utf-8",
                   close)

    def _read_body(self):
        """The request body (b"" when there is none), or None after refusing or losing it."""
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if length is None and not chunked:
            return b""
        if chunked:
            return self._read_chunked()
        refusal = None
        if not (length.isdigit() and length.isascii()):
            refusal = (400, "Content-Length is not a number")
        elif int(length) > self.server.max_body:
            refusal = (413, "Request body is larger than %d bytes" % self.server.max_body)
        if refusal:
            self._refuse_body(*refusal)
            return None
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            self.close_connection = True
            self._note = "body cut short"
            return None
        return body

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self._refuse_body(400, "Bad chunked encoding")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > self.server.max_body:
                self._refuse_body(413, "Request body is larger than %d bytes"
                                  % self.server.max_body)
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _refuse_body(self, status, text):
        # An unread body makes the connection unusable, so it is closed.
        self._send_json(status, {"error": "INVALID_REQUEST", "error_description": text},
                        close=True)

    def _close_abruptly(self, rst):
        """Drop the connection without an answer; with rst, as a TCP reset (SO_LINGER 0)."""
        self.close_connection = True
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()  # the real close happens when rfile is closed in finish()

    # --- /_emu control endpoints -------------------------------------------------------------

    def _control(self, path):
        emu = self.server.emu
        body = self._read_body()
        if body is None:
            return
        route = (self.command, path)
        try:
            spec = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError, RecursionError):
            self._send_json(400, {"ok": False, "error": "body is not valid JSON"})
            return
        try:
            if route == ("GET", "/_emu/health"):
                self._send_json(200, {"ok": True})
            elif route == ("GET", "/_emu/state"):
                self._send_json(200, emu.snapshot())
            elif route == ("GET", "/_emu/config"):
                with emu.lock:
                    self._send_json(200, emu.config())
            elif route == ("POST", "/_emu/reset"):
                emu.reset()
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/config"):
                self._send_json(200, {"ok": True, "config": emu.configure(spec)})
            elif route == ("POST", "/_emu/fault"):
                emu.set_fault(spec)
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/event-target"):
                emu.set_event_target(spec)
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/event-fault"):
                emu.events.set_fault(spec)
                self._send_json(200, {"ok": True})
            elif route == ("POST", "/_emu/clock"):
                emu.set_clock(spec)
                self._send_json(200, {"ok": True, "now": emu.now()})
            elif self.command == "POST" and path in ("/_emu/deal", "/_emu/contact",
                                                     "/_emu/company"):
                new_id = emu.manager_write(path[len("/_emu/"):], spec)
                self._send_json(200, {"ok": True, "id": new_id})
            else:
                self._send_json(404, {"ok": False, "error": "unknown control endpoint"})
        except ValueError as exc:
            self._send_json(400, {"ok": False, "error": str(exc)})
        except RestError as exc:
            self._send_json(exc.status, exc.body())

    # --- /rest: the incoming webhook ----------------------------------------------------------

    def _rest(self, url, started):
        emu = self.server.emu
        emu.count_request()
        parts = [urllib.parse.unquote(p) for p in url.path[len("/rest/"):].split("/")]
        while parts and parts[-1] == "":
            parts.pop()
        user_id = code = None
        if len(parts) == 3:
            user_id, code, method = parts
        elif len(parts) == 1:
            method = parts[0]
        else:
            method = ""
        method = re.sub(r"\.json$", "", method, flags=re.IGNORECASE).lower()
        self._note = method
        body = self._read_body()
        if body is None:
            return
        fault = emu.take_fault(method)
        if fault:
            self._note += " fault " + fault[0]
            if self._apply_fault(*fault):
                return
        try:
            payload = self._rest_call(url, method, user_id, code, body, started)
            status = 200
        except RestError as exc:
            payload, status = exc.body(), exc.status
            self._note += " %d %s" % (status, exc.code or repr(exc.description[:60]))
        if fault and fault[0] == "lost":
            self._close_abruptly(rst=False)  # applied, but the answer never arrives
        else:
            self._send_json(status, payload)

    def _apply_fault(self, mode, generation, delay_s):
        """Carry out a fault. True when the request is finished, False to go on normally."""
        if mode == "lost":
            return False
        if mode == "slow":
            # The request is answered normally, only late: a cloud portal may take up to
            # 60 s on one REST request before it interrupts it (b24restdocs limits.md,
            # "request duration"), and every answer reports its cost in time.duration
            # (api-reference/data-types.md#time; a recorded answer shows 0.945 s). Harsher
            # choice: nothing is applied before the delay, so a client that gives up early
            # learns nothing about the outcome.
            time.sleep(delay_s)
            return False
        if mode == "error503":
            self._send(503, HTML_503, "text/html")
        elif mode == "error500":
            self._send_json(500, {"error": "INTERNAL_SERVER_ERROR",
                                  "error_description": "Internal server error"})
        elif mode == "query_limit":
            self._send_json(503, {"error": "QUERY_LIMIT_EXCEEDED",
                                  "error_description": "Too many requests"})
        elif mode == "expired_token":
            self._send_json(401, {"error": "expired_token",
                                  "error_description": "The access token provided has expired."})
        elif mode == "reset":
            self._close_abruptly(rst=True)
        elif mode == "hang":
            self.server.emu.wait_hang(generation)
            self._close_abruptly(rst=False)
        return True

    def _rest_call(self, url, method, user_id, code, body, started):
        """Authenticate, admit against the leaky bucket, parse, then run."""
        emu = self.server.emu
        if user_id is None:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if not emu.auth_ok(user_id, code):
            raise RestError(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        if not emu.admit():
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        params = php_parse_str(url.query, emu.max_input_vars,
                               on_truncate=emu.count_truncation) if url.query else {}
        if self.command == "POST":  # a GET's body is ignored, as by PHP
            params.update(self._body_params(body))
        if method == "batch":
            return emu.batch(params, started)
        return emu.call(method, params, started)

    def _body_params(self, body):
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not body.strip():
            return {}
        if content_type == "application/json":
            try:
                params = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise RestError(400, "INVALID_REQUEST", "Request body is not valid JSON") \
                    from None
            if not isinstance(params, dict):
                raise RestError(400, "INVALID_REQUEST", "Request body must be a JSON object")
            return params
        if content_type in ("", "application/x-www-form-urlencoded"):
            try:
                emu = self.server.emu
                return php_parse_str(body.decode("utf-8"), emu.max_input_vars, post=True,
                                     on_truncate=emu.count_truncation)
            except UnicodeDecodeError:
                raise RestError(400, "INVALID_REQUEST", "Request body is not UTF-8") from None
        if content_type == "multipart/form-data":
            raise RestError(400, "INVALID_REQUEST",
                            "multipart/form-data is not supported by the emulator")
        return {}  # PHP fills $_POST only for the two form types


def main(argv=None):
    parser = argparse.ArgumentParser(description="Bitrix24 portal emulator for orderbridge tests")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--user-id", type=int, required=True, help="webhook owner's user id")
    parser.add_argument("--code-file", required=True, help="file holding the webhook code")
    parser.add_argument("--rate", type=float, default=2.0, help="leaky bucket drain per second")
    parser.add_argument("--burst", type=float, default=50.0, help="leaky bucket capacity")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--application-token-file",
                        help="outgoing-webhook token used when /_emu/event-target names none")
    parser.add_argument("--domain", default="orderbridge-test.bitrix24.ru",
                        help="portal domain sent in events")
    parser.add_argument("--max-body", type=int, default=MAX_BODY_DEFAULT)
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("--host must be a 127.x.x.x loopback address")
    if args.burst < 1 or args.rate < 0:
        parser.error("--burst must be >= 1 and --rate >= 0")
    with open(args.code_file, encoding="utf-8") as f:
        code = f.read().strip()
    if not code:
        parser.error("the webhook code file is empty")
    app_token = ""
    if args.application_token_file:
        with open(args.application_token_file, encoding="utf-8") as f:
            app_token = f.read().strip()

    server = Server((args.host, args.port), Handler)
    server.emu = Emulator(args.user_id, code, args.rate, args.burst, args.domain, app_token)
    server.max_body = args.max_body
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    log("listening on %s:%d user=%d rate=%g burst=%g"
        % (args.host, port, args.user_id, args.rate, args.burst))

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    while not stop.wait(0.5):
        pass
    server.emu.stop()  # wake requests held by a "hang" fault
    server.shutdown()
    server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
