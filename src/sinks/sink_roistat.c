/*
 * Roistat: add-orders is an upsert keyed by order id, so any re-send is safe and a
 * batch that failed as a whole is simply sent again. The answer is read with
 * `Use-Http-Code: 1`, so HTTP statuses mean what they say:
 *   transport error, 429, 5xx → the remote is unwell: pause the sink, retry later
 *   401/403                   → credentials refused: pause long, log loudly
 *   other 4xx                 → this data is refused: isolate the order (re-send the batch
 *                               one by one) and dead-letter only the one at fault
 *   200 + skipped_by_waiting_visit_info → Roistat has not seen the visit yet: re-send later
 * The answer's counters are per batch, not per order, so where a counter says "some were
 * skipped" the batch is re-sent one order at a time to learn which. That isolation stops
 * at the first answer that is not about the order's own data (the remote is unwell: the
 * rest would only wait out their timeouts one by one), and at a stop of the daemon.
 *
 * The dictionary sent with set-statuses is remembered by its hash in meta
 * "roistat.statuses_sha256", written through the dispatcher's `writes`.
 */
#include "sinks/sink_roistat.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "base/clock.h"
#include "http/client.h"
#include "base/log.h"
#include "model/money.h"
#include "base/ratelimit.h"
#include "base/xalloc.h"

#define MAX_ANSWER (1024 * 1024)
#define STATUSES_KEY "roistat.statuses_sha256"

struct roistat {
        struct sink_ops ops;
        const struct config *cfg;
        const struct roistat_conf *conf; /* [roistat] */
        struct http_client *http;
        struct ratelimit rl;
        char *statuses_body;  /* canonical set-statuses body */
        char statuses_hash[65];
        bool statuses_sent;
        char url_orders[1200], url_statuses[1200];
        char header_key[4200];
        atomic_bool stopping; /* set by roistat_stop from another thread */
};

json_t *roistat_statuses_json(const struct roistat_conf *conf)
{
        json_t *arr = json_array();

        for (size_t i = 0; i < conf->n_statuses; i++)
                /* set-statuses replaces the whole dictionary: a status left out would fall
                 * into "не учитывается", so one that cannot be encoded fails them all */
                if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id",
                                                         conf->statuses[i].id, "name",
                                                         conf->statuses[i].name, "type",
                                                         conf->statuses[i].type)) < 0) {
                        json_decref(arr);
                        return NULL;
                }
        return arr;
}

json_t *roistat_order_json(const struct roistat_conf *conf, const struct snapshot *s, char *why,
                           size_t why_size)
{
        const char *status = status_map_lookup(&conf->map, s->status, s->canceled, s->paid);
        char price[32], name[300];
        json_t *o, *fields;
        bool ok;

        if (!status) {
                snprintf(why, why_size, "site status \"%s\" has no entry in [roistat.map]",
                         s->status);
                return NULL;
        }
        /* "cancelled" is whatever maps to a status of type canceled: the flag, or a
         * status code such as C */
        const struct roistat_status *rs = roistat_conf_status(conf, status);
        if (conf->canceled_price_zero && (s->canceled ||
                                           (rs && strcmp(rs->type, "canceled") == 0)))
                snprintf(price, sizeof(price), "0");
        else
                money_format(s->price_minor, price, sizeof(price));
        snprintf(name, sizeof(name), "Order %s", s->account_number);
        /* jansson refuses only a text that is not UTF-8 (its allocations abort on OOM):
         * none is expected (snapshot texts were parsed as JSON, map values are ids), but
         * an order is never sent with a member missing */
        o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", s->order_id, "name", name,
                      "date_create", (json_int_t)s->created_at, "status", status, "price", price);
        ok = o != NULL;
        if (s->roistat_visit)
                ok = json_object_set_new(o, "roistat", json_string(s->roistat_visit)) == 0 && ok;
        if (s->has_cost) {
                money_format(s->cost_minor, price, sizeof(price));
                ok = json_object_set_new(o, "cost", json_string(price)) == 0 && ok;
        }
        fields = json_pack("{s:s, s:s}", "currency", s->currency, "account_number",
                           s->account_number);
        if (s->buyer.name)
                ok = json_object_set_new(fields, "buyer_name", json_string(s->buyer.name)) == 0 &&
                     ok;
        if (s->buyer.phone)
                ok = json_object_set_new(fields, "buyer_phone", json_string(s->buyer.phone)) ==
                             0 &&
                     ok;
        if (s->buyer.email)
                ok = json_object_set_new(fields, "buyer_email", json_string(s->buyer.email)) ==
                             0 &&
                     ok;
        if (s->buyer.company)
                ok = json_object_set_new(fields, "company", json_string(s->buyer.company)) == 0 &&
                     ok;
        if (s->buyer.inn)
                ok = json_object_set_new(fields, "inn", json_string(s->buyer.inn)) == 0 && ok;
        ok = json_object_set_new(o, "fields", fields) == 0 && ok;
        if (!ok) {
                json_decref(o);
                snprintf(why, why_size, "the order could not be encoded: a text is not "
                         "valid UTF-8");
                return NULL;
        }
        return o;
}

