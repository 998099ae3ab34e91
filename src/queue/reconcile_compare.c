/*
 * The comparison. Amounts and quantities are compared as integers (kopecks, thousandths)
 * whatever form the remote gives them in: Roistat answers revenue as a JSON number, the
 * portal OPPORTUNITY as a text ("4990.00") and a row's PRICE and QUANTITY as numbers.
 * A value the remote gives in no readable form is drift too, shown as it came.
 *
 * What is orderbridge's is repaired (Roistat's order; the deal's owned fields and rows);
 * a second deal for one order and the deal's contact are a person's to settle.
 */
#include "queue/reconcile_compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/xalloc.h"
#include "model/money.h"
#include "sinks/sink_bitrix24.h"
#include "sinks/sink_roistat.h"

#define NONE "-"
#define ROW_DRIFTS_MAX 5 /* rows reported one by one per order; the rest as a count */

void reconcile_report_drift(struct reconcile_report *r, const char *order_id, const char *sink,
                            const char *field, const char *store, const char *remote, bool by_hand,
                            unsigned repair)
{
        if (r->n_drifts == r->cap_drifts) {
                r->cap_drifts = r->cap_drifts ? 2 * r->cap_drifts : 16;
                r->drifts = xrealloc(r->drifts, r->cap_drifts * sizeof(*r->drifts));
        }
        r->drifts[r->n_drifts] = (struct reconcile_drift){
            .order_id = xstrdup(order_id),
            .sink = sink,
            .field = field,
            .store = xstrdup(store ? store : NONE),
            .remote = xstrdup(remote ? remote : NONE),
            .by_hand = by_hand,
            .repair = repair,
            .seq = r->n_drifts,
        };
        r->n_drifts++;
}

void reconcile_report_unsent(struct reconcile_report *r, const char *order_id, const char *sink,
                             const char *state)
{
        if (r->n_unsent == r->cap_unsent) {
                r->cap_unsent = r->cap_unsent ? 2 * r->cap_unsent : 16;
                r->unsent = xrealloc(r->unsent, r->cap_unsent * sizeof(*r->unsent));
        }
        r->unsent[r->n_unsent++] = (struct reconcile_unsent){
            .order_id = xstrdup(order_id), .sink = sink, .state = xstrdup(state)};
}

