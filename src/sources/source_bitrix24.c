/*
 * The Bitrix24 source (see source_bitrix24.h). One thread owns the portal client, its own
 * store handle and the poll; route threads only add deal ids to the queue, under `lock`.
 * The thread takes one request's work at a time — up to 50 queued ids, or one page of the
 * poll, alternating when both wait — and waits for the portal's bucket on its own
 * condition variable, so that stop is never held up by a client asleep in its limiter.
 *
 * The poll walks the deals modified since W in (DATE_MODIFY, ID) order. Offset paging
 * (start = 50, 100, …) over rows that change while they are read skips a row whenever an
 * earlier one is modified or deleted in between, and a skipped row whose event was lost
 * is lost for good once W passes it. So each page is asked afresh from the last
 * DATE_MODIFY read (">=", the rows of that second already handled skipped by id), and a
 * page that is all one second is continued by ID within that second (">ID"), then past it
 * (">"). W moves only over deals that were handled (their snapshot stored, or site_sync's
 * decision recorded), and never past the portal's own clock when the pass began (its
 * answer's time.start): a deal read in a second the portal had not finished may change
 * again within that second, under the same DATE_MODIFY, and the next pass must see it.
 */
#include "sources/source_bitrix24.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "model/iso8601.h"
#include "queue/role.h"
#include "sinks/b24_client.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/site_sync.h"
#include "sources/b24_deal.h"
#include "store/store.h"

#define PAGE 50 /* crm.deal.list's fixed page, and the ids fetched per request */
#define NEVER INT64_MAX
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 300000
#define TIME_MAX 48 /* an ISO 8601 time as the portal writes it, with a fraction */

/* What became of one deal of a request's rows. */
enum slot { SLOT_PENDING, SLOT_OK, SLOT_FAILED };

/* One poll pass: where it is, and what it may promise (see the top of the file). */
struct pass {
        bool active;
        char cursor[TIME_MAX]; /* the second the next page starts at, as the portal wrote it */
        int64_t cursor_s;
        bool past_cursor;    /* ">" instead of ">=": the cursor's second is done */
        int64_t after_id;    /* > 0: the cursor's second, by ID after this one */
        uint64_t seen[PAGE]; /* ids handled at cursor_s (">=" reads them again) */
        size_t n_seen;
        int64_t horizon_s; /* the portal's clock at the first page; 0 = not known */
        int64_t deals, sent, pages, started_ms;
};

struct source_b24 {
        const struct config *cfg;
        const struct b24_conf *conf;
        struct intake *in;
        struct store *store;
        struct b24_client *client;
        pthread_t thread;
        bool running;

        pthread_mutex_t lock;
        pthread_cond_t wake; /* a hint, stop, an answer from the intake */
        bool stop;
        uint64_t *queue; /* a ring of SOURCE_B24_QUEUE_MAX deal ids, each once */
        size_t head, n;
        long outstanding; /* submissions the intake has not answered yet */

        /* the thread's own */
        char watermark[TIME_MAX];
        int64_t watermark_s;
        int offset_s; /* the portal's UTC offset, from the last DATE_MODIFY read */
        struct pass pass;
        int64_t poll_due;    /* monotonic ms */
        int64_t pause_until; /* after a failure, monotonic ms */
        int64_t failures;
        bool events_last; /* the last request was for queued ids */
        struct backoff_rng rng;
        struct role role; /* a shared store: one server at a time reads the portal */
};

/* A submission in flight: where its outcome goes. */
struct ticket {
        struct source_b24 *sb;
        enum slot *slot;
        char deal_id[B24_DEAL_ID_MAX + 1];
        const char *change;
};

/* ---- the queue of hints (any thread, under `lock`) ---------------------------------- */