/* POST with the client-side rate limit. */
static int post(struct roistat *r, const char *url, const char *body, struct http_response *ret)
{
        const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                                 "Use-Http-Code: 1", r->header_key, NULL};

        ratelimit_acquire(&r->rl);
        return http_client_post(r->http, url, headers, body, strlen(body), ret);
}

static int64_t counter(json_t *doc, const char *key)
{
        json_t *v = json_object_get(doc, key);
        if (json_is_integer(v))
                return json_integer_value(v);
        if (json_is_string(v))
                return strtoll(json_string_value(v), NULL, 10);
        return 0;
}

int roistat_answer_parse(const char *body, size_t len, struct roistat_answer *ret)
{
        json_t *doc = json_loadb(body, len, 0, NULL);
        const char *status, *code, *desc;

        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(doc)) {
                json_decref(doc);
                return -EINVAL;
        }
        status = json_string_value(json_object_get(doc, "status"));
        ret->success = status && strcmp(status, "success") == 0;
        ret->waiting_visit = counter(doc, "skipped_by_waiting_visit_info");
        ret->invalid_format = counter(doc, "skipped_by_invalid_format");
        ret->internal_error = counter(doc, "skipped_by_internal_error");
        code = json_string_value(json_object_get(doc, "error"));
        /* the docs name the field "message"; live projects fill "description" */
        desc = json_string_value(json_object_get(doc, "description"));
        if (!desc)
                desc = json_string_value(json_object_get(doc, "message"));
        snprintf(ret->error, sizeof(ret->error), "%s", code ? code : "");
        snprintf(ret->description, sizeof(ret->description), "%s", desc ? desc : "");
        json_decref(doc);
        return 0;
}

/* "HTTP 401 authentication_failed: …" or "transport: …", for logs and dead letters. */
static void describe(const struct http_response *resp, int rc, char *buf, size_t size)
{
        struct roistat_answer a;

        if (rc < 0) {
                snprintf(buf, size, "transport: %s", resp->error);
                return;
        }
        roistat_answer_parse(resp->body, resp->len, &a);
        snprintf(buf, size, "HTTP %ld%s%s%s%s", resp->status, a.error[0] ? " " : "", a.error,
                 a.description[0] ? ": " : "", a.description);
}

/* Classifies an answer that is not a 200 success. */
static int classify_failure(const struct http_response *resp, int rc, char *detail,
                            size_t size, int64_t *retry_after_ms)
{
        describe(resp, rc, detail, size);
        *retry_after_ms = resp->retry_after_s > 0 ? resp->retry_after_s * 1000 : 0;
        if (rc < 0 || resp->status == 429 || resp->status >= 500 || resp->status == 408)
                return -EAGAIN;
        if (resp->status == 401 || resp->status == 403 || resp->status == 402)
                return -EACCES;
        return 0; /* a 4xx about the data: the caller decides per order */
}

