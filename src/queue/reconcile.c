/*
 * A reconcile run: the store's orders changed since a time, a page at a time, each read
 * with its deliveries and links (store_order_report, one consistent view of one order);
 * an order is compared with a sink only when its delivery there is done at its latest
 * snapshot. Bitrix24 is read a store page at a time (the page's deals by ORIGIN_ID, then
 * the rows of the deals compared), so a run's memory is bounded by the page. Roistat is
 * read once, at the end: order/list by creation_date (a single condition, so the flat
 * form, roistat.md 1.3), from a day before the oldest order to compare (time zones), in
 * pages of ROISTAT_LIST_PAGE, and what each order must hold is kept compact meanwhile.
 * An order not met on those pages is looked for again by id before it is called missing,
 * since paging by offset over a list others add to may step over one.
 *
 * The store is paged by the time orders changed, with an offset only among orders that
 * changed in the same millisecond: an order changed during the run moves past the end
 * and is met again, rather than shifting the pages under the walk.
 */
#include "queue/reconcile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xalloc.h"
#include "sinks/b24_client.h"
#include "sinks/b24_deals.h"
#include "sinks/b24_stages.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/roistat_orders.h"
#include "sinks/sink_bitrix24.h"

#define STORE_PAGE 500
#define CONFIRM_IDS 50         /* ids per order/list call that looks for unseen orders */
#define CREATED_MARGIN_S 86400 /* creation_date is compared a day wide */

struct reconcile {
        const struct config *cfg;
        const struct roistat_conf *rs; /* NULL: the sink is off */
        const struct b24_conf *b24;    /* NULL: the sink is off */
        struct roistat_orders *rs_reader;
        struct b24_client *b24_client;
};

/* An order to compare with Roistat, kept until Roistat is read. */
struct rs_item {
        char *order_id;
        int64_t received_at, created_at;
        struct reconcile_roistat_want want;
        bool seen;
};

/* An order of the current store page to compare with Bitrix24. */
struct b24_item {
        char *order_id;
        int64_t received_at;
        struct reconcile_deal_want want;
        char *deal, *contact; /* owned copies behind want.deal, want.contact */
};

struct run {
        struct reconcile *rc;
        struct store *st;
        const struct reconcile_opts *o;
        struct reconcile_report *r;
        struct rs_item *rs;
        size_t n_rs, cap_rs;
        json_t *rs_index; /* order id → index into rs */
        json_t *met;      /* the order ids read in this run: one changed meanwhile is met
                           * again past the end of the walk, and compared once */
        struct b24_item *b24;
        size_t n_b24, cap_b24;
        bool rs_failed, b24_failed;
        struct b24_pipeline pipeline;
        bool need_pipeline;
};

int reconcile_new(const struct config *cfg, struct reconcile **ret)
{
        struct reconcile *rc = xcalloc(1, sizeof(*rc));

        rc->cfg = cfg;
        rc->rs = roistat_conf_get(cfg);
        rc->b24 = b24_conf_get(cfg);
        if (!rc->rs && !rc->b24) {
                free(rc);
                return -EINVAL;
        }
        if (rc->rs && !(rc->rs_reader = roistat_orders_new(rc->rs))) {
                free(rc);
                return -ENOMEM;
        }
        if (rc->b24 && !(rc->b24_client = b24_client_new(rc->b24))) {
                roistat_orders_free(rc->rs_reader);
                free(rc);
                return -ENOMEM;
        }
        *ret = rc;
        return 0;
}

struct reconcile *reconcile_free(struct reconcile *rc)
{
        if (!rc)
                return NULL;
        roistat_orders_free(rc->rs_reader);
        b24_client_free(rc->b24_client);
        free(rc);
        return NULL;
}

/* --- what the run found ------------------------------------------------------------------- */

static void unsettled(struct run *run, int64_t received_at)
{
        if (received_at < run->r->unsettled_since_ms)
                run->r->unsettled_since_ms = received_at;
}