static int b24_notify(void *ctx, const char *what)
{
        struct source_b24 *sb = ctx;
        uint64_t id;
        int r = 0;

        if (!b24_deal_id_valid(what))
                return -EINVAL;
        id = strtoull(what, NULL, 10);
        pthread_mutex_lock(&sb->lock);
        for (size_t i = 0; i < sb->n; i++)
                if (sb->queue[(sb->head + i) % SOURCE_B24_QUEUE_MAX] == id)
                        goto out; /* already waiting: one fetch reads its latest state */
        if (sb->n == SOURCE_B24_QUEUE_MAX) {
                r = -ENOSPC;
                goto out;
        }
        sb->queue[(sb->head + sb->n++) % SOURCE_B24_QUEUE_MAX] = id;
        pthread_cond_signal(&sb->wake);
out:
        pthread_mutex_unlock(&sb->lock);
        return r;
}

/* Takes up to PAGE ids off the queue (lock held). */
static size_t queue_take(struct source_b24 *sb, uint64_t *ids)
{
        size_t n = 0;

        while (sb->n > 0 && n < PAGE) {
                ids[n++] = sb->queue[sb->head];
                sb->head = (sb->head + 1) % SOURCE_B24_QUEUE_MAX;
                sb->n--;
        }
        return n;
}

/* Puts ids back after a failure; those that no longer fit are left to the poll. */
static void queue_return(struct source_b24 *sb, const uint64_t *ids, size_t n)
{
        char text[24];

        for (size_t i = 0; i < n; i++) {
                snprintf(text, sizeof(text), "%" PRIu64, ids[i]);
                if (b24_notify(sb, text) == -ENOSPC)
                        log_warn("b24.queue_full", "deal_id=%s what=\"left to the poll\"", text);
        }
}

/* ---- one deal ------------------------------------------------------------------------ */

/* The intake's answer for one deal's snapshot, from its committer thread. */
static void deal_stored(void *userdata, const struct intake_result *res)
{
        struct ticket *t = userdata;
        struct source_b24 *sb = t->sb;
        bool ok = res->outcome == STORE_PUT_ACCEPTED || res->outcome == STORE_PUT_STALE;

        if (ok)
                log_info("b24.deal_stored",
                         "order_id=%s deal_id=%s version=%lld change=%s "
                         "outcome=%s",
                         res->snap->order_id, t->deal_id, (long long)res->snap->version, t->change,
                         store_outcome_name(res->outcome));
        else
                log_err("b24.deal_store_failed", "order_id=%s deal_id=%s error=\"%s\"",
                        res->snap->order_id, t->deal_id, res->errmsg ? res->errmsg : "");
        pthread_mutex_lock(&sb->lock);
        *t->slot = ok ? SLOT_OK : SLOT_FAILED;
        if (--sb->outstanding == 0)
                pthread_cond_broadcast(&sb->wake);
        pthread_mutex_unlock(&sb->lock);
        free(t);
}

/* Waits until the intake has answered every submission. */
static void wait_answers(struct source_b24 *sb)
{
        pthread_mutex_lock(&sb->lock);
        while (sb->outstanding > 0)
                pthread_cond_wait(&sb->wake, &sb->lock);
        pthread_mutex_unlock(&sb->lock);
}

/* The deal of a site order: two-way sync decides, and records what it decided. */
static int site_deal(struct source_b24 *sb, const struct b24_deal *d, enum slot *slot)
{
        struct site_deal_seen seen = {d->origin_id, d->id, d->stage, d->modified};
        enum site_sync_verdict v;
        int r;

        *slot = SLOT_OK;
        if (!d->stage) {
                log_warn("b24.deal_invalid",
                         "order_id=%s deal_id=%s field=STAGE_ID "
                         "message=\"is required\"",
                         d->origin_id, d->id);
                return 0;
        }
        /* ORIGIN_ID is the portal's text: what is no order id names no order */
        if (strlen(d->origin_id) > SNAPSHOT_ID_MAX || !snapshot_id_chars(d->origin_id))
                r = -ENOENT;
        else
                r = site_sync_deal_seen(sb->store, sb->cfg, &seen, clock_wall_ms(), &v);
        if (r == -ENOENT) {
                log_warn("b24.deal_seen", "order_id=%s deal_id=%s stage=%s verdict=unknown_order",
                         d->origin_id, d->id, d->stage);
                return 0;
        }
        if (r < 0) {
                log_err("b24.deal_seen_failed", "order_id=%s deal_id=%s error=\"%s\"", d->origin_id,
                        d->id, store_errmsg(sb->store));
                *slot = SLOT_FAILED;
                return r;
        }
        log_info("b24.deal_seen", "order_id=%s deal_id=%s stage=%s verdict=%s", d->origin_id, d->id,
                 d->stage, site_sync_verdict_name(v));
        return 0;
}