static int by_order(const void *a, const void *b)
{
        const struct reconcile_drift *x = a, *y = b;
        int c = strcmp(x->order_id, y->order_id);

        if (c == 0)
                c = strcmp(x->sink, y->sink);
        return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

void reconcile_report_sort(struct reconcile_report *r)
{
        if (r->n_drifts > 1)
                qsort(r->drifts, r->n_drifts, sizeof(*r->drifts), by_order);
}

void reconcile_report_clear(struct reconcile_report *r)
{
        for (size_t i = 0; i < r->n_drifts; i++) {
                free(r->drifts[i].order_id);
                free(r->drifts[i].store);
                free(r->drifts[i].remote);
        }
        for (size_t i = 0; i < r->n_unsent; i++) {
                free(r->unsent[i].order_id);
                free(r->unsent[i].state);
        }
        free(r->drifts);
        free(r->unsent);
        memset(r, 0, sizeof(*r));
}

int reconcile_decimal(json_t *v, unsigned scale, int64_t max, int64_t *ret)
{
        char text[64];
        size_t len, dot;

        if (json_is_integer(v)) {
                int64_t n = json_integer_value(v), unit = 1;
                for (unsigned i = 0; i < scale; i++)
                        unit *= 10;
                if (n < 0)
                        return -EINVAL;
                if (n > max / unit)
                        return -ERANGE;
                *ret = n * unit;
                return 0;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                /* below 2^53 units a double holds every unit exactly, and printing it with
                 * `scale` decimals rounds to the nearest one */
                if (!isfinite(d) || d < 0)
                        return -EINVAL;
                if (d >= 9007199254740992.0)
                        return -ERANGE;
                snprintf(text, sizeof(text), "%.*f", (int)scale, d);
                return decimal_parse(text, scale, max, ret);
        }
        if (!json_is_string(v) || json_string_length(v) >= sizeof(text))
                return -EINVAL;
        snprintf(text, sizeof(text), "%s", json_string_value(v));
        /* "4990.0000": zeros past `scale` say nothing more */
        len = strlen(text);
        dot = strcspn(text, ".");
        while (dot < len && len > dot + 1 + scale && text[len - 1] == '0')
                text[--len] = '\0';
        if (len == dot + 1)
                text[--len] = '\0';
        return decimal_parse(text, scale, max, ret);
}

/* A remote value as a text to show (a string as it is, a number written out). */
static void shown(json_t *v, char *buf, size_t size)
{
        if (json_is_string(v))
                utf8_copy(json_string_value(v), buf, size);
        else if (json_is_integer(v))
                snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
                snprintf(buf, size, "%.17g", json_real_value(v));
        else if (v && !json_is_null(v))
                snprintf(buf, size, "(%s)", json_is_object(v) ? "object" : "array");
        else
                snprintf(buf, size, NONE);
}

/* An id as a remote gives it (a text or a number); "" for none (null, "", 0). */
static void id_of(json_t *v, char *buf, size_t size)
{
        shown(v, buf, size);
        if (strcmp(buf, NONE) == 0 || strcmp(buf, "0") == 0)
                buf[0] = '\0';
}

/* --- Roistat ----------------------------------------------------------------------------- */

int reconcile_roistat_want(const struct roistat_conf *conf, const struct snapshot *s,
                           struct reconcile_roistat_want *ret, char *why, size_t why_size)
{
        json_t *o = roistat_order_json(conf, s, why, why_size);
        const char *visit;

        if (!o)
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        ret->status = xstrdup(json_string_value(json_object_get(o, "status")));
        /* the sink's own text: "0" for a cancelled order, else money_format's */
        if (decimal_parse(json_string_value(json_object_get(o, "price")), 2, MONEY_MAX_MINOR,
                          &ret->revenue_minor) < 0) {
                snprintf(why, why_size, "the order's price cannot be read back");
                json_decref(o);
                reconcile_roistat_want_clear(ret);
                return -EINVAL;
        }
        visit = json_string_value(json_object_get(o, "roistat"));
        ret->visit = visit ? xstrdup(visit) : NULL;
        json_decref(o);
        return 0;
}

void reconcile_roistat_want_clear(struct reconcile_roistat_want *w)
{
        free(w->status);
        free(w->visit);
        memset(w, 0, sizeof(*w));
}

void reconcile_compare_roistat(struct reconcile_report *r, const char *order_id,
                               const struct reconcile_roistat_want *want, json_t *remote,
                               bool light)
{
        char have[300], wanted[32];
        int64_t revenue;

        if (!remote) {
                reconcile_report_drift(r, order_id, "roistat", "order", "delivered", "missing",
                                       false, 1);
                return;
        }
        shown(json_object_get(json_object_get(remote, "status"), "id"), have, sizeof(have));
        if (strcmp(have, want->status) != 0)
                reconcile_report_drift(r, order_id, "roistat", "status", want->status, have, false,
                                       1);
        money_format(want->revenue_minor, wanted, sizeof(wanted));
        if (reconcile_decimal(json_object_get(remote, "revenue"), 2, MONEY_MAX_MINOR, &revenue) <
            0) {
                shown(json_object_get(remote, "revenue"), have, sizeof(have));
                reconcile_report_drift(r, order_id, "roistat", "revenue", wanted, have, false, 1);
        } else if (revenue != want->revenue_minor) {
                money_format(revenue, have, sizeof(have));
                reconcile_report_drift(r, order_id, "roistat", "revenue", wanted, have, false, 1);
        }
        if (light)
                return;
        id_of(json_object_get(remote, "visit_id"), have, sizeof(have));
        if (strcmp(have, want->visit ? want->visit : "") != 0)
                reconcile_report_drift(r, order_id, "roistat", "visit", want->visit,
                                       have[0] ? have : NULL, false, 1);
}

/* --- Bitrix24 ---------------------------------------------------------------------------- */

json_t *reconcile_deal_chosen(json_t *deals, const char *link)
{
        json_t *d;
        size_t i;
        char id[64];

        json_array_foreach(deals, i, d)
        {
                id_of(json_object_get(d, "ID"), id, sizeof(id));
                if (link && strcmp(id, link) == 0)
                        return d;
        }
        return json_array_get(deals, 0);
}

/* Two texts that must be equal (a missing one is ""): drift `field` when they differ. */
static void same_text(struct reconcile_report *r, const char *order_id, const char *field,
                      json_t *want, json_t *have, unsigned repair, bool by_hand)
{
        char w[300], h[300];

        id_of(want, w, sizeof(w));
        id_of(have, h, sizeof(h));
        if (strcmp(w, h) != 0)
                reconcile_report_drift(r, order_id, "bitrix24", field, w[0] ? w : NULL,
                                       h[0] ? h : NULL, by_hand, repair);
}

static void same_amount(struct reconcile_report *r, const char *order_id, json_t *want,
                        json_t *have)
{
        int64_t w = 0, h = 0;
        char hs[300];

        /* `want` is money_format's text: it always reads */
        reconcile_decimal(want, 2, MONEY_MAX_MINOR, &w);
        if (reconcile_decimal(have, 2, MONEY_MAX_MINOR, &h) < 0)
                shown(have, hs, sizeof(hs));
        else if (h != w)
                money_format(h, hs, sizeof(hs));
        else
                return;
        reconcile_report_drift(r, order_id, "bitrix24", "amount", json_string_value(want), hs,
                               false, B24_REPAIR_FIELDS);
}

/* A row as shown: "Kettle 2495.00 x 2"; `ok` false when its price or quantity does not
 * read. */
static void row_text(json_t *row, int64_t *price, int64_t *qty, bool *ok, char *buf, size_t size)
{
        char p[32], q[32], name[256];

        *ok = reconcile_decimal(json_object_get(row, "PRICE"), 2, MONEY_MAX_MINOR, price) == 0 &&
              reconcile_decimal(json_object_get(row, "QUANTITY"), 3, QUANTITY_MAX_MILLI, qty) == 0;
        if (*ok) {
                money_format(*price, p, sizeof(p));
                quantity_format(*qty, q, sizeof(q));
        } else {
                shown(json_object_get(row, "PRICE"), p, sizeof(p));
                shown(json_object_get(row, "QUANTITY"), q, sizeof(q));
        }
        shown(json_object_get(row, "PRODUCT_NAME"), name, sizeof(name));
        /* `size` holds a whole name and both numbers */
        snprintf(buf, size, "%s %s x %s", name, p, q);
}

/* The rows in order: their count, then each row that differs ("#2 Cup 1247.50 x 2" on
 * both sides), at most ROW_DRIFTS_MAX of them and the rest as a count. */
static void same_rows(struct reconcile_report *r, const char *order_id, json_t *want, json_t *have)
{
        size_t nw = json_array_size(want), nh = json_array_size(have), reported = 0;
        char w[400], h[400], a_text[380], b_text[380];

        if (nw != nh) {
                snprintf(w, sizeof(w), "%zu row%s", nw, nw == 1 ? "" : "s");
                snprintf(h, sizeof(h), "%zu row%s", nh, nh == 1 ? "" : "s");
                reconcile_report_drift(r, order_id, "bitrix24", "rows", w, h, false,
                                       B24_REPAIR_ROWS);
                return;
        }
        for (size_t i = 0; i < nw; i++) {
                json_t *a = json_array_get(want, i), *b = json_array_get(have, i);
                int64_t pa, qa, pb, qb;
                bool oka, okb;
                row_text(a, &pa, &qa, &oka, a_text, sizeof(a_text));
                row_text(b, &pb, &qb, &okb, b_text, sizeof(b_text));
                if (oka && okb && pa == pb && qa == qb &&
                    json_equal(json_object_get(a, "PRODUCT_NAME"),
                               json_object_get(b, "PRODUCT_NAME")))
                        continue;
                if (++reported > ROW_DRIFTS_MAX)
                        continue;
                snprintf(w, sizeof(w), "#%zu %s", i + 1, a_text);
                snprintf(h, sizeof(h), "#%zu %s", i + 1, b_text);
                reconcile_report_drift(r, order_id, "bitrix24", "rows", w, h, false,
                                       B24_REPAIR_ROWS);
        }
        if (reported > ROW_DRIFTS_MAX) {
                snprintf(w, sizeof(w), "%zu more rows differ", reported - ROW_DRIFTS_MAX);
                reconcile_report_drift(r, order_id, "bitrix24", "rows", w, NULL, false,
                                       B24_REPAIR_ROWS);
        }
}

void reconcile_compare_deal(struct reconcile_report *r, const char *order_id,
                            const struct reconcile_deal_want *want, json_t *deals, json_t *rows,
                            bool light)
{
        json_t *deal = reconcile_deal_chosen(deals, want->deal), *f = want->fields, *v;
        char id[64];

        if (!deal) {
                reconcile_report_drift(r, order_id, "bitrix24", "deal", want->deal, "missing",
                                       false, B24_REPAIR_DEAL);
                return;
        }
        id_of(json_object_get(deal, "ID"), id, sizeof(id));
        if (json_array_size(deals) > 1) {
                char list[300] = "";
                size_t i, len = 0;
                json_array_foreach(deals, i, v)
                {
                        char one[64];
                        id_of(json_object_get(v, "ID"), one, sizeof(one));
                        if (len + strlen(one) + 2 >= sizeof(list))
                                break; /* a screenful of ids is enough to find them */
                        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
                                                i ? "," : "", one);
                }
                reconcile_report_drift(r, order_id, "bitrix24", "duplicate", want->deal, list, true,
                                       0);
        } else if (want->deal && strcmp(want->deal, id) != 0) {
                /* the one deal the portal has is not the one the store links */
                reconcile_report_drift(r, order_id, "bitrix24", "deal", want->deal, id, false,
                                       B24_REPAIR_DEAL);
                return;
        }
        same_text(r, order_id, "stage", json_object_get(f, "STAGE_ID"),
                  json_object_get(deal, "STAGE_ID"), B24_REPAIR_FIELDS, false);
        same_amount(r, order_id, json_object_get(f, "OPPORTUNITY"),
                    json_object_get(deal, "OPPORTUNITY"));
        same_text(r, order_id, "currency", json_object_get(f, "CURRENCY_ID"),
                  json_object_get(deal, "CURRENCY_ID"), B24_REPAIR_FIELDS, false);
        if (light)
                return;
        /* the Roistat field is owned only when the order has a visit (the sink sends it
         * only then) */
        v = want->roistat_field[0] ? json_object_get(f, want->roistat_field) : NULL;
        if (v)
                same_text(r, order_id, "visit", v, json_object_get(deal, want->roistat_field),
                          B24_REPAIR_FIELDS, false);
        if (want->rows)
                same_rows(r, order_id, want->rows, rows);
        v = want->contact ? json_string(want->contact) : json_null();
        same_text(r, order_id, "contact", v, json_object_get(deal, "CONTACT_ID"), 0, true);
        json_decref(v);
}
