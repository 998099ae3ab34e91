/*
 * The way back from a Bitrix24 deal stage to a site order's state, for the site sink:
 * [site.map] (STAGE = STATUS or STAGE = @canceled) first, else the inverse of
 * [bitrix24.map]. The inverse is ambiguous where two status codes share a stage; `check`
 * and `serve` refuse such a configuration until [site.map] names the stage. A stage that
 * @canceled maps to means "cancel the order", whatever status codes share it (LOSE is the
 * stage of both C and @canceled).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Links the site sink keeps per order (store links): what the CRM asked the site to
 * become (site_sync.c writes it), and the deal id the site has confirmed it holds. */
#define SITE_WANT_LINK "site.want"
#define SITE_DEAL_LINK "site.deal"

struct site_state {
        bool cancel;     /* cancel the order */
        char status[17]; /* else: this status code */
};

struct snapshot;

/* The time of the site's latest change, by the site's clock: the snapshot's updated_at,
 * or, without one, when orderbridge received it (`received_ms`). Unix seconds. */
int64_t site_change_time(const struct snapshot *s, int64_t received_ms);

/* Whether the snapshot shows state `st` already. */
bool site_state_shown(const struct site_state *st, const struct snapshot *s);

/* The site state for deal stage `stage` (a full stage id, "C1:WON" outside the default
 * pipeline). 0; -ENOENT when nothing maps it (another pipeline's stage, or a stage no
 * status reaches); -ENOTUNIQ when two status codes share it and [site.map] is silent. */
int site_map_state(const struct config *cfg, const char *stage, struct site_state *ret);

/* Whether every stage of [bitrix24.map] leads back to one site state: 0, or -ENOTUNIQ
 * with the first ambiguous stage and what fixes it in `why`. */
int site_map_check(const struct config *cfg, char *why, size_t size);
