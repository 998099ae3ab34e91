/*
 * Two-way sync's decision (site_sync.h): where a deal stands in the CRM against what the
 * order's latest snapshot says, and which side must move. The stage a snapshot maps to is
 * the Bitrix24 sink's own rule (b24_conf_stage), so "in step" means exactly "where the
 * sink would have put it": orderbridge's own updates never come back as changes.
 */
#include "sinks/site_sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/xalloc.h"
#include "model/snapshot.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/site_map.h"
#include "sinks/sink_bitrix24.h"

const char *site_sync_verdict_name(enum site_sync_verdict v)
{
        static const char *const names[] = {"in_step", "site_follows", "deal_back", "unmapped",
                                            "off", "asked"};

        return (size_t)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

/* Whether the deal's stage is one the Bitrix24 sink would give this snapshot: its
 * status's stage, or, for a paid order when [bitrix24.map] sets @paid, the @paid stage
 * (which of the two depends on the pipeline's SORT, unknown here: either is in step). */
static bool in_step(const struct b24_conf *conf, const struct snapshot *s, const char *stage)
{
        struct b24_order_rules r;
        char want[96];

        /* in the order's own pipeline (a storefront's or person type's, b24_rules.h) */
        b24_rules_resolve(conf, s, &r);
        if (b24_conf_stage_in(conf, r.category_id, NULL, s->status, s->canceled, false, want,
                              sizeof(want)) == 0 &&
            strcmp(want, stage) == 0)
                return true;
        return s->paid && !s->canceled &&
               b24_conf_stage_in(conf, r.category_id, NULL, "", false, true, want,
                                 sizeof(want)) == 0 &&
               strcmp(want, stage) == 0;
}

/* The site sink's instruction: {"status"|"canceled", "stage", "deal_id", "at"}. */
static char *want_json(const struct site_state *st, const struct site_deal_seen *d)
{
        json_t *o = json_pack("{s:s, s:s, s:I}", "stage", d->stage, "deal_id", d->deal_id, "at",
                              (json_int_t)d->modified);
        char *text;

        if (st->cancel)
                json_object_set_new(o, "canceled", json_true());
        else
                json_object_set_new(o, "status", json_string(st->status));
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        if (!text)
                abort();
        return text;
}

static int decide(struct store *st, const struct config *cfg, const struct b24_conf *conf,
                  const struct snapshot *s, int64_t received_ms, const struct site_deal_seen *d,
                  int64_t now_ms, enum site_sync_verdict *ret)
{
        struct site_state want;
        struct store_writes w = {0};
        bool asked;
        char *text;
        int r;

        if (in_step(conf, s, d->stage)) {
                *ret = SITE_SYNC_IN_STEP;
                return 0;
        }
        if (site_map_state(cfg, d->stage, &want) < 0) {
                *ret = SITE_SYNC_UNMAPPED;
                return 0;
        }
        if (site_state_shown(&want, s)) {
                *ret = SITE_SYNC_IN_STEP; /* another stage of the same site state */
                return 0;
        }
        /* each side by its own clock; a tie goes to the site */
        if (d->modified <= site_change_time(s, received_ms)) {
                /* the sink sends only what changed since its last send: forget that, so
                 * the stage goes out again */
                b24_repair_writes(&w, d->order_id, B24_REPAIR_FIELDS);
                r = store_request(st, "bitrix24", d->order_id, &w, now_ms);
                store_writes_clear(&w);
                *ret = SITE_SYNC_DEAL_BACK;
                return r;
        }
        text = want_json(&want, d);
        r = store_request_once(st, "site", d->order_id, SITE_WANT_LINK, text, now_ms, &asked);
        free(text);
        *ret = asked ? SITE_SYNC_SITE_FOLLOWS : SITE_SYNC_ASKED;
        return r;
}

int site_sync_deal_seen(struct store *st, const struct config *cfg, const struct site_deal_seen *d,
                        int64_t now_ms, enum site_sync_verdict *ret)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct snapshot_error err;
        struct snapshot *s = NULL;
        int64_t received = 0;
        char *json = NULL;
        int r;

        if (!conf || !cfg->site_status_url) {
                *ret = SITE_SYNC_OFF;
                return 0;
        }
        if ((r = store_order_snapshot(st, d->order_id, &json, &received)) < 0)
                return r;
        r = snapshot_parse(json, strlen(json), &s, &err);
        free(json);
        if (r < 0)
                return -EIO; /* the store holds only snapshots that parsed */
        r = decide(st, cfg, conf, s, received, d, now_ms, ret);
        snapshot_free(s);
        return r;
}