/* Sends the dictionary unless Roistat has it: 0, -EAGAIN/-EACCES with out->detail, or
 * -EIO when the store could not say whether it was sent (nothing is sent then). */
static int ensure_statuses(struct roistat *r, struct store *store, struct store_writes *writes,
                           struct sink_outcome *out)
{
        struct http_response resp;
        const char *pending;
        char *stored = NULL;
        int rc, st;

        if (r->statuses_sent)
                return 0;
        pending = store_writes_find_meta(writes, STATUSES_KEY);
        rc = pending ? 0 : store_meta_get(store, STATUSES_KEY, &stored);
        if (rc < 0 && rc != -ENOENT) {
                snprintf(out->detail, sizeof(out->detail),
                         "not sent: the store failed reading %s (%s)", STATUSES_KEY,
                         store_errmsg(store));
                return -EIO;
        }
        if (rc == 0 && strcmp(pending ? pending : stored, r->statuses_hash) == 0) {
                free(stored);
                r->statuses_sent = true;
                return 0;
        }
        free(stored);
        rc = post(r, r->url_statuses, r->statuses_body, &resp);
        if (rc == 0 && resp.status == 200) {
                store_writes_meta(writes, STATUSES_KEY, r->statuses_hash, false);
                r->statuses_sent = true;
                log_info("roistat.statuses_set", "count=%zu", r->conf->n_statuses);
                http_response_clear(&resp);
                return 0;
        }
        st = classify_failure(&resp, rc, out->detail, sizeof(out->detail), &out->retry_after_ms);
        log_err("roistat.statuses_failed", "detail=\"%s\"", out->detail);
        http_response_clear(&resp);
        return st == 0 ? -EAGAIN : st;
}

static int send_orders(struct roistat *r, const struct store_work *works, json_t *orders,
                       const size_t *idx, size_t n, struct sink_outcome *out);

/* A refused batch, re-sent one order at a time to find the order at fault (upserts, so
 * the re-sends are harmless). Each order keeps its own call's verdict. The first call
 * whose answer is not about that order's data — transport failure, timeout, 5xx, 429,
 * refused key — ends the isolation: the remote is unwell, and the remaining orders (not
 * sent again) are TEMPFAIL with that reason; the call's status is returned, so the sink
 * pauses. A stop of the daemon ends it too (-ECANCELED), the remaining orders TEMPFAIL. */
static int isolate(struct roistat *r, const struct store_work *works, json_t *orders,
                   const size_t *idx, size_t n, struct sink_outcome *out)
{
        for (size_t i = 0; i < n; i++) {
                json_t *one;
                int st;

                if (atomic_load(&r->stopping)) {
                        for (; i < n; i++) {
                                out[idx[i]].kind = STORE_TEMPFAIL;
                                snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail),
                                         "not sent: the daemon is stopping");
                        }
                        return -ECANCELED;
                }
                one = json_array();
                /* an element of `orders`: fails only on OOM, which aborts */
                json_array_append(one, json_array_get(orders, i));
                st = send_orders(r, works, one, &idx[i], 1, out);
                json_decref(one);
                if (st < 0) {
                        char why[sizeof(out->detail)];
                        snprintf(why, sizeof(why), "%s", out[idx[i]].detail);
                        for (size_t j = i + 1; j < n; j++) {
                                struct sink_outcome *o = &out[idx[j]];
                                o->kind = STORE_TEMPFAIL;
                                o->retry_after_ms = out[idx[i]].retry_after_ms;
                                o->uncertain = false; /* not sent again */
                                snprintf(o->detail, sizeof(o->detail),
                                         "not sent: finding the order at fault in a refused "
                                         "batch stopped at %s", why);
                        }
                        return st;
                }
        }
        return 0;
}

/* Sends `n` prepared orders (array `orders`, indexes `idx` into works/out). Returns 0
 * with every order's verdict, -EAGAIN/-EACCES (the remote failed as a whole; the orders
 * are TEMPFAIL with the reason) or -ECANCELED (stopped while finding a refused order). */