/* The first remote that could not be read is the one the report names. */
__attribute__((format(printf, 3, 4))) static void remote_failed(struct run *run, int code,
                                                                const char *fmt, ...)
{
        va_list ap;

        if (run->r->remote_error)
                return;
        run->r->remote_error = code;
        va_start(ap, fmt);
        vsnprintf(run->r->remote_errmsg, sizeof(run->r->remote_errmsg), fmt, ap);
        va_end(ap);
}

/* --- reading one order from the store ----------------------------------------------------- */

/* Whether `sink`'s delivery of the order is done at its latest rev: 1 done, 0 not yet
 * (*ret_state its state), -ENOENT no delivery row. */
static int delivered(json_t *doc, const char *sink, const char **ret_state)
{
        json_int_t rev = json_integer_value(json_object_get(doc, "rev"));
        json_t *d;
        size_t i;

        json_array_foreach(json_object_get(doc, "deliveries"), i, d)
        {
                const char *state = json_string_value(json_object_get(d, "state"));
                const char *name = json_string_value(json_object_get(d, "sink"));
                if (!state || !name || strcmp(name, sink) != 0)
                        continue;
                if (strcmp(state, "done") == 0 &&
                    json_integer_value(json_object_get(d, "done_rev")) >= rev)
                        return 1;
                *ret_state = state;
                return 0;
        }
        return -ENOENT;
}

static const char *link_of(json_t *doc, const char *kind)
{
        json_t *l;
        size_t i;

        json_array_foreach(json_object_get(doc, "links"), i, l)
        {
                const char *k = json_string_value(json_object_get(l, "kind"));
                if (k && strcmp(k, kind) == 0)
                        return json_string_value(json_object_get(l, "remote_id"));
        }
        return NULL;
}

/* True when the order's delivery to `sink` is done; otherwise it is listed unsent, and
 * looked at again by the next light run while it is on its way. A dead one (or one never
 * made) waits for a person (`orderbridge retry`), not for time: it does not hold the
 * light runs' watermark back for ever. */
static bool ready(struct run *run, json_t *doc, const char *order_id, const char *sink,
                  int64_t received_at)
{
        const char *state = "none";

        if (delivered(doc, sink, &state) == 1)
                return true;
        reconcile_report_unsent(run->r, order_id, sink, state);
        if (strcmp(state, "dead") != 0 && strcmp(state, "none") != 0)
                unsettled(run, received_at);
        return false;
}

static bool add_roistat(struct run *run, const struct snapshot *s, int64_t received_at)
{
        struct reconcile_roistat_want want;
        char why[256];

        /* no status maps: the sink dead-letters such an order, never "done" */
        if (reconcile_roistat_want(run->rc->rs, s, &want, why, sizeof(why)) < 0)
                return false;
        if (run->n_rs == run->cap_rs) {
                run->cap_rs = run->cap_rs ? 2 * run->cap_rs : 256;
                run->rs = xrealloc(run->rs, run->cap_rs * sizeof(*run->rs));
        }
        json_object_set_new(run->rs_index, s->order_id, json_integer((json_int_t)run->n_rs));
        run->rs[run->n_rs++] = (struct rs_item){.order_id = xstrdup(s->order_id),
                                                .received_at = received_at,
                                                .created_at = s->created_at,
                                                .want = want};
        return true;
}

