/*
 * Reconcile's comparison: what one order must look like in a remote (the sinks' own
 * builders say it), compared with what the remote answered, each difference one drift
 * with both sides' values as an operator reads them. Pure functions over JSON as the
 * remotes answer it; the run that reads the store and the remotes is reconcile.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "model/snapshot.h"
#include "sinks/roistat_conf.h"

/* One difference: the order, the sink, what differs, and each side's value as shown
 * ("-" for none). */
struct reconcile_drift {
        char *order_id;
        const char *sink;  /* "roistat", "bitrix24" */
        const char *field; /* roistat: order, status, revenue, visit; bitrix24: deal,
                            * duplicate, stage, amount, currency, visit, rows, contact */
        char *store, *remote;
        bool by_hand;    /* repair leaves it to a person (duplicate, contact) */
        unsigned repair; /* bitrix24: B24_REPAIR_* bits; roistat: 1 (send again) */
        size_t seq;      /* the order it was found in, for a stable sort */
};

/* An order whose delivery to a sink is not done yet: not drift, listed apart. */
struct reconcile_unsent {
        char *order_id;
        const char *sink;
        char *state; /* the delivery's state ("pending", "retrying", …), "none" without one */
};

struct reconcile_report {
        struct reconcile_drift *drifts;
        size_t n_drifts, cap_drifts;
        struct reconcile_unsent *unsent;
        size_t n_unsent, cap_unsent;
        size_t read;    /* orders read from the store */
        size_t checked; /* of those, compared with at least one remote */
        /* The first remote that could not be read, in its words (its orders are not
         * compared, so their drift is unknown): 0, or -EAGAIN, -EACCES, -EINVAL. */
        int remote_error;
        char remote_errmsg[400];
        /* When the oldest order still unsettled (drift, not yet delivered, or not read
         * because a remote failed) was changed in the store, ms; INT64_MAX for none: the
         * daemon's light runs look again from there. */
        int64_t unsettled_since_ms;
};

/* Adds a drift (copies the texts). */
void reconcile_report_drift(struct reconcile_report *r, const char *order_id, const char *sink,
                            const char *field, const char *store, const char *remote, bool by_hand,
                            unsigned repair);
void reconcile_report_unsent(struct reconcile_report *r, const char *order_id, const char *sink,
                             const char *state);
/* Sorts the drifts by order, then sink, then as found. */
void reconcile_report_sort(struct reconcile_report *r);
void reconcile_report_clear(struct reconcile_report *r);

/* What Roistat must hold for an order: what roistat_order_json sends. */
struct reconcile_roistat_want {
        char *status;
        int64_t revenue_minor;
        char *visit; /* NULL: sent without one */
};

/* 0, or -EINVAL with `why` (no status maps: the sink dead-letters such an order). */
int reconcile_roistat_want(const struct roistat_conf *conf, const struct snapshot *s,
                           struct reconcile_roistat_want *ret, char *why, size_t why_size);
void reconcile_roistat_want_clear(struct reconcile_roistat_want *w);

/* Compares one order with its order/list row (`remote`, NULL when Roistat lacks it). */
void reconcile_compare_roistat(struct reconcile_report *r, const char *order_id,
                               const struct reconcile_roistat_want *want, json_t *remote,
                               bool light);

/* What Bitrix24 must hold for a site order: the sink's builders' output and its links. */
struct reconcile_deal_want {
        json_t *fields;            /* b24_deal_owned_fields */
        json_t *rows;              /* b24_deal_rows; NULL in a light run */
        const char *roistat_field; /* the [bitrix24] roistat_field, "" for none */
        const char *deal;          /* link b24.deal, NULL when none */
        const char *contact;       /* link b24.contact, NULL when none */
};

/* The deal of `deals` (the order's, in ID order) to compare: the linked one when it is
 * among them, else the first; NULL when there is none. */
json_t *reconcile_deal_chosen(json_t *deals, const char *link);

/* Compares one order with its deals (`deals`, NULL or [] when there is none) and the
 * chosen deal's rows (`rows`, NULL in a light run). */
void reconcile_compare_deal(struct reconcile_report *r, const char *order_id,
                            const struct reconcile_deal_want *want, json_t *deals, json_t *rows,
                            bool light);

/* A remote's amount or quantity — a JSON integer, a real, or a decimal text such as
 * "4990.0000" — in units of 10^-scale: 0, -EINVAL (not one, or negative) or -ERANGE (past
 * `max`). A real is read to the nearest unit (Roistat's revenue is a JSON number). */
int reconcile_decimal(json_t *v, unsigned scale, int64_t max, int64_t *ret);
