/*
 * Bitrix24 REST over libcurl. Requests are JSON bodies (the portal accepts them on
 * *.json methods); answers are the documented envelope: {"result":…, "time":{…}} or
 * {"error":"CODE","error_description":"…"}, with CRM's own HTTP 400 and an empty code.
 * Every answer's time.operating is tracked: the portal blocks a method once its summed
 * run time exceeds the limit, and operating_reset_at says until when.
 */
#include "sinks/b24_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "base/clock.h"
#include "http/client.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "base/xalloc.h"

#define MAX_ANSWER (8 * 1024 * 1024)

struct b24_client {
        struct http_client *http;
        struct ratelimit rl;
        char *base; /* secret */
        double max_operating;
        int64_t operating_reset_at_ms;
};

void b24_client_bucket(const struct b24_conf *conf, enum b24_client_role role,
                       struct ratelimit *ret)
{
        /* one unit of the portal's burst and 5 % of its rate are left unused, so that
         * network jitter (the portal times a request on arrival) never tips it over */
        int64_t burst = conf->burst > 1 ? conf->burst - 1 : 1;
        int64_t source_burst = burst * B24_SOURCE_SHARE_PCT / 100;

        if (source_burst < 1)
                source_burst = 1;
        if (!b24_conf_source_active(conf)) {
                ratelimit_init(ret, conf->rate, burst, 5);
        } else if (role == B24_CLIENT_SOURCE) {
                ratelimit_init(ret, conf->rate, source_burst, 5);
                ratelimit_share(ret, B24_SOURCE_SHARE_PCT);
        } else {
                ratelimit_init(ret, conf->rate, burst > source_burst ? burst - source_burst : 1, 5);
                ratelimit_share(ret, 100 - B24_SOURCE_SHARE_PCT);
        }
}

struct b24_client *b24_client_new(const struct b24_conf *conf)
{
        return b24_client_new_for(conf, B24_CLIENT_SINK);
}

int64_t b24_client_wait_ms(struct b24_client *c)
{
        return ratelimit_wait_ms(&c->rl, clock_mono_ms());
}

void b24_client_fill(struct b24_client *c)
{
        ratelimit_fill(&c->rl, clock_mono_ms());
}

struct b24_client *b24_client_new_for(const struct b24_conf *conf, enum b24_client_role role)
{
        struct b24_client *c = xcalloc(1, sizeof(*c));

        /* no connection reuse: on a kept-alive connection that dies before the answer,
         * libcurl silently sends the POST again, and a deal create sent twice unseen
         * would defeat the one-deal-per-order check */
        c->http = http_client_new(conf->timeout_ms, MAX_ANSWER, false);
        if (!c->http) {
                free(c);
                return NULL;
        }
        b24_client_bucket(conf, role, &c->rl);
        c->base = xstrdup(conf->webhook_url);
        return c;
}

void b24_client_measure(struct b24_client *c, const char *sink)
{
        http_client_measure(c->http, sink);
        ratelimit_publish(&c->rl, sink);
}

struct b24_client *b24_client_free(struct b24_client *c)
{
        if (!c)
                return NULL;
        http_client_free(c->http);
        explicit_bzero(c->base, strlen(c->base));
        free(c->base);
        free(c);
        return NULL;
}

double b24_client_max_operating(const struct b24_client *c)
{
        return c->max_operating;
}

