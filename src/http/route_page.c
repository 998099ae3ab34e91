/*
 * The operator's status page, behind the admin token (http/auth.h; a browser logs in with
 * HTTP Basic, any user, the token as the password):
 *   GET /             each sink's queue, paused sinks, dead letters with a Retry button
 *   GET /?order=ID    the same, and that order's snapshots, deliveries and attempts
 *   POST /retry       the Retry button (order, sink, csrf): the dead delivery back to
 *                     pending, as `orderbridge retry --sink S ID` does, then 303 to
 *                     /?order=ID
 * Two routes, one concept: the form and the page it belongs to. Each route reads the
 * store through a handle of its own, one request at a time (the store's handles are per
 * thread); the running sinks' pauses come from sinkstate. The markup is page_html.c's.
 * Every answer forbids scripts, frames, foreign forms and caching, and sends no Referer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "http/auth.h"
#include "http/form.h"
#include "http/page_html.h"
#include "http/route.h"
#include "model/snapshot.h"
#include "queue/sinkstate.h"
#include "sinks/registry.h"
#include "store/store.h"

#define PAGE_MAX (4u << 20) /* a page past this is a bug: answered 500, not cut */
#define DEAD_SHOWN 100      /* the newest dead letters listed; the total is shown too */
#define SINK_NAME_MAX 31

static const char *const PAGE_HEADERS[] = {
    "Content-Security-Policy",
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options",
    "nosniff",
    "Referrer-Policy",
    "no-referrer",
    NULL,
};

static int reply_html(struct http_request *rq, unsigned status, struct buf *b)
{
        int r = http_request_reply_type(rq, status, "text/html; charset=utf-8", b->data ? b->data : "",
                                        b->len, PAGE_HEADERS);

        buf_free(b);
        return r;
}

/* An error page: "`field`: `message`" (field may be NULL). */
static int reply_error(struct http_request *rq, unsigned status, const char *field,
                       const char *message)
{
        struct buf b;

        buf_init(&b, PAGE_MAX);
        page_html_error(&b, status, field, message);
        return reply_html(rq, status, &b);
}

/* Whether `id` may be an order id: the store's rule, and the page's bound. */
static bool order_id_valid(const char *id)
{
        size_t n = strlen(id);

        return n > 0 && n <= SNAPSHOT_ID_MAX && snapshot_id_chars(id);
}

#define ORDER_ID_RULE "an order id is 1 to 64 letters, digits, '-' and '_'"

/* ---- GET / ---- */

static int dead_take(void *arg, const struct store_dead_view *d)
{
        struct page_view *v = arg;
        struct page_dead *to = &v->dead[v->n_dead++];

        to->sink = xstrdup(d->sink);
        to->order_id = xstrdup(d->order_id);
        to->reason = xstrdup(d->reason ? d->reason : "");
        to->rev = d->rev;
        to->at = d->at;
        to->attempts = d->attempts;
        return 0;
}

/* Each sink kind that runs here or holds work, with its counts and its loop's state. */
static int read_sinks(struct store *st, struct page_view *v)
{
        for (size_t i = 0; i < sink_registry_count() && v->n_sinks < SINK_KINDS_MAX; i++) {
                struct page_sink *s = &v->sinks[v->n_sinks];
                int64_t held = 0, n;
                int r;

                s->name = sink_registry_get(i)->name;
                if ((r = store_counts(st, s->name, &s->counts)) < 0)
                        return r;
                for (size_t j = 0; store_counts_nth(&s->counts, j, &n); j++)
                        held += n;
                s->running = sinkstate_get(s->name, &s->state) == 0;
                if (s->running || held > 0)
                        v->n_sinks++;
        }
        return 0;
}

/* Everything the page shows, read under the reader's lock: 0, -ENOENT (the order asked
 * for is unknown: the rest is read), or another -errno. */
static int read_view(struct http_store_reader *rd, struct page_view *v)
{
        char *report = NULL;
        int r;

        v->dead = xcalloc(DEAD_SHOWN, sizeof(*v->dead));
        pthread_mutex_lock(&rd->lock);
        r = read_sinks(rd->store, v);
        if (r == 0)
                r = store_dead_list(rd->store, NULL, DEAD_SHOWN, dead_take, v, &v->dead_total);
        if (r == 0 && v->order_id)
                r = store_order_report(rd->store, v->order_id, &report);
        pthread_mutex_unlock(&rd->lock);
        if (report) {
                v->order = json_loads(report, 0, NULL);
                free(report);
                if (!v->order)
                        r = -EIO;
        }
        return r;
}

static void view_clear(struct page_view *v)
{
        for (size_t i = 0; i < v->n_dead; i++) {
                free(v->dead[i].sink);
                free(v->dead[i].order_id);
                free(v->dead[i].reason);
        }
        free(v->dead);
        json_decref(v->order);
}

