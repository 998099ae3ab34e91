/*
 * One Bitrix24 deal as the Bitrix24 source reads it (crm.deal.list rows): which deals came
 * from the site (ORIGINATOR_ID is our [site] id and ORIGIN_ID the order), and, for every
 * other deal (a call, a chat, a manager's deal), the order snapshot that carries it to
 * Roistat as "b24-deal-<ID>" (snapshot.h), and whether it says anything new. Pure: no
 * I/O, so each rule is unit-tested on its own.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "model/snapshot.h"

/* The longest deal id taken: 18 digits always fit an int64. */
#define B24_DEAL_ID_MAX 18

/* Whether `s` is a deal id: 1..18 digits, no leading zero. */
bool b24_deal_id_valid(const char *s);

/* The fields the source asks crm.deal.list for; `roistat_field` ("" = none) is added. */
json_t *b24_deal_select(const char *roistat_field);

/* What decides where a deal goes; the strings are borrowed from the deal's JSON. */
struct b24_deal {
        char id[B24_DEAL_ID_MAX + 1];
        const char *originator_id; /* NULL when empty */
        const char *origin_id;     /* NULL when empty */
        const char *stage;         /* STAGE_ID, NULL when absent */
        const char *date_modify;   /* as the portal wrote it */
        int64_t modified;          /* DATE_MODIFY, Unix seconds */
};

/* Reads one deal row: 0, or -EINVAL with `err` naming the deal's field (ID, DATE_MODIFY)
 * when the row cannot even be placed. */
int b24_deal_read(json_t *deal, struct b24_deal *ret, struct snapshot_error *err);

/* Whether the deal is the deal of a site order: ORIGINATOR_ID = `site_id`, ORIGIN_ID set. */
bool b24_deal_from_site(const struct b24_deal *d, const char *site_id);

/* The snapshot of a deal that did not come from the site, at `version`: {"site", "order":
 * {"id": "b24-deal-<ID>", "status": STAGE_ID, "canceled": semantics F, "paid": semantics
 * S, "created_at": DATE_CREATE, "updated_at": DATE_MODIFY, "price": OPPORTUNITY,
 * "currency": CURRENCY_ID, "roistat_visit": the roistat field when it is digits, "deal":
 * {"id", "title"}, "version", "items": []}}, parsed as the ingest parses. 0 and *ret, or
 * -EINVAL with `err` naming the snapshot's field and its message saying the deal's. */
int b24_deal_snapshot(json_t *deal, const char *site_id, const char *roistat_field, int64_t version,
                      struct snapshot **ret, struct snapshot_error *err);

enum b24_deal_change {
        B24_DEAL_NEW,     /* nothing stored for it yet */
        B24_DEAL_CHANGED, /* it differs from the stored snapshot */
        B24_DEAL_SAME,    /* equal to the stored snapshot but for its version: nothing to send */
        B24_DEAL_OLDER,   /* the stored snapshot was modified later: a stale read */
};

/* "new", "changed", "same", "older": for log lines. */
const char *b24_deal_change_name(enum b24_deal_change c);

/* Compares a deal's snapshot (any version) with the stored one (its canonical JSON, NULL
 * when none). For NEW and CHANGED, *ret_version is the version to send: DATE_MODIFY in
 * ms, or the stored version + 1 when that is not more (two changes in one second stay
 * in order). A stored text that does not parse counts as CHANGED. */
enum b24_deal_change b24_deal_compare(const struct snapshot *incoming, const char *stored_json,
                                      int64_t *ret_version);