int b24_classify_error(const char *code, long http_status)
{
        static const char *const auth[] = {
                "expired_token",   "invalid_token",     "INVALID_CREDENTIALS",
                "NO_AUTH_FOUND",   "WRONG_AUTH_TYPE",   "ACCESS_DENIED",
                "insufficient_scope", "PAYMENT_REQUIRED", "user_access_error",
                "authorization_error", "INVALID_REQUEST_AUTH"};
        static const char *const later[] = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT",
                                            "INTERNAL_SERVER_ERROR", "ERROR_INTERNAL",
                                            "OVERLOAD_LIMIT", "PORTAL_DELETED_TEMPORARILY"};

        for (size_t i = 0; code && i < sizeof(auth) / sizeof(auth[0]); i++)
                if (strcmp(code, auth[i]) == 0)
                        return -EACCES;
        for (size_t i = 0; code && i < sizeof(later) / sizeof(later[0]); i++)
                if (strcmp(code, later[i]) == 0)
                        return -EAGAIN;
        if (http_status == 401)
                return -EACCES;
        if (http_status >= 500 || http_status == 429 || http_status == 408)
                return -EAGAIN;
        return -EINVAL;
}

int64_t b24_reset_at_ms(json_t *time_block)
{
        json_t *v = json_object_get(time_block, "operating_reset_at");
        double at = json_is_number(v) ? json_number_value(v) : 0;

        /* a portal's answer is outside input: only a plausible Unix time counts */
        return at > 0 && at < 4102444800.0 ? (int64_t)(at * 1000) : 0;
}

int b24_answer_parse(const char *body, size_t len, long http_status, json_t **ret_doc,
                     struct b24_error *err)
{
        json_t *doc = json_loadb(body, len, 0, NULL);

        *ret_doc = NULL;
        err->http_status = http_status;
        if (http_status == 200 && json_is_object(doc) && json_object_get(doc, "result")) {
                *ret_doc = doc;
                return 0;
        }
        if (json_is_object(doc) && json_is_string(json_object_get(doc, "error"))) {
                const char *desc = json_string_value(json_object_get(doc, "error_description"));
                snprintf(err->code, sizeof(err->code), "%s",
                         json_string_value(json_object_get(doc, "error")));
                snprintf(err->description, sizeof(err->description), "%s", desc ? desc : "");
        } else {
                snprintf(err->code, sizeof(err->code), "HTTP_%ld", http_status);
                snprintf(err->description, sizeof(err->description),
                         "the portal answered HTTP %ld without a REST envelope", http_status);
        }
        *ret_doc = doc; /* kept for its "time" block; NULL when not JSON */
        return b24_classify_error(err->code, http_status);
}

void b24_batch_sections(json_t *doc, json_t **ret_result, json_t **ret_errors)
{
        json_t *res = json_object_get(doc, "result");
        json_t *r = json_object_get(res, "result"), *e = json_object_get(res, "result_error");

        /* the portal answers [] instead of {} for an empty section */
        *ret_result = json_is_object(r) ? r : NULL;
        *ret_errors = json_is_object(e) ? e : NULL;
}

int b24_call(struct b24_client *c, const char *method, json_t *params, json_t **ret_doc,
             struct b24_error *err)
{
        const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                                 NULL};
        struct http_response resp;
        char url[2048];
        char *body;
        json_t *doc, *t;
        int rc, st;

        memset(err, 0, sizeof(*err));
        doc = NULL;
        *ret_doc = NULL;
        body = params ? json_dumps(params, JSON_COMPACT) : NULL;
        json_decref(params);
        if (!body) {
                /* json_pack refused a text that is not UTF-8 (from the configuration or a
                 * snapshot): nothing is sent, and sending it again would not help */
                snprintf(err->code, sizeof(err->code), "request");
                snprintf(err->description, sizeof(err->description),
                         "%s: the request could not be encoded (a text is not UTF-8)", method);
                return -EINVAL;
        }
        ratelimit_acquire(&c->rl);
        snprintf(url, sizeof(url), "%s%s.json", c->base, method);
        rc = http_client_post(c->http, url, headers, body, strlen(body), &resp);
        free(body);
        err->http_status = resp.status;
        if (rc < 0) {
                snprintf(err->code, sizeof(err->code), "transport");
                snprintf(err->description, sizeof(err->description), "%s", resp.error);
                http_response_clear(&resp);
                return -EAGAIN;
        }
        st = b24_answer_parse(resp.body, resp.len, resp.status, &doc, err);
        t = json_object_get(doc, "time");
        if (json_is_object(t)) {
                json_t *op = json_object_get(t, "operating");
                if (json_is_number(op) && json_number_value(op) > c->max_operating)
                        c->max_operating = json_number_value(op);
                if (b24_reset_at_ms(t))
                        c->operating_reset_at_ms = b24_reset_at_ms(t);
        }
        if (st == 0) {
                *ret_doc = doc;
                http_response_clear(&resp);
                return 0;
        }
        if (strcmp(err->code, "QUERY_LIMIT_EXCEEDED") == 0) {
                ratelimit_fill(&c->rl, clock_mono_ms());
                err->retry_after_ms = 1000;
        } else if (strcmp(err->code, "OPERATION_TIME_LIMIT") == 0) {
                int64_t at = b24_reset_at_ms(t) ? b24_reset_at_ms(t) : c->operating_reset_at_ms;
                err->retry_after_ms = at > clock_wall_ms() ? at - clock_wall_ms() : 60000; /* the portal's reset time is wall time */
        }
        if (resp.retry_after_s > 0 && resp.retry_after_s * 1000 > err->retry_after_ms)
                err->retry_after_ms = resp.retry_after_s * 1000;
        json_decref(doc);
        http_response_clear(&resp);
        return st;
}