static bool add_deal(struct run *run, json_t *doc, const struct snapshot *s, int64_t received_at)
{
        const struct b24_conf *conf = run->rc->b24;
        struct b24_item it = {.received_at = received_at};
        char stage[96];
        const char *l;

        if (b24_conf_order_stage(conf, run->need_pipeline ? &run->pipeline : NULL, s, stage,
                                 sizeof(stage)) < 0)
                return false; /* no stage maps: dead-lettered by the sink, never "done" */
        it.want.fields = b24_deal_owned_fields(conf, s, stage);
        it.want.rows = run->o->light ? NULL : b24_deal_rows(conf, s);
        if (!it.want.fields || (!run->o->light && !it.want.rows)) {
                json_decref(it.want.fields);
                json_decref(it.want.rows);
                return false; /* not UTF-8: the sink refuses it too */
        }
        it.order_id = xstrdup(s->order_id);
        it.deal = (l = link_of(doc, "b24.deal")) ? xstrdup(l) : NULL;
        it.contact = (l = link_of(doc, "b24.contact")) ? xstrdup(l) : NULL;
        it.want.deal = it.deal;
        it.want.contact = it.contact;
        it.want.roistat_field = conf->roistat_field;
        if (run->n_b24 == run->cap_b24) {
                run->cap_b24 = run->cap_b24 ? 2 * run->cap_b24 : 64;
                run->b24 = xrealloc(run->b24, run->cap_b24 * sizeof(*run->b24));
        }
        run->b24[run->n_b24++] = it;
        return true;
}

/* One order: its report, and what each sink's remote must hold. 0 or -EIO. */
static int read_order(struct run *run, const char *order_id)
{
        struct snapshot_error serr;
        struct snapshot *s = NULL;
        char *report = NULL, *text;
        json_t *doc;
        int64_t received_at;
        bool compared = false;
        int r;

        if (json_object_get(run->met, order_id))
                return 0;
        json_object_set_new(run->met, order_id, json_true());
        run->r->read++;
        r = store_order_report(run->st, order_id, &report);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return -EIO;
        doc = json_loads(report, 0, NULL);
        free(report);
        text = json_dumps(json_object_get(doc, "snapshot"), JSON_COMPACT);
        if (!text || snapshot_parse(text, strlen(text), &s, &serr) < 0) {
                /* stored by this program: unreadable is the sinks' dead letter too */
                free(text);
                json_decref(doc);
                return 0;
        }
        free(text);
        received_at = json_integer_value(json_object_get(doc, "received_at"));
        if (run->rc->rs && ready(run, doc, order_id, "roistat", received_at)) {
                if (run->rs_failed)
                        unsettled(run, received_at);
                else
                        compared = add_roistat(run, s, received_at) || compared;
        }
        /* a deal read from Bitrix24 goes to Roistat only */
        if (run->rc->b24 && !s->deal_id && ready(run, doc, order_id, "bitrix24", received_at)) {
                if (run->b24_failed)
                        unsettled(run, received_at);
                else
                        compared = add_deal(run, doc, s, received_at) || compared;
        }
        run->r->checked += compared;
        snapshot_free(s);
        json_decref(doc);
        return 0;
}

/* --- Bitrix24, a store page at a time ---------------------------------------------------- */

static void b24_items_clear(struct run *run)
{
        for (size_t i = 0; i < run->n_b24; i++) {
                struct b24_item *it = &run->b24[i];
                free(it->order_id);
                free(it->deal);
                free(it->contact);
                json_decref(it->want.fields);
                json_decref(it->want.rows);
        }
        run->n_b24 = 0;
}

static void deals_unread(struct run *run, int code, const struct b24_error *err)
{
        remote_failed(run, code, "Bitrix24: %s %s", err->code, err->description);
        run->b24_failed = true;
        for (size_t i = 0; i < run->n_b24; i++)
                unsettled(run, run->b24[i].received_at);
}

static json_t *b24_select(const struct run *run)
{
        json_t *select = json_pack("[s, s, s]", "STAGE_ID", "OPPORTUNITY", "CURRENCY_ID");

        if (!run->o->light) {
                json_array_append_new(select, json_string("CONTACT_ID"));
                if (run->rc->b24->roistat_field[0])
                        json_array_append_new(select, json_string(run->rc->b24->roistat_field));
        }
        return select;
}