/* Hands one snapshot to the intake; its outcome lands in *slot later. */
static int submit(struct source_b24 *sb, struct snapshot *s, const char *deal_id,
                  enum b24_deal_change change, enum slot *slot)
{
        struct intake_item item = {
            .snap = s, .source = "bitrix24", .bulk = true, .sink_only = "roistat"};
        struct ticket *t = xcalloc(1, sizeof(*t));
        int r;

        *t = (struct ticket){sb, slot, "", b24_deal_change_name(change)};
        snprintf(t->deal_id, sizeof(t->deal_id), "%s", deal_id);
        *slot = SLOT_PENDING;
        pthread_mutex_lock(&sb->lock);
        sb->outstanding++;
        pthread_mutex_unlock(&sb->lock);
        r = intake_submit(sb->in, &item, deal_stored, t);
        if (r == 0)
                return 0;
        snapshot_free(item.snap);
        free(t);
        pthread_mutex_lock(&sb->lock);
        sb->outstanding--;
        pthread_mutex_unlock(&sb->lock);
        *slot = SLOT_FAILED;
        return r;
}

/* A deal that did not come from the site: its snapshot goes to Roistat when it says
 * something the stored one does not. 1 when submitted (*slot answered later), 0 when
 * nothing was to be done, -errno on a failure (*slot FAILED). */
static int other_deal(struct source_b24 *sb, json_t *row, const struct b24_deal *d, enum slot *slot)
{
        const char *site = sb->cfg->site_id, *field = sb->conf->roistat_field;
        struct snapshot_error err;
        struct snapshot *s;
        enum b24_deal_change c;
        int64_t version;
        char *stored = NULL;
        int r;

        *slot = SLOT_OK;
        if (b24_deal_snapshot(row, site, field, d->modified * 1000, &s, &err) < 0) {
                log_warn("b24.deal_invalid", "deal_id=%s field=%s message=\"%s\"", d->id, err.field,
                         err.message);
                return 0;
        }
        r = store_order_snapshot(sb->store, s->order_id, &stored, NULL);
        if (r < 0 && r != -ENOENT) {
                log_err("b24.store_failed", "order_id=%s deal_id=%s error=\"%s\"", s->order_id,
                        d->id, store_errmsg(sb->store));
                snapshot_free(s);
                *slot = SLOT_FAILED;
                return r;
        }
        c = b24_deal_compare(s, stored, &version);
        free(stored);
        if (c == B24_DEAL_SAME || c == B24_DEAL_OLDER) {
                log_debug("b24.deal_unchanged", "order_id=%s deal_id=%s change=%s", s->order_id,
                          d->id, b24_deal_change_name(c));
                snapshot_free(s);
                return 0;
        }
        if (version != s->version) {
                snapshot_free(s);
                if (b24_deal_snapshot(row, site, field, version, &s, &err) < 0)
                        return 0; /* it parsed a moment ago: not reached */
        }
        r = submit(sb, s, d->id, c, slot);
        if (r < 0) {
                log_err("b24.deal_store_failed",
                        "order_id=" SNAPSHOT_DEAL_PREFIX "%s deal_id=%s "
                        "error=\"%s\"",
                        d->id, d->id, strerror(-r));
                return r;
        }
        return 1;
}