/* A command's query string is built from a bounded snapshot; past this it is refused
 * (the portal would refuse it too) rather than grown without end. */
#define QUERY_MAX (8u << 20)

/* Appends; an overflow is sticky (buf's toobig) and b24_query_string checks it once. */
static void append(struct buf *b, const char *s, size_t n)
{
        (void)buf_append(b, s, n);
}

/* Percent-encodes `n` bytes of `s` (0: up to its NUL). libcurl returns NULL only when it
 * cannot allocate (inputs here are bounded texts), which is an abort like any xmalloc. */
static char *escape(const char *s, size_t n)
{
        char *e = curl_easy_escape(NULL, s, (int)n);

        if (!e) {
                fputs("orderbridge: out of memory\n", stderr);
                abort();
        }
        return e;
}

static void flatten(struct buf *b, const char *prefix, json_t *v)
{
        char key[512], num[64];
        const char *k;
        json_t *item;
        size_t i;

        if (json_is_object(v)) {
                json_object_foreach(v, k, item)
                {
                        /* a key may hold filter operators ("=TITLE", ">=DATE_MODIFY"):
                         * escaped, so that '=' and '&' cannot end it early */
                        char *e = escape(k, 0);
                        if (prefix)
                                snprintf(key, sizeof(key), "%s[%s]", prefix, e);
                        else
                                snprintf(key, sizeof(key), "%s", e);
                        curl_free(e);
                        flatten(b, key, item);
                }
                return;
        }
        if (json_is_array(v)) {
                json_array_foreach(v, i, item)
                {
                        snprintf(key, sizeof(key), "%s[%zu]", prefix, i);
                        flatten(b, key, item);
                }
                return;
        }
        if (json_is_null(v) || !prefix)
                return;
        if (b->len > 0 && b->data[b->len - 1] != '?')
                append(b, "&", 1);
        append(b, prefix, strlen(prefix));
        append(b, "=", 1);
        if (json_is_string(v)) {
                char *e = escape(json_string_value(v), json_string_length(v));
                append(b, e, strlen(e));
                curl_free(e);
        } else if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                append(b, num, strlen(num));
        } else if (json_is_boolean(v)) {
                append(b, json_is_true(v) ? "Y" : "N", 1);
        }
}

char *b24_query_string(const char *method, json_t *params)
{
        struct buf b;

        buf_init(&b, QUERY_MAX);
        append(&b, method, strlen(method));
        append(&b, "?", 1);
        flatten(&b, NULL, params);
        if (b.toobig) {
                buf_free(&b);
                return NULL;
        }
        return buf_steal(&b);
}