static int page_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        struct http_store_reader *rd = state;
        struct page_view v = {.now_ms = clock_wall_ms()};
        const char *order_id = http_request_arg(rq, "order");
        struct buf b;
        int r;

        if (!http_auth_admin(env->cfg, rq))
                return 0;
        if (order_id && *order_id) {
                if (!order_id_valid(order_id))
                        return reply_error(rq, 400, "order", ORDER_ID_RULE);
                v.order_id = order_id;
        }
        http_csrf_token(env->cfg, v.csrf);
        r = read_view(rd, &v);
        if (r < 0 && r != -ENOENT) {
                log_err("page.store_failed", "error=\"%s\"", strerror(-r));
                view_clear(&v);
                return reply_error(rq, 503, NULL, "the store cannot be read; try again");
        }
        buf_init(&b, PAGE_MAX);
        if (page_html_render(&v, &b) < 0) {
                buf_free(&b);
                view_clear(&v);
                log_err("page.too_big", "max=%u", PAGE_MAX);
                return reply_error(rq, 500, NULL, "the page outgrew its buffer");
        }
        view_clear(&v);
        return reply_html(rq, r == -ENOENT ? 404 : 200, &b);
}

const struct http_route route_page = {
    .methods = "GET, HEAD",
    .path = "/",
    .body = HTTP_BODY_NONE,
    .open = http_store_reader_open,
    .close = http_store_reader_close,
    .handle = page_handle,
};

/* ---- POST /retry ---- */

/* A form field: 0 and *ret (caller frees), or answers 400 naming it and returns -1. */
static int form_field(struct http_request *rq, const char *name, size_t max, char **ret)
{
        size_t len;
        const char *body = http_request_body(rq, &len);
        char msg[96];
        int r = http_form_value(body, len, name, max, ret);

        if (r == 0)
                return 0;
        if (r == -ENOENT)
                snprintf(msg, sizeof(msg), "required");
        else if (r == -E2BIG)
                snprintf(msg, sizeof(msg), "longer than %zu bytes", max);
        else
                snprintf(msg, sizeof(msg), "must not contain NUL characters");
        reply_error(rq, 400, name, msg);
        return -1;
}

/* The CSRF token first: a form from another site learns nothing about the rest. */
static bool csrf_ok(const struct http_env *env, struct http_request *rq)
{
        size_t len;
        const char *body = http_request_body(rq, &len);
        char *token = NULL;
        bool ok = http_form_value(body, len, "csrf", HTTP_CSRF_TOKEN_LEN, &token) == 0 &&
                  http_csrf_ok(env->cfg, token);

        free(token);
        if (!ok) {
                log_warn("page.csrf_refused", "what=\"POST /retry without this process's form "
                                              "token\"");
                reply_error(rq, 403, "csrf",
                            "the form's token is missing or out of date (the daemon restarted?): "
                            "reload the page and try again");
        }
        return ok;
}

static int retry_run(const struct http_env *env, struct http_store_reader *rd,
                     struct http_request *rq, const char *order_id, const char *sink)
{
        char location[sizeof("/?order=") + SNAPSHOT_ID_MAX];
        const char *headers[sizeof(PAGE_HEADERS) / sizeof(PAGE_HEADERS[0]) + 2];
        struct buf b;
        size_t n = 0;
        int r;

        pthread_mutex_lock(&rd->lock);
        r = store_retry(rd->store, sink, order_id, clock_wall_ms());
        if (r < 0)
                log_err("page.retry_failed", "order_id=%s sink=%s error=\"%s\"", order_id, sink,
                        store_errmsg(rd->store));
        pthread_mutex_unlock(&rd->lock);
        if (r < 0)
                return reply_error(rq, 503, NULL, "the store cannot be written; try again");
        log_info("page.retry", "order_id=%s sink=%s moved=%d", order_id, sink, r);
        if (r > 0)
                http_env_wake(env, sink);
        snprintf(location, sizeof(location), "/?order=%s", order_id);
        headers[n++] = "Location";
        headers[n++] = location;
        for (size_t i = 0; PAGE_HEADERS[i]; i++)
                headers[n++] = PAGE_HEADERS[i];
        headers[n] = NULL;
        buf_init(&b, PAGE_MAX);
        buf_printf(&b, "<!DOCTYPE html>\n<p><a href=\"%s\">See the order</a></p>\n", location);
        r = http_request_reply_type(rq, 303, "text/html; charset=utf-8", b.data, b.len, headers);
        buf_free(&b);
        return r;
}

static int retry_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        char *order_id = NULL, *sink = NULL, known[160];
        int r = 0;

        if (!http_auth_admin(env->cfg, rq) || !csrf_ok(env, rq))
                return 0;
        if (form_field(rq, "order", SNAPSHOT_ID_MAX, &order_id) < 0)
                goto out;
        if (!order_id_valid(order_id)) {
                r = reply_error(rq, 400, "order", ORDER_ID_RULE);
                goto out;
        }
        if (form_field(rq, "sink", SINK_NAME_MAX, &sink) < 0)
                goto out;
        if (!sink_registry_find(sink)) {
                char msg[200];
                sink_registry_names(known, sizeof(known));
                snprintf(msg, sizeof(msg), "no such sink (known: %s)", known);
                r = reply_error(rq, 400, "sink", msg);
                goto out;
        }
        r = retry_run(env, state, rq, order_id, sink);
out:
        free(order_id);
        free(sink);
        return r;
}

const struct http_route route_page_retry = {
    .methods = "POST",
    .path = "/retry",
    .body = HTTP_BODY_FORM,
    .open = http_store_reader_open,
    .close = http_store_reader_close,
    .handle = retry_handle,
};
