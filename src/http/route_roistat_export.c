/*
 * GET /v1/roistat/export: Roistat's "integration with your CMS" (PULL) protocol
 * (shared/reference/roistat.md §2), answered from the store. Roistat sends `user`,
 * `token` = md5(login . password) and `action`: import_scheme (the status dictionary and
 * the custom fields) or export (orders changed after `date`, in pages of `limit` from
 * `offset`). Each exported order is what roistat_order_json builds for add-orders — the
 * one place that decides an order's Roistat shape, so pushed and pulled orders agree —
 * plus date_update and the visit under both keys Roistat's sources name. Refusals are
 * {"status":"error","message":…}, as Roistat's own module answers. The route has its own
 * read-only use of the store, one request at a time (a store handle is per thread), as
 * route_order.c; without [roistat] export_login and its password it opens nothing and
 * answers 503.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "http/route.h"
#include "model/snapshot.h"
#include "sinks/roistat_conf.h"
#include "sinks/sink_roistat.h"
#include "store/store.h"

#define TOKEN_LEN 32                   /* an MD5 digest in hex */
#define DEFAULT_DAYS 31                /* `date` absent: as Roistat's own module */
#define DEFAULT_LIMIT 1000             /* `limit` absent (Roistat's first call): as the module */
#define LIMIT_MAX 5000
#define OFFSET_MAX 1000000000LL
#define DATE_MAX 253402300799LL        /* 9999-12-31T23:59:59Z */

struct export_state {
        pthread_mutex_t lock;
        struct store *store;       /* NULL: the export is not configured */
        char token[TOKEN_LEN + 1]; /* md5(login . password), lowercase hex: a secret */
};

/* The token Roistat sends: md5(login . password) in lowercase hex, as PHP's md5(). */
static int expected_token(const struct roistat_conf *rc, char ret[TOKEN_LEN + 1])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        int ok;

        if (!ctx)
                return -ENOMEM;
        ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, rc->export_login, strlen(rc->export_login)) == 1 &&
             EVP_DigestUpdate(ctx, rc->export_password, strlen(rc->export_password)) == 1 &&
             EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len * 2 == TOKEN_LEN;
        EVP_MD_CTX_free(ctx);
        for (unsigned i = 0; ok && i < len; i++)
                snprintf(ret + 2 * i, 3, "%02x", digest[i]);
        explicit_bzero(digest, sizeof(digest));
        return ok ? 0 : -ENOSYS; /* MD5 refused (a FIPS-only OpenSSL) */
}

static void export_close(void *state)
{
        struct export_state *st = state;

        store_close(st->store);
        explicit_bzero(st->token, sizeof(st->token));
        pthread_mutex_destroy(&st->lock);
        free(st);
}

static int export_open(const struct http_env *env, void **ret_state)
{
        const struct roistat_conf *rc = roistat_conf_get(env->cfg);
        struct export_state *st = xcalloc(1, sizeof(*st));
        int r = 0;

        pthread_mutex_init(&st->lock, NULL);
        if (rc && rc->export_login && rc->export_password &&
            ((r = expected_token(rc, st->token)) < 0 ||
             (r = store_open(env->cfg->store_path, &st->store)) < 0)) {
                export_close(st);
                return r;
        }
        *ret_state = st;
        return 0;
}

/* {"status":"error","message":…}, the refusal of Roistat's own module. */
static int reply_error(struct http_request *rq, unsigned status, const char *message,
                       unsigned retry_after_s)
{
        json_t *doc = json_pack("{s:s, s:s}", "status", "error", "message", message);
        char *text = json_dumps(doc, JSON_COMPACT);
        int r = http_request_reply(rq, status, text, retry_after_s, NULL);

        free(text);
        json_decref(doc);
        return r;
}

/* Why `user` and `token` are refused, or NULL: user must be the login, and the token
 * md5(login . password), compared in constant time after a length check. The reason
 * names neither (the log line must hold no token, and a `user` may be a mistyped
 * password). */