/* One row, from an event's fetch or the poll. As other_deal. */
static int handle(struct source_b24 *sb, json_t *row, const struct b24_deal *d, enum slot *slot)
{
        int off;

        if (iso8601_offset(d->date_modify, &off) == 0)
                sb->offset_s = off;
        if (b24_deal_from_site(d, sb->cfg->site_id))
                return site_deal(sb, d, slot);
        return other_deal(sb, row, d, slot);
}

/* ---- the portal ---------------------------------------------------------------------- */

/* A failed request: the thread pauses, with backoff (or as long as the portal asked). */
static void remote_failed(struct source_b24 *sb, const char *what, const struct b24_error *err)
{
        int64_t delay = backoff_delay_ms(++sb->failures, BACKOFF_MIN_MS, BACKOFF_MAX_MS, &sb->rng);

        if (err && err->retry_after_ms > delay)
                delay = err->retry_after_ms;
        sb->pause_until = clock_mono_ms() + delay;
        if (err)
                log_warn("b24.request_failed",
                         "what=%s code=%s http_status=%ld message=\"%s\" "
                         "retry_ms=%lld",
                         what, err->code, err->http_status, err->description, (long long)delay);
        else
                log_warn("b24.request_failed", "what=%s retry_ms=%lld", what, (long long)delay);
}

/* crm.deal.list with `filter` (consumed): 0 and the answer, or -errno (logged, paused). */
static int list_deals(struct source_b24 *sb, const char *what, json_t *filter, json_t *order,
                      json_t **ret_doc, json_t **ret_rows)
{
        json_t *params = json_pack("{s:o, s:o, s:o, s:i}", "filter", filter, "order", order,
                                   "select", b24_deal_select(sb->conf->roistat_field), "start", 0);
        struct b24_error err;
        json_t *doc, *rows;
        int r = b24_call(sb->client, "crm.deal.list", params, &doc, &err);

        if (r < 0) {
                remote_failed(sb, what, &err);
                return r;
        }
        rows = json_object_get(doc, "result");
        if (!json_is_array(rows)) {
                json_decref(doc);
                remote_failed(sb, what, NULL);
                return -EPROTO;
        }
        sb->failures = 0;
        *ret_doc = doc;
        *ret_rows = rows;
        return 0;
}

/* ---- events: the queued ids ---------------------------------------------------------- */

