/*
 * Reconcile: do Roistat and Bitrix24 hold what orderbridge delivered? Order by order, for
 * the orders changed in the store since a time and delivered to a sink (pending or
 * retrying ones are "not yet delivered", listed apart), the remote is read back and
 * compared with what the sink sends for the order's latest snapshot — the sinks' own
 * builders (roistat_order_json, b24_deal_owned_fields, b24_deal_rows) say what that is:
 *   Roistat (order/list): present, status id, revenue to the kopeck, visit;
 *   Bitrix24 (the site's deals by ORIGIN_ID): present, one deal only (a second is reported,
 *   never merged), stage, OPPORTUNITY and CURRENCY_ID, the Roistat field, the product rows
 *   (name, price, quantity), and the contact against the store's b24.contact link.
 * A light run (the daemon's schedule) looks at presence, status or stage and amount only.
 *
 * Repair asks the sink to deliver the order again (store_request), with what the Bitrix24
 * sink needs to forget (b24_repair_writes) so that it re-sends rather than trust what it
 * remembers sending; the daemon's dispatcher then makes the remote match the store. A
 * duplicate deal, and a contact a manager may have chosen, are left to a person.
 *
 * Nothing here logs or prints: the CLI and the daemon say what a run found.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "queue/reconcile_compare.h"
#include "store/store.h"

struct reconcile_opts {
        int64_t since_ms;        /* orders changed in the store after this */
        bool light;              /* presence, status/stage, amount only */
        const atomic_bool *stop; /* may be NULL: set from another thread to cut a run short */
        /* May be NULL: called after each page of the store is read (`read` so far). */
        void (*progress)(void *arg, size_t read);
        void *progress_arg;
};

/* The readers of the enabled remotes (Roistat's keeps order/list's per-minute limit
 * across runs). -EINVAL when neither Roistat nor Bitrix24 is enabled, -ENOMEM. */
struct reconcile;
int reconcile_new(const struct config *cfg, struct reconcile **ret);
struct reconcile *reconcile_free(struct reconcile *rc);

/* One run. Returns 0 with `ret` filled (report->remote_error says whether a remote could
 * not be read, and which part is then unknown), -EIO when the store failed, -ECANCELED
 * when stopped (both with what was found so far in `ret`). Clear `ret` afterwards. */
int reconcile_run(struct reconcile *rc, struct store *st, const struct reconcile_opts *o,
                  struct reconcile_report *ret);

/* What the repair of one order at one sink came to. */
enum reconcile_repair_kind {
        RECONCILE_REQUESTED, /* store_request done: the dispatcher delivers it again */
        RECONCILE_MERGE,     /* duplicate deals: merge by hand, nothing requested */
        RECONCILE_LEFT,      /* only what is not orderbridge's (the contact): nothing to do */
        RECONCILE_FAILED,    /* store_request failed (`r` in the callback) */
};

/* Repairs the report's drift: one store_request per (order, sink), each told to `cb`.
 * Returns how many were requested, or -EIO when a request failed (the others are still
 * tried). */
int reconcile_repair(struct store *st, const struct reconcile_report *r, int64_t now_ms,
                     void (*cb)(void *arg, const char *order_id, const char *sink,
                                enum reconcile_repair_kind kind, int err),
                     void *arg);