static const char *refusal(const struct roistat_conf *rc, const struct export_state *st,
                           struct http_request *rq)
{
        const char *user = http_request_arg(rq, "user");
        const char *token = http_request_arg(rq, "token");

        if (!token || !token[0])
                return "no token";
        if (!user || strcmp(user, rc->export_login) != 0)
                return "user is not [roistat] export_login";
        if (strlen(token) != TOKEN_LEN || CRYPTO_memcmp(token, st->token, TOKEN_LEN) != 0)
                return "the token is not md5(login . password)";
        return NULL;
}

/* A query argument that must be a whole number in [min, max]: `def` when absent. 0, or
 * -EINVAL (the caller names it). */
static int number_arg(struct http_request *rq, const char *name, int64_t min, int64_t max,
                      int64_t def, int64_t *ret)
{
        const char *v = http_request_arg(rq, name);
        size_t n;
        long long x;

        if (!v) {
                *ret = def;
                return 0;
        }
        n = strlen(v);
        if (n == 0 || n > 18 || strspn(v, "0123456789") != n)
                return -EINVAL;
        x = strtoll(v, NULL, 10); /* at most 18 digits: no overflow */
        if (x < min || x > max)
                return -EINVAL;
        *ret = x;
        return 0;
}

/* action=import_scheme: the dictionary, in its order, and the custom fields. */
static int import_scheme(const struct roistat_conf *rc, struct http_request *rq)
{
        json_t *statuses = json_array(), *fields = json_array(), *doc;
        const struct roistat_field *table;
        size_t n;
        char *text;
        int r;

        for (size_t i = 0; i < rc->n_statuses; i++)
                json_array_append_new(statuses, json_pack("{s:s, s:s}", "id", rc->statuses[i].id,
                                                           "name", rc->statuses[i].name));
        table = roistat_fields(&n);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(fields, json_pack("{s:s, s:s}", "id", table[i].id, "name",
                                                        table[i].name));
        /* the configured fields ([roistat.fields], [roistat.site …]), each name once */
        for (size_t i = 0; i < rc->n_rules; i++) {
                bool seen = !rc->rules[i].name;
                for (size_t j = 0; !seen && j < n; j++)
                        seen = strcmp(table[j].id, rc->rules[i].name) == 0;
                for (size_t j = 0; !seen && j < i; j++)
                        seen = rc->rules[j].name && strcmp(rc->rules[j].name, rc->rules[i].name) == 0;
                if (!seen)
                        json_array_append_new(fields, json_pack("{s:s, s:s}", "id",
                                                                rc->rules[i].name, "name",
                                                                rc->rules[i].name));
        }
        n = json_array_size(fields);
        doc = json_pack("{s:o, s:o}", "statuses", statuses, "fields", fields);
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!text) /* a status name jansson refused: the configuration checked UTF-8 */
                return reply_error(rq, 500, "the dictionary could not be encoded", 0);
        log_info("roistat.export", "action=import_scheme statuses=%zu fields=%zu",
                 rc->n_statuses, n);
        r = http_request_reply(rq, 200, text, 0, NULL);
        free(text);
        return r;
}

struct page {
        const struct roistat_conf *rc;
        json_t *orders;
        size_t skipped;
};

/* One stored order into the page: as add-orders gets it, plus date_update (when the
 * store accepted its latest snapshot, the clock `date` filters by) and the visit as
 * "visit" too (Roistat's Bitrix module sends "visit", its documented entity says
 * "roistat": roistat.md §2.3). An order that has no Roistat shape is left out and
 * logged; it still counts in total_count. */