/* The rows of the deal each order is compared with. 0, or a b24 code. */
static int b24_rows(struct run *run, json_t *by_origin, json_t **ret, struct b24_error *err)
{
        const char **ids = xcalloc(run->n_b24 + 1, sizeof(*ids));
        size_t n = 0;
        int r;

        for (size_t i = 0; i < run->n_b24; i++) {
                json_t *d = reconcile_deal_chosen(json_object_get(by_origin, run->b24[i].order_id),
                                                  run->b24[i].deal);
                if (json_is_string(json_object_get(d, "ID")))
                        ids[n++] = json_string_value(json_object_get(d, "ID"));
        }
        r = b24_deals_rows(run->rc->b24_client, ids, n, run->o->stop, ret, err);
        free(ids);
        return r;
}

static void check_b24_page(struct run *run)
{
        const char **ids;
        json_t *select, *by_origin = NULL, *rows = NULL;
        struct b24_error err;
        int r;

        if (run->n_b24 == 0)
                return;
        ids = xcalloc(run->n_b24, sizeof(*ids));
        for (size_t i = 0; i < run->n_b24; i++)
                ids[i] = run->b24[i].order_id;
        select = b24_select(run);
        r = b24_deals_of_orders(run->rc->b24_client, run->rc->cfg->site_id, ids, run->n_b24, select,
                                run->o->stop, &by_origin, &err);
        json_decref(select);
        free(ids);
        if (r == 0 && !run->o->light)
                r = b24_rows(run, by_origin, &rows, &err);
        if (r < 0) {
                deals_unread(run, r, &err);
        } else {
                for (size_t i = 0; i < run->n_b24; i++) {
                        struct b24_item *it = &run->b24[i];
                        json_t *deals = json_object_get(by_origin, it->order_id);
                        const char *id = json_string_value(
                            json_object_get(reconcile_deal_chosen(deals, it->deal), "ID"));
                        size_t before = run->r->n_drifts;
                        reconcile_compare_deal(run->r, it->order_id, &it->want, deals,
                                               id ? json_object_get(rows, id) : NULL,
                                               run->o->light);
                        if (run->r->n_drifts > before)
                                unsettled(run, it->received_at);
                }
        }
        json_decref(by_origin);
        json_decref(rows);
        b24_items_clear(run);
}

/* --- Roistat, once every order to compare is known ---------------------------------------- */

static void orders_unread(struct run *run, int code, const char *why)
{
        remote_failed(run, code, "Roistat: %s", why);
        run->rs_failed = true;
        for (size_t i = 0; i < run->n_rs; i++)
                if (!run->rs[i].seen)
                        unsettled(run, run->rs[i].received_at);
}

/* Compares the rows of one order/list page with the orders they are about. */
static void compare_rows(struct run *run, json_t *data)
{
        json_t *row;
        size_t i;

        json_array_foreach(data, i, row)
        {
                char id[128];
                json_t *at;
                struct rs_item *it;
                size_t before = run->r->n_drifts;
                json_t *v = json_object_get(row, "id");
                if (json_is_string(v))
                        snprintf(id, sizeof(id), "%s", json_string_value(v));
                else if (json_is_integer(v))
                        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(v));
                else
                        continue;
                at = json_object_get(run->rs_index, id);
                if (!at || run->rs[json_integer_value(at)].seen)
                        continue; /* another integration's order, or one already compared */
                it = &run->rs[json_integer_value(at)];
                it->seen = true;
                reconcile_compare_roistat(run->r, it->order_id, &it->want, row, run->o->light);
                if (run->r->n_drifts > before)
                        unsettled(run, it->received_at);
        }
}

/* Every page of order/list that `filters` (consumed) keeps. 0, or the reader's code. */
static int read_roistat(struct run *run, json_t *filters, size_t limit)
{
        size_t offset = 0;
        int r = 0;

        for (;;) {
                json_t *data = NULL;
                int64_t total = 0;
                char why[300];
                r = roistat_orders_page(run->rc->rs_reader, filters, limit, offset, run->o->stop,
                                        &data, &total, why, sizeof(why));
                if (r < 0) {
                        orders_unread(run, r, why);
                        break;
                }
                compare_rows(run, data);
                offset += json_array_size(data);
                r = json_array_size(data) == 0 || offset >= (size_t)total;
                json_decref(data);
                if (r) {
                        r = 0;
                        break;
                }
        }
        json_decref(filters);
        return r;
}