static int send_orders(struct roistat *r, const struct store_work *works, json_t *orders,
                       const size_t *idx, size_t n, struct sink_outcome *out)
{
        struct http_response resp;
        char detail[256];
        int64_t retry_after = 0;
        char *body;
        int rc, st = 0;

        /* an array of objects built by roistat_order_json: json_dumps fails only on OOM,
         * which aborts; still, nothing is sent without a body */
        body = json_dumps(orders, JSON_COMPACT);
        if (!body) {
                for (size_t i = 0; i < n; i++) {
                        out[idx[i]].kind = STORE_TEMPFAIL;
                        snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail),
                                 "not sent: the request could not be encoded");
                }
                return 0;
        }
        rc = post(r, r->url_orders, body, &resp);
        free(body);

        if (rc == 0 && resp.status == 200) {
                struct roistat_answer a;
                if (roistat_answer_parse(resp.body, resp.len, &a) < 0 || !a.success) {
                        describe(&resp, rc, detail, sizeof(detail));
                        for (size_t i = 0; i < n; i++) {
                                out[idx[i]].kind = STORE_TEMPFAIL;
                                snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail),
                                         "unexpected answer: %s", detail);
                        }
                        st = -EAGAIN;
                        goto out;
                }
                int64_t waiting = a.waiting_visit;
                int64_t invalid = a.invalid_format;
                int64_t internal = a.internal_error;
                if (n > 1 && (invalid > 0 || internal > 0)) {
                        /* learn which order it was */
                        st = isolate(r, works, orders, idx, n, out);
                        goto out;
                }
                for (size_t i = 0; i < n; i++) {
                        struct sink_outcome *o = &out[idx[i]];
                        const struct store_work *w = &works[idx[i]];
                        bool has_visit = json_object_get(json_array_get(orders, i), "roistat");
                        if (invalid > 0) {
                                o->kind = STORE_PERMFAIL;
                                snprintf(o->detail, sizeof(o->detail),
                                         "Roistat skipped it: skipped_by_invalid_format");
                        } else if (internal > 0) {
                                o->kind = STORE_TEMPFAIL;
                                snprintf(o->detail, sizeof(o->detail),
                                         "Roistat skipped it: skipped_by_internal_error");
                        } else if (waiting > 0 && has_visit &&
                                   w->waits < r->cfg->visit_wait_max) {
                                o->kind = STORE_WAITING;
                                snprintf(o->detail, sizeof(o->detail),
                                         "Roistat has not seen visit yet "
                                         "(skipped_by_waiting_visit_info), wait %lld of %lld",
                                         (long long)w->waits + 1,
                                         (long long)r->cfg->visit_wait_max);
                        } else {
                                o->kind = STORE_OK;
                                o->detail[0] = '\0';
                        }
                }
                goto out;
        }

        st = classify_failure(&resp, rc, detail, sizeof(detail), &retry_after);
        if (st == 0 && n > 1) {
                /* a 4xx about the data: find the order at fault */
                st = isolate(r, works, orders, idx, n, out);
                goto out;
        }
        if (st == -EAGAIN && resp.status == 429)
                ratelimit_fill(&r->rl, clock_mono_ms());
        for (size_t i = 0; i < n; i++) {
                out[idx[i]].kind = st == 0 ? STORE_PERMFAIL : STORE_TEMPFAIL;
                out[idx[i]].retry_after_ms = retry_after;
                /* sent, and no answer: Roistat may apply it yet (a refused connection was
                 * never sent) */
                out[idx[i]].uncertain = rc < 0 && rc != -ECONNREFUSED;
                snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail), "%s", detail);
        }
out:
        http_response_clear(&resp);
        return st;
}