static bool has_id(const uint64_t *ids, size_t n, uint64_t id)
{
        for (size_t i = 0; i < n; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

/* Fetches the queued ids in one request ("@ID": IN, the poll's fields) and handles each
 * row; ids that failed go back to the queue. */
static void fetch_events(struct source_b24 *sb, const uint64_t *ids, size_t n)
{
        enum slot slots[PAGE];
        uint64_t got[PAGE], retry[PAGE];
        size_t n_got = 0, n_retry = 0, i;
        json_t *in = json_array(), *doc, *rows, *row;
        struct snapshot_error err;
        struct b24_deal d[PAGE];

        for (i = 0; i < n; i++)
                json_array_append_new(in, json_integer((json_int_t)ids[i]));
        if (list_deals(sb, "events", json_pack("{s:o}", "@ID", in), json_pack("{s:s}", "ID", "ASC"),
                       &doc, &rows) < 0) {
                queue_return(sb, ids, n);
                return;
        }
        json_array_foreach(rows, i, row)
        {
                if (i >= PAGE || n_got >= PAGE)
                        break;
                if (b24_deal_read(row, &d[n_got], &err) < 0) {
                        log_warn("b24.deal_invalid", "field=%s message=\"%s\"", err.field,
                                 err.message);
                        continue;
                }
                got[n_got] = strtoull(d[n_got].id, NULL, 10);
                if (!has_id(ids, n, got[n_got]))
                        continue; /* not asked for: the portal's filter did not hold */
                handle(sb, row, &d[n_got], &slots[n_got]);
                n_got++;
        }
        wait_answers(sb);
        for (i = 0; i < n_got; i++)
                if (slots[i] == SLOT_FAILED)
                        retry[n_retry++] = got[i];
        for (i = 0; i < n; i++)
                if (!has_id(got, n_got, ids[i]))
                        log_warn("b24.deal_gone",
                                 "deal_id=%" PRIu64 " what=\"not in the portal's "
                                 "answer: deleted, or not visible to the webhook's user\"",
                                 ids[i]);
        json_decref(doc);
        if (n_retry > 0) {
                queue_return(sb, retry, n_retry);
                remote_failed(sb, "events_store", NULL);
        }
}

/* ---- the poll ------------------------------------------------------------------------ */

/* Keeps W in the store: its own second (">=") is read again by the next pass. */
static int save_watermark(struct source_b24 *sb, const char *text, int64_t at_s)
{
        int r = store_meta_set(sb->store, SOURCE_B24_WATERMARK_KEY, text);

        if (r < 0) {
                log_err("b24.watermark_failed", "watermark=%s error=\"%s\"", text,
                        store_errmsg(sb->store));
                return r;
        }
        snprintf(sb->watermark, sizeof(sb->watermark), "%s", text);
        sb->watermark_s = at_s;
        return 0;
}

/* W from the store; the first run starts it at now (stored only if still absent, so a
 * value written meanwhile wins): deals changed before orderbridge first ran are not read. */
static int load_watermark(struct source_b24 *sb)
{
        struct store_writes w = {0};
        char *v = NULL;
        int64_t at;
        int r = store_meta_get(sb->store, SOURCE_B24_WATERMARK_KEY, &v);

        if (r == -ENOENT) {
                char now[TIME_MAX];
                iso8601_format_offset(clock_wall_ms() / 1000, 0, now, sizeof(now));
                store_writes_meta(&w, SOURCE_B24_WATERMARK_KEY, now, true);
                r = store_record(sb->store, "bitrix24", "b24.poll", NULL, 0, &w, clock_wall_ms(),
                                 0);
                store_writes_clear(&w);
                if (r >= 0)
                        r = store_meta_get(sb->store, SOURCE_B24_WATERMARK_KEY, &v);
        }
        if (r < 0) {
                log_err("b24.watermark_failed", "error=\"%s\"", store_errmsg(sb->store));
                return r;
        }
        if (strlen(v) >= sizeof(sb->watermark) || iso8601_parse(v, &at) < 0) {
                char now[TIME_MAX];
                log_err("b24.watermark_invalid",
                        "watermark=\"%s\" what=\"not a time: polling "
                        "from now\"",
                        v);
                free(v);
                iso8601_format_offset(clock_wall_ms() / 1000, 0, now, sizeof(now));
                return save_watermark(sb, now, clock_wall_ms() / 1000);
        }
        snprintf(sb->watermark, sizeof(sb->watermark), "%s", v);
        sb->watermark_s = at;
        free(v);
        return 0;
}

static void pass_begin(struct source_b24 *sb)
{
        struct pass *p = &sb->pass;

        *p = (struct pass){
            .active = true, .cursor_s = sb->watermark_s, .started_ms = clock_mono_ms()};
        snprintf(p->cursor, sizeof(p->cursor), "%s", sb->watermark);
}

/* The pass is over: it ran to the end (ok), or stopped at a failure and is tried again
 * after the pause rather than a whole interval later. */
static void pass_end(struct source_b24 *sb, bool ok)
{
        struct pass *p = &sb->pass;
        int64_t now = clock_mono_ms();
        char clock[TIME_MAX] = "unknown";

        p->active = false;
        if (p->horizon_s > 0)
                iso8601_format_offset(p->horizon_s, sb->offset_s, clock, sizeof(clock));
        log_info("b24.poll",
                 "outcome=%s deals=%lld sent=%lld pages=%lld watermark=%s "
                 "portal_clock=%s ms=%lld",
                 ok ? "done" : "failed", (long long)p->deals, (long long)p->sent,
                 (long long)p->pages, sb->watermark, clock, (long long)(now - p->started_ms));
        if (ok)
                sb->poll_due = now + sb->conf->poll_interval_s * 1000;
        else
                sb->poll_due = sb->pause_until > now ? sb->pause_until : now + BACKOFF_MIN_MS;
}

/* The page's query (see the top of the file). */
static void page_query(const struct pass *p, json_t **ret_filter, json_t **ret_order)
{
        if (p->after_id > 0) {
                *ret_filter = json_pack("{s:s, s:s, s:I}", ">=DATE_MODIFY", p->cursor,
                                        "<=DATE_MODIFY", p->cursor, ">ID", (json_int_t)p->after_id);
                *ret_order = json_pack("{s:s}", "ID", "ASC");
                return;
        }
        *ret_filter =
            json_pack("{s:s}", p->past_cursor ? ">DATE_MODIFY" : ">=DATE_MODIFY", p->cursor);
        *ret_order = json_pack("{s:s, s:s}", "DATE_MODIFY", "ASC", "ID", "ASC");
}

static bool seen(const struct pass *p, const struct b24_deal *d)
{
        return d->modified == p->cursor_s && p->after_id == 0 && !p->past_cursor &&
               has_id(p->seen, p->n_seen, strtoull(d->id, NULL, 10));
}

/* W after a page whose rows up to `last_ok` were all handled: its DATE_MODIFY, but not
 * past the portal's clock at the pass's start. 0 or the store's -errno. */
static int advance_watermark(struct source_b24 *sb, const struct b24_deal *last_ok)
{
        char text[TIME_MAX];
        int64_t at;

        if (!last_ok)
                return 0;
        at = last_ok->modified;
        /* a page of one crowded second is in ID order: none of it may carry W past that
         * second, whatever a portal that ignored "<=DATE_MODIFY" sent */
        if (sb->pass.after_id > 0 && at > sb->pass.cursor_s) {
                at = sb->pass.cursor_s;
                last_ok = NULL;
        }
        if (sb->pass.horizon_s > 0 && at > sb->pass.horizon_s) {
                at = sb->pass.horizon_s;
                iso8601_format_offset(at, sb->offset_s, text, sizeof(text));
        } else {
                snprintf(text, sizeof(text), "%s",
                         last_ok ? last_ok->date_modify : sb->pass.cursor);
        }
        if (at <= sb->watermark_s)
                return 0;
        return save_watermark(sb, text, at);
}

/* The next page's cursor after `d[0..n)` (valid rows, in order) were read; `more`: the
 * portal has rows after them. */
static void page_moves(struct pass *p, const struct b24_deal *d, size_t n, bool more)
{
        const struct b24_deal *last = &d[n - 1];

        if (p->after_id > 0 || (more && d[0].modified == last->modified)) {
                /* a second with more rows than a page: by ID within it, then past it */
                if (p->after_id == 0 && last->modified != p->cursor_s) {
                        snprintf(p->cursor, sizeof(p->cursor), "%s", last->date_modify);
                        p->cursor_s = last->modified;
                }
                p->after_id = more ? (int64_t)strtoll(last->id, NULL, 10) : 0;
                p->past_cursor = !more;
                p->n_seen = 0;
                return;
        }
        /* rows span seconds, so the last one's is later than the cursor: ask again from
         * it, skipping the rows of that second read here */
        snprintf(p->cursor, sizeof(p->cursor), "%s", last->date_modify);
        p->cursor_s = last->modified;
        p->past_cursor = false;
        p->n_seen = 0;
        for (size_t i = 0; i < n; i++)
                if (d[i].modified == p->cursor_s && p->n_seen < PAGE)
                        p->seen[p->n_seen++] = strtoull(d[i].id, NULL, 10);
}

/* When the portal's clock began this pass: its answer's time.start. */
static int64_t portal_now_s(json_t *doc)
{
        json_t *start = json_object_get(json_object_get(doc, "time"), "start");
        double v = json_is_number(start) ? json_number_value(start) : 0;

        return v > 0 && v < 4102444800.0 ? (int64_t)v : 0; /* outside input: plausible only */
}

/* One page of the poll. */
static void poll_page(struct source_b24 *sb)
{
        struct pass *p = &sb->pass;
        enum slot slots[PAGE];
        struct b24_deal d[PAGE];
        struct snapshot_error err;
        const struct b24_deal *last_ok = NULL;
        json_t *filter, *order, *doc, *rows, *row;
        size_t n = 0, i;
        bool more, failed = false;

        page_query(p, &filter, &order);
        if (list_deals(sb, "poll", filter, order, &doc, &rows) < 0) {
                pass_end(sb, false);
                return;
        }
        if (p->pages++ == 0)
                p->horizon_s = portal_now_s(doc);
        more = json_object_get(doc, "next") != NULL;
        json_array_foreach(rows, i, row)
        {
                if (i >= PAGE)
                        break;
                if (b24_deal_read(row, &d[n], &err) < 0) {
                        log_warn("b24.deal_invalid", "field=%s message=\"%s\"", err.field,
                                 err.message);
                        continue;
                }
                slots[n] = SLOT_OK;
                if (!failed && !seen(p, &d[n])) {
                        p->deals++;
                        p->sent += handle(sb, row, &d[n], &slots[n]) > 0;
                }
                failed = failed || slots[n] == SLOT_FAILED;
                n++;
        }
        wait_answers(sb);
        for (i = 0; i < n && slots[i] != SLOT_FAILED; i++)
                last_ok = &d[i];
        if (advance_watermark(sb, last_ok) < 0 || i < n) {
                remote_failed(sb, "poll_store", NULL);
                json_decref(doc);
                pass_end(sb, false);
                return;
        }
        if (n == 0 || (!more && p->after_id == 0)) {
                json_decref(doc);
                pass_end(sb, n > 0 || json_array_size(rows) == 0);
                return;
        }
        page_moves(p, d, n, more);
        json_decref(doc);
}

/* ---- the thread ---------------------------------------------------------------------- */

/* What to do next: 1 for queued ids (taken into `ids`, *ret_n of them), 2 for a poll page, 0 to
 * stop. Waits (lock held) until there is work and the bucket lets a request go. */
static int next_work(struct source_b24 *sb, uint64_t *ids, size_t *ret_n)
{
        struct timespec until;

        pthread_mutex_lock(&sb->lock);
        for (;;) {
                int64_t now = clock_mono_ms(), wake = NEVER;
                bool events = sb->n > 0;
                bool poll = sb->pass.active || sb->poll_due <= now;

                if (sb->stop)
                        break;
                if (sb->pause_until > now) {
                        wake = sb->pause_until;
                } else if (events || poll) {
                        int64_t wait = b24_client_wait_ms(sb->client);
                        if (wait == 0) {
                                int kind = events && (!poll || !sb->events_last) ? 1 : 2;
                                if (kind == 1)
                                        *ret_n = queue_take(sb, ids);
                                sb->events_last = kind == 1;
                                pthread_mutex_unlock(&sb->lock);
                                return kind;
                        }
                        wake = now + wait;
                } else {
                        wake = sb->poll_due;
                }
                if (wake == NEVER) {
                        pthread_cond_wait(&sb->wake, &sb->lock);
                } else {
                        clock_mono_deadline(wake - now, &until);
                        pthread_cond_timedwait(&sb->wake, &sb->lock, &until);
                }
        }
        pthread_mutex_unlock(&sb->lock);
        return 0;
}

static void *run(void *arg)
{
        struct source_b24 *sb = arg;
        uint64_t ids[PAGE];
        size_t n = 0;
        int kind;

        while ((kind = next_work(sb, ids, &n)) != 0) {
                int64_t wait;
                if (!role_hold(&sb->role, sb->store, &wait)) {
                        /* another server reads the portal: hints wait here until this
                         * one takes the role (or are left to that server's poll) */
                        if (kind == 1)
                                queue_return(sb, ids, n);
                        sb->pause_until = clock_mono_ms() + wait;
                        continue;
                }
                if (role_taken(&sb->role)) { /* only ever so in a shared store */
                        b24_client_fill(sb->client); /* the last holder's requests */
                        sb->pass.active = false;     /* its watermark, from the store */
                }
                if (kind == 1) {
                        fetch_events(sb, ids, n);
                        continue;
                }
                if (!sb->pass.active) {
                        if (load_watermark(sb) < 0) {
                                remote_failed(sb, "watermark", NULL);
                                sb->poll_due = sb->pause_until;
                                continue;
                        }
                        pass_begin(sb);
                }
                poll_page(sb);
        }
        return NULL;
}

/* ---- the source's ops ------------------------------------------------------------------ */

static int b24_start(void *ctx, struct intake *in)
{
        struct source_b24 *sb = ctx;
        int r = store_open(sb->cfg->store_path, &sb->store);

        if (r < 0)
                return r;
        sb->in = in;
        sb->poll_due = sb->conf->poll_interval_s > 0 ? clock_mono_ms() : NEVER;
        r = -pthread_create(&sb->thread, NULL, run, sb);
        if (r < 0) {
                sb->store = store_close(sb->store);
                return r;
        }
        sb->running = true;
        log_info("b24.source_started", "events=%s poll_interval_s=%lld",
                 sb->conf->application_token ? "on" : "off", (long long)sb->conf->poll_interval_s);
        return 0;
}

static void b24_stop(void *ctx)
{
        struct source_b24 *sb = ctx;

        pthread_mutex_lock(&sb->lock);
        sb->stop = true;
        pthread_cond_broadcast(&sb->wake);
        pthread_mutex_unlock(&sb->lock);
        if (sb->running) {
                pthread_join(sb->thread, NULL);
                sb->running = false;
        }
}

static void b24_free(void *ctx)
{
        struct source_b24 *sb = ctx;

        b24_stop(sb);
        if (sb->store)
                role_release(&sb->role, sb->store);
        role_destroy(&sb->role);
        sb->store = store_close(sb->store);
        sb->client = b24_client_free(sb->client);
        pthread_mutex_destroy(&sb->lock);
        pthread_cond_destroy(&sb->wake);
        free(sb->queue);
        free(sb);
}

static const struct source_ops b24_ops = {
    .name = "bitrix24",
    .start = b24_start,
    .stop = b24_stop,
    .notify = b24_notify,
    .free = b24_free,
};

int source_bitrix24_new(const struct config *cfg, struct source **ret)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct source_b24 *sb;

        if (!conf)
                return -EINVAL;
        sb = xcalloc(1, sizeof(*sb));
        sb->cfg = cfg;
        sb->conf = conf;
        sb->client = b24_client_new_for(conf, B24_CLIENT_SOURCE);
        if (!sb->client) {
                free(sb);
                return -ENOMEM;
        }
        sb->queue = xcalloc(SOURCE_B24_QUEUE_MAX, sizeof(*sb->queue));
        role_init(&sb->role, "bitrix24.source", cfg->claim_ttl_s * 1000);
        pthread_mutex_init(&sb->lock, NULL);
        clock_cond_init(&sb->wake);
        backoff_rng_seed(&sb->rng, (uint64_t)clock_wall_ms() ^ (uintptr_t)sb);
        *ret = source_new(&b24_ops, sb);
        return 0;
}

const struct source_kind source_bitrix24_kind = {
    .name = "bitrix24",
    .section = &b24_conf_section,
    .create = source_bitrix24_new,
};