static int add_order(void *arg, const struct store_order_view *v)
{
        struct page *pg = arg;
        struct snapshot_error err;
        struct snapshot *s = NULL;
        char why[256];
        json_t *o, *visit;

        if (snapshot_parse(v->json, strlen(v->json), &s, &err) < 0) {
                log_warn("roistat.export_skipped", "order_id=%s reason=\"stored snapshot "
                         "unreadable: %s %s\"", v->order_id, err.field, err.message);
                pg->skipped++;
                return 0;
        }
        o = roistat_order_json(pg->rc, s, why, sizeof(why));
        snapshot_free(s);
        if (!o) {
                log_warn("roistat.export_skipped", "order_id=%s reason=\"%s\"", v->order_id,
                         why);
                pg->skipped++;
                return 0;
        }
        json_object_set_new(o, "date_update", json_integer(v->received_at / 1000));
        visit = json_object_get(o, "roistat");
        if (visit)
                json_object_set(o, "visit", visit);
        json_array_append_new(pg->orders, o);
        return 0;
}

/* action=export: date, limit, offset checked, then one page from the store. */
static int export_orders(const struct roistat_conf *rc, struct export_state *st,
                         struct http_request *rq)
{
        struct page pg = {.rc = rc, .orders = json_array()};
        int64_t date, limit, offset, total = 0;
        json_t *doc;
        char *text;
        int r;

        if (number_arg(rq, "date", 0, DATE_MAX, clock_wall_ms() / 1000 - DEFAULT_DAYS * 86400,
                       &date) < 0) {
                json_decref(pg.orders);
                return reply_error(rq, 400, "date: must be Unix seconds (digits only)", 0);
        }
        if (number_arg(rq, "limit", 1, LIMIT_MAX, DEFAULT_LIMIT, &limit) < 0) {
                json_decref(pg.orders);
                return reply_error(rq, 400, "limit: must be a whole number from 1 to 5000", 0);
        }
        if (number_arg(rq, "offset", 0, OFFSET_MAX, 0, &offset) < 0) {
                json_decref(pg.orders);
                return reply_error(rq, 400, "offset: must be a whole number from 0 to "
                                   "1000000000", 0);
        }
        pthread_mutex_lock(&st->lock);
        r = store_orders_changed(st->store, date * 1000, STORE_BY_FIRST, (size_t)offset, (size_t)limit, add_order,
                                 &pg, &total);
        if (r < 0)
                log_err("roistat.export_failed", "error=\"%s\"", store_errmsg(st->store));
        pthread_mutex_unlock(&st->lock);
        if (r < 0) {
                json_decref(pg.orders);
                return reply_error(rq, 503, "the store is unavailable; try again", 5);
        }
        log_info("roistat.export", "action=export date=%lld offset=%lld limit=%lld orders=%zu "
                 "skipped=%zu total=%lld",
                 (long long)date, (long long)offset, (long long)limit,
                 json_array_size(pg.orders), pg.skipped, (long long)total);
        doc = json_pack("{s:o, s:{s:I, s:I}}", "orders", pg.orders, "pagination", "total_count",
                        (json_int_t)total, "limit", (json_int_t)limit);
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        r = http_request_reply(rq, 200, text, 0, NULL);
        free(text);
        return r;
}

static int export_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        const struct roistat_conf *rc = roistat_conf_get(env->cfg);
        struct export_state *st = state;
        const char *action, *why;

        if (!rc || !st->store)
                return reply_error(rq, 503, "not configured", 0);
        why = refusal(rc, st, rq);
        if (why) {
                log_warn("roistat.export_refused", "reason=\"%s\"", why);
                return reply_error(rq, 401, "incorrect token", 0);
        }
        action = http_request_arg(rq, "action");
        if (action && strcmp(action, "import_scheme") == 0)
                return import_scheme(rc, rq);
        if (action && strcmp(action, "export") == 0)
                return export_orders(rc, st, rq);
        /* the value is not echoed: it is whatever the caller sent */
        return reply_error(rq, 400, action ? "action: must be import_scheme or export"
                                           : "action: required (import_scheme or export)",
                           0);
}

const struct http_route route_roistat_export = {
    .methods = "GET, HEAD",
    .path = "/v1/roistat/export",
    .body = HTTP_BODY_NONE,
    .open = export_open,
    .close = export_close,
    .handle = export_handle,
};