static int deliver(void *ctx, struct store *store, struct store_writes *writes,
                   const struct store_work *works, size_t n, struct sink_outcome *out)
{
        struct roistat *r = ctx;
        json_t *orders = json_array();
        size_t *idx = xcalloc(n, sizeof(*idx)), m = 0;
        int st;

        if (atomic_load(&r->stopping)) {
                for (size_t i = 0; i < n; i++) {
                        out[i].kind = STORE_TEMPFAIL;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "not sent: the daemon is stopping");
                }
                st = -ECANCELED;
                goto out;
        }
        st = ensure_statuses(r, store, writes, &out[0]);
        if (st != 0) {
                for (size_t i = 1; i < n; i++)
                        out[i] = out[0];
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct snapshot_error err;
                struct snapshot *s = NULL;
                json_t *o;

                if (snapshot_parse(works[i].json, strlen(works[i].json), &s, &err) < 0) {
                        out[i].kind = STORE_PERMFAIL;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "stored snapshot unreadable: %s %s", err.field, err.message);
                        continue;
                }
                o = roistat_order_json(r->conf, s, out[i].detail, sizeof(out[i].detail));
                snapshot_free(s);
                if (!o) {
                        out[i].kind = STORE_PERMFAIL;
                        continue;
                }
                /* an object into an array: fails only on OOM, which aborts */
                json_array_append_new(orders, o);
                idx[m++] = i;
        }
        if (m > 0)
                st = send_orders(r, works, orders, idx, m, out);
out:
        json_decref(orders);
        free(idx);
        return st;
}

static void roistat_stop(void *ctx)
{
        struct roistat *r = ctx;

        atomic_store(&r->stopping, true);
}

static void roistat_free(void *ctx)
{
        struct roistat *r = ctx;

        if (!r)
                return;
        http_client_free(r->http);
        free(r->statuses_body);
        explicit_bzero(r->header_key, sizeof(r->header_key));
        free(r);
}

static const struct sink_ops roistat_ops = {
        .name = "roistat",
        .deliver = deliver,
        .stop = roistat_stop,
        .free = roistat_free,
};

int sink_roistat_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx)
{
        const struct roistat_conf *conf = roistat_conf_get(cfg);
        struct roistat *r;
        unsigned char digest[32];
        unsigned int dlen = 0;
        json_t *st;

        if (!conf)
                return -EINVAL; /* not enabled */
        r = xcalloc(1, sizeof(*r));
        r->cfg = cfg;
        r->conf = conf;
        /* add-orders is an upsert: a silent re-send on a reused connection is harmless */
        r->http = http_client_new(conf->timeout_ms, MAX_ANSWER, true);
        if (!r->http) {
                free(r);
                return -ENOMEM;
        }
        /* Roistat counts requests per rolling second: no burst, evenly spaced, 10% under */
        ratelimit_init(&r->rl, conf->rate, 1, 10);
        snprintf(r->url_orders, sizeof(r->url_orders), "%s/project/add-orders?project=%s",
                 conf->url, conf->project);
        snprintf(r->url_statuses, sizeof(r->url_statuses), "%s/project/set-statuses?project=%s",
                 conf->url, conf->project);
        snprintf(r->header_key, sizeof(r->header_key), "Api-key: %s", conf->api_key);
        st = roistat_statuses_json(conf);
        r->statuses_body = st ? json_dumps(st, JSON_COMPACT) : NULL;
        json_decref(st);
        if (!r->statuses_body) {
                /* a status that cannot be encoded would be left out of set-statuses */
                http_client_free(r->http);
                free(r);
                return -EINVAL;
        }
        atomic_init(&r->stopping, false);
        EVP_Digest(r->statuses_body, strlen(r->statuses_body), digest, &dlen, EVP_sha256(), NULL);
        for (unsigned i = 0; i < 32; i++)
                snprintf(r->statuses_hash + 2 * i, 3, "%02x", digest[i]);
        r->ops = roistat_ops;
        r->ops.batch_max = (size_t)conf->batch_size;
        *ret_ops = &r->ops;
        *ret_ctx = r;
        return 0;
}
