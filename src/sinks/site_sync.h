/*
 * Two-way sync's one decision. The CRM shows the deal of a site order at some stage (an
 * outgoing webhook or the poll read it): must the site follow, or does the site's own
 * state stand? The rule (README, "Two-way sync"):
 *   - the deal is at the stage the order's latest snapshot maps to ([bitrix24.map]):
 *     nothing to do — this is the echo of orderbridge's own update, or both agree;
 *   - else the later change wins, each side by its own clock: the deal's DATE_MODIFY
 *     against the snapshot's updated_at (when it was received, without one); a tie goes
 *     to the site. The CRM wins: the "site" sink is asked (store_request) to move the
 *     order to the status [site.map] gives that stage. The site wins: the "bitrix24" sink
 *     is asked to put the deal back at the snapshot's stage.
 * A stage with no status in [site.map] changes nothing on the site (logged by the caller).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

struct site_deal_seen {
        const char *order_id; /* the deal's ORIGIN_ID (its ORIGINATOR_ID is our [site] id) */
        const char *deal_id;  /* ID */
        const char *stage;    /* STAGE_ID */
        int64_t modified;     /* DATE_MODIFY, Unix seconds */
};

enum site_sync_verdict {
        SITE_SYNC_IN_STEP,   /* the deal is where the snapshot puts it: nothing to do */
        SITE_SYNC_SITE_FOLLOWS, /* the site sink was asked to move the order */
        SITE_SYNC_DEAL_BACK, /* the site's later state stands: the deal is put back */
        SITE_SYNC_UNMAPPED,  /* the stage has no site status: nothing to do */
        SITE_SYNC_OFF,       /* no site sink in this configuration: nothing to do */
        SITE_SYNC_ASKED,     /* the site was asked this already (pending, sent or refused) */
};

/* "in_step", "site_follows", "deal_back", "unmapped", "off", "asked": for log lines. */
const char *site_sync_verdict_name(enum site_sync_verdict v);

/* Decides and records (one store transaction). 0 and *ret; -ENOENT when the order is
 * unknown to the store; another -errno when the store failed (nothing recorded: a
 * poller must not move its watermark past this deal). */
int site_sync_deal_seen(struct store *s, const struct config *cfg, const struct site_deal_seen *d,
                        int64_t now_ms, enum site_sync_verdict *ret);
