#!/usr/bin/env python3
"""Rewrites the sinks' configuration accesses for issue #8, where each sink's settings
moved out of struct config into the sink's own struct (struct roistat_conf in
src/sinks/roistat_conf.h, struct b24_conf in src/sinks/bitrix24_conf.h).

Usage: rename-sink-config.py [--check] FILE...
  (with no FILE: src/sinks/sink_roistat.c src/sinks/sink_bitrix24.c src/sinks/b24_client.c)

What it rewrites, and nothing else (C comments and string literals included, so a
comment that names a field follows it):

 1. A field access through an expression that ends in the identifier `cfg`:
        cfg->roistat_batch_size       ->  conf->batch_size
        r->cfg->n_roistat_statuses    ->  r->conf->n_statuses
        b->cfg->b24_country_code      ->  b->conf->country_code
    i.e. the `cfg` before `->OLD_FIELD` becomes `conf` and the field takes its new name
    (FIELDS below). Accesses to the core fields (cfg->site_id, r->cfg->visit_wait_max,
    cfg->path, ...) are left alone: they stay in struct config.
 2. The helpers that moved, with their first argument's `cfg` made `conf` the same way:
        config_roistat_status(X cfg, ...)  ->  roistat_conf_status(X conf, ...)
        config_b24_stage(X cfg, ...)       ->  b24_conf_stage(X conf, ...)
 3. Calls of the functions whose first parameter is now the sink's own struct:
        roistat_order_json(X cfg, ...)  roistat_statuses_json(X cfg)  b24_client_new(X cfg)
    get `conf` for that `cfg`.
 4. The type `struct map_entry` becomes `struct status_map_entry` (src/model/statusmap.h).

The result compiles where a `conf` is in scope: the ctx structs carry a `conf` member set
in the constructors, and a function that reads the settings through a bare `cfg` has a
`const struct roistat_conf *conf` (or b24_conf) local or parameter. Those few lines are
hand-made plumbing, not this script's. Running the script twice changes nothing the
second time. Afterwards it lists every old field name still present in a form it does
not rewrite (say `c->roistat_rate`), so nothing is missed silently; --check rewrites
nothing and exits 1 when anything is left to rewrite or to look at.
"""
import argparse
import re
import sys

DEFAULT_FILES = ["src/sinks/sink_roistat.c", "src/sinks/sink_bitrix24.c",
                 "src/sinks/b24_client.c"]

# old member of struct config -> member of the sink's struct
FIELDS = {
    # struct roistat_conf
    "roistat_enabled": "enabled",
    "roistat_url": "url",
    "roistat_project": "project",
    "roistat_api_key_file": "api_key_file",
    "roistat_api_key": "api_key",
    "roistat_batch_size": "batch_size",
    "roistat_timeout_ms": "timeout_ms",
    "roistat_rate": "rate",
    "roistat_canceled_zero": "canceled_price_zero",
    "roistat_statuses": "statuses",
    "n_roistat_statuses": "n_statuses",
    "roistat_map": "map",
    # struct b24_conf
    "b24_enabled": "enabled",
    "b24_webhook_url_file": "webhook_url_file",
    "b24_webhook_url": "webhook_url",
    "b24_category_id": "category_id",
    "b24_roistat_field": "roistat_field",
    "b24_rate": "rate",
    "b24_burst": "burst",
    "b24_timeout_ms": "timeout_ms",
    "b24_orders_per_batch": "orders_per_batch",
    "b24_deal_title_prefix": "deal_title_prefix",
    "b24_country_code": "country_code",
    "b24_map": "map",
}

# helpers that moved: old name -> new name (their first argument becomes the sink's conf)
RENAMED_CALLS = {
    "config_roistat_status": "roistat_conf_status",
    "config_b24_stage": "b24_conf_stage",
}

# functions that now take the sink's conf as their first argument
CONF_FIRST_CALLS = ["roistat_order_json", "roistat_statuses_json", "b24_client_new"]

TYPES = {"struct map_entry": "struct status_map_entry"}

# `cfg`, alone or at the end of a member chain (r->cfg, o->b->cfg, x.cfg)
CFG_BASE = r"(?P<base>(?:\b\w+\s*(?:->|\.)\s*)*)\bcfg"

FIELD_RE = re.compile(CFG_BASE + r"\s*->\s*(?P<field>" +
                      "|".join(sorted(FIELDS, key=len, reverse=True)) + r")\b")
RENAMED_RE = re.compile(r"\b(?P<fn>" + "|".join(RENAMED_CALLS) + r")\s*\(\s*" + CFG_BASE +
                        r"\b")
CONF_FIRST_RE = re.compile(r"\b(?P<fn>" + "|".join(CONF_FIRST_CALLS) + r")\s*\(\s*" +
                           CFG_BASE + r"\b(?!\s*->)")
TYPE_RE = re.compile(r"\b(" + "|".join(re.escape(t) for t in TYPES) + r")\b")
# what is left: an old field name after -> or ., or an old helper's name
LEFT_RE = re.compile(r"(?:->|\.)\s*(" + "|".join(FIELDS) + r")\b|\b(" +
                     "|".join(RENAMED_CALLS) + r")\b")


def rewrite(text):
    text = FIELD_RE.sub(lambda m: m.group("base") + "conf->" + FIELDS[m.group("field")], text)
    text = RENAMED_RE.sub(lambda m: RENAMED_CALLS[m.group("fn")] + "(" + m.group("base") +
                          "conf", text)
    text = CONF_FIRST_RE.sub(lambda m: m.group("fn") + "(" + m.group("base") + "conf", text)
    text = TYPE_RE.sub(lambda m: TYPES[m.group(1)], text)
    return text


def leftovers(path, text):
    out = []
    for m in LEFT_RE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append(f"{path}:{line}: {m.group(1) or m.group(2)}: not rewritten (not through "
                   f"`cfg`); change it by hand")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="rewrite nothing; exit 1 if any file would change or has leftovers")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    status = 0
    for path in args.files or DEFAULT_FILES:
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = rewrite(old)
        left = leftovers(path, new)
        for msg in left:
            print(msg, file=sys.stderr)
        if left:
            status = 1
        if new == old:
            continue
        changed = sum(a != b for a, b in zip(old.splitlines(), new.splitlines()))
        if args.check:
            print(f"{path}: {changed} lines to rewrite", file=sys.stderr)
            status = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"{path}: {changed} lines rewritten")
    return status


if __name__ == "__main__":
    sys.exit(main())