/* "2026-03-12T07:00:00+0000", the form of the docs' example. */
static void roistat_time(int64_t epoch, char *buf, size_t size)
{
        time_t t = (time_t)(epoch > 0 ? epoch : 0);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%S+0000", &tm);
}

static void check_roistat(struct run *run)
{
        int64_t oldest = INT64_MAX;
        char since[40];
        json_t *ids = json_array();

        if (run->n_rs == 0 || run->rs_failed)
                goto out;
        for (size_t i = 0; i < run->n_rs; i++)
                if (run->rs[i].created_at < oldest)
                        oldest = run->rs[i].created_at;
        roistat_time(oldest - CREATED_MARGIN_S, since, sizeof(since));
        if (read_roistat(
                run, roistat_orders_all_of(json_pack("[[s, s, s]]", "creation_date", ">=", since)),
                ROISTAT_LIST_PAGE) < 0)
                goto out;
        /* those not met: asked for by id before they are called missing */
        for (size_t i = 0; i <= run->n_rs; i++) {
                if (i < run->n_rs && !run->rs[i].seen)
                        json_array_append_new(
                            ids, json_pack("[s, s, s]", "id", "=", run->rs[i].order_id));
                if (json_array_size(ids) == CONFIRM_IDS ||
                    (i == run->n_rs && json_array_size(ids) > 0)) {
                        if (read_roistat(run, roistat_orders_any_of(ids), CONFIRM_IDS) < 0) {
                                ids = NULL;
                                goto out;
                        }
                        ids = json_array();
                }
        }
        for (size_t i = 0; i < run->n_rs; i++)
                if (!run->rs[i].seen) {
                        reconcile_compare_roistat(run->r, run->rs[i].order_id, &run->rs[i].want,
                                                  NULL, run->o->light);
                        unsettled(run, run->rs[i].received_at);
                }
out:
        json_decref(ids);
}

/* --- the walk ------------------------------------------------------------------------------ */

struct page {
        char **ids;
        int64_t *received;
        size_t n;
};

static int collect(void *arg, const struct store_order_view *v)
{
        struct page *pg = arg;

        pg->ids[pg->n] = xstrdup(v->order_id);
        pg->received[pg->n++] = v->received_at;
        return 0;
}

static void page_clear(struct page *pg)
{
        for (size_t i = 0; i < pg->n; i++)
                free(pg->ids[i]);
        pg->n = 0;
}

static bool stopped(const struct run *run)
{
        return run->o->stop && atomic_load(run->o->stop);
}

/* Reads the store page by page; Bitrix24 is compared after each page. 0, -EIO or
 * -ECANCELED. */
static int walk(struct run *run)
{
        struct page pg = {xcalloc(STORE_PAGE, sizeof(char *)), xcalloc(STORE_PAGE, sizeof(int64_t)),
                          0};
        int64_t after = run->o->since_ms;
        size_t skip = 0;
        int r = 0;

        for (;;) {
                int64_t last;
                size_t ties = 0;
                page_clear(&pg);
                if (store_orders_changed(run->st, after, STORE_BY_CHANGE, skip, STORE_PAGE, collect, &pg, NULL) <
                    0) {
                        r = -EIO;
                        break;
                }
                if (pg.n == 0)
                        break;
                for (size_t i = 0; r == 0 && i < pg.n; i++) {
                        if (stopped(run))
                                r = -ECANCELED;
                        else
                                r = read_order(run, pg.ids[i]);
                }
                if (r == 0 && !run->b24_failed)
                        check_b24_page(run);
                b24_items_clear(run);
                if (r < 0)
                        break;
                if (run->o->progress)
                        run->o->progress(run->o->progress_arg, run->r->read);
                /* the next page: after the last time seen, past the orders of that very
                 * millisecond already read */
                last = pg.received[pg.n - 1];
                for (size_t i = pg.n; i > 0 && pg.received[i - 1] == last; i--)
                        ties++;
                if (ties == pg.n && after == last - 1)
                        skip += ties;
                else
                        skip = ties;
                after = last - 1;
        }
        page_clear(&pg);
        free(pg.ids);
        free(pg.received);
        return r;
}

int reconcile_run(struct reconcile *rc, struct store *st, const struct reconcile_opts *o,
                  struct reconcile_report *ret)
{
        struct run run = {
            .rc = rc, .st = st, .o = o, .r = ret, .rs_index = json_object(), .met = json_object()};
        struct b24_error err;
        int r;

        memset(ret, 0, sizeof(*ret));
        ret->unsettled_since_ms = INT64_MAX;
        run.need_pipeline = rc->b24 && b24_conf_needs_pipeline(rc->b24);
        /* a configured @paid puts a paid order at a stage that depends on the pipeline */
        if (run.need_pipeline &&
            (r = b24_pipeline_fetch(rc->b24_client, rc->b24->category_id, &run.pipeline, &err)) < 0)
                deals_unread(&run, r, &err);
        r = walk(&run);
        if (r == 0)
                check_roistat(&run);
        for (size_t i = 0; i < run.n_rs; i++) {
                free(run.rs[i].order_id);
                reconcile_roistat_want_clear(&run.rs[i].want);
        }
        free(run.rs);
        free(run.b24);
        json_decref(run.rs_index);
        json_decref(run.met);
        b24_pipeline_clear(&run.pipeline);
        if (r == 0 && stopped(&run))
                r = -ECANCELED;
        reconcile_report_sort(ret);
        return r;
}

/* --- repair -------------------------------------------------------------------------------- */

/* One (order, sink): its drifts from `from`, sorted together. Returns the next index. */
static size_t repair_one(struct store *st, const struct reconcile_report *r, size_t from,
                         int64_t now_ms, int *requested, bool *failed,
                         void (*cb)(void *, const char *, const char *, enum reconcile_repair_kind,
                                    int),
                         void *arg)
{
        const struct reconcile_drift *d = &r->drifts[from];
        struct store_writes w = {0};
        unsigned bits = 0;
        bool duplicate = false, owned = false;
        size_t i;
        int e;

        for (i = from; i < r->n_drifts && strcmp(r->drifts[i].order_id, d->order_id) == 0 &&
                       strcmp(r->drifts[i].sink, d->sink) == 0;
             i++) {
                duplicate = duplicate || strcmp(r->drifts[i].field, "duplicate") == 0;
                owned = owned || !r->drifts[i].by_hand;
                bits |= r->drifts[i].repair;
        }
        if (duplicate) {
                /* which deal is the order's is a person's call: nothing is sent meanwhile */
                cb(arg, d->order_id, d->sink, RECONCILE_MERGE, 0);
                return i;
        }
        if (!owned) {
                cb(arg, d->order_id, d->sink, RECONCILE_LEFT, 0);
                return i;
        }
        if (strcmp(d->sink, "bitrix24") == 0)
                b24_repair_writes(&w, d->order_id, bits);
        e = store_request(st, d->sink, d->order_id, &w, now_ms);
        store_writes_clear(&w);
        if (e < 0)
                *failed = true;
        else
                (*requested)++;
        cb(arg, d->order_id, d->sink, e < 0 ? RECONCILE_FAILED : RECONCILE_REQUESTED, e);
        return i;
}

int reconcile_repair(struct store *st, const struct reconcile_report *r, int64_t now_ms,
                     void (*cb)(void *arg, const char *order_id, const char *sink,
                                enum reconcile_repair_kind kind, int err),
                     void *arg)
{
        int requested = 0;
        bool failed = false;

        for (size_t i = 0; i < r->n_drifts;)
                i = repair_one(st, r, i, now_ms, &requested, &failed, cb, arg);
        return failed ? -EIO : requested;
}
