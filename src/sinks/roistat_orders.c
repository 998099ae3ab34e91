/*
 * order/list, read with the sink's conventions (Api-key header, "Use-Http-Code: 1", the
 * answer classified by roistat_classify_answer) under two limits: the project's 10
 * requests a second, shared by every integration (the sink's bucket, 10 % under), and the
 * method's own 20 a minute (help-en.roistat.com/API/methods/orders), kept as a rolling
 * window of the last 20 calls' times. A reader lives as long as its user (the daemon keeps
 * one across its scheduled runs), so the window spans runs.
 *
 * An answer is a page only when it is what the docs show: HTTP 200, "status":"success",
 * "data" an array and "total" an integer. Anything else is not read as "no orders".
 */
#include "sinks/roistat_orders.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/ratelimit.h"
#include "base/xalloc.h"
#include "http/client.h"
#include "sinks/sink_roistat.h"

#define MAX_ANSWER (32 * 1024 * 1024) /* 1000 orders with their custom fields */
#define TRIES 3
#define RETRY_MS 2000

struct roistat_orders {
        struct http_client *http;
        struct ratelimit rl;
        int64_t sent[ROISTAT_LIST_PER_MINUTE]; /* clock_mono_ms of the last calls, 0 = none */
        size_t next;
        char url[1200];
        char header_key[4200];
};

struct roistat_orders *roistat_orders_new(const struct roistat_conf *conf)
{
        struct roistat_orders *c = xcalloc(1, sizeof(*c));

        /* a list is read-only: a silent re-send on a reused connection is harmless */
        c->http = http_client_new(conf->timeout_ms, MAX_ANSWER, true);
        if (!c->http) {
                free(c);
                return NULL;
        }
        ratelimit_init(&c->rl, conf->rate, 1, 10);
        snprintf(c->url, sizeof(c->url), "%s/project/integration/order/list?project=%s", conf->url,
                 conf->project);
        snprintf(c->header_key, sizeof(c->header_key), "Api-key: %s", conf->api_key);
        return c;
}

struct roistat_orders *roistat_orders_free(struct roistat_orders *c)
{
        if (!c)
                return NULL;
        http_client_free(c->http);
        explicit_bzero(c->header_key, sizeof(c->header_key));
        free(c);
        return NULL;
}

/* Waits until the method's rolling minute has room, then counts this call in it. */
static bool take_slot(struct roistat_orders *c, const atomic_bool *stop)
{
        int64_t oldest = c->sent[c->next];

        if (oldest && !clock_sleep_unless(oldest + 60000 - clock_mono_ms(), stop))
                return false;
        ratelimit_acquire(&c->rl);
        c->sent[c->next] = clock_mono_ms();
        c->next = (c->next + 1) % ROISTAT_LIST_PER_MINUTE;
        return true;
}

/* A success answer as the docs show it: 0 with the page, or -EINVAL with why. */
static int read_page(const struct http_response *resp, json_t **ret_data, int64_t *ret_total,
                     char *why, size_t why_size)
{
        json_t *doc = json_loadb(resp->body, resp->len, 0, NULL);
        json_t *data = json_object_get(doc, "data"), *total = json_object_get(doc, "total");

        if (!json_is_array(data) || !json_is_integer(total) || json_integer_value(total) < 0) {
                snprintf(why, why_size,
                         "order/list answered success without a \"data\" list "
                         "and a \"total\"");
                json_decref(doc);
                return -EINVAL;
        }
        *ret_data = json_incref(data);
        *ret_total = json_integer_value(total);
        json_decref(doc);
        return 0;
}

/* One call: 0 and the page, or the class of its failure with why and the remote's hint. */
static int call(struct roistat_orders *c, const char *body, json_t **ret_data, int64_t *ret_total,
                char *why, size_t why_size, int64_t *retry_ms)
{
        const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                                 "Use-Http-Code: 1", c->header_key, NULL};
        struct http_response resp;
        struct roistat_answer a;
        int rc, st;

        rc = http_client_post(c->http, c->url, headers, body, strlen(body), &resp);
        if (rc == 0 && resp.status == 200 && roistat_answer_parse(resp.body, resp.len, &a) == 0 &&
            a.success) {
                st = read_page(&resp, ret_data, ret_total, why, why_size);
                http_response_clear(&resp);
                return st;
        }
        st = roistat_classify_answer(&resp, rc, why, why_size, retry_ms);
        if (resp.status == 429)
                ratelimit_fill(&c->rl, clock_mono_ms());
        http_response_clear(&resp);
        return st == 0 ? -EINVAL : st;
}

int roistat_orders_page(struct roistat_orders *c, json_t *filters, size_t limit, size_t offset,
                        const atomic_bool *stop, json_t **ret_data, int64_t *ret_total, char *why,
                        size_t why_size)
{
        json_t *q =
            json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "offset", (json_int_t)offset);
        char *body;
        int st = -EAGAIN;

        if (filters)
                json_object_set(q, "filters", filters);
        /* an object of ids and decimals: encoding fails only on OOM, which aborts */
        body = json_dumps(q, JSON_COMPACT);
        json_decref(q);
        for (int i = 0; i < TRIES && st == -EAGAIN; i++) {
                int64_t retry_ms = 0;
                if (!take_slot(c, stop)) {
                        snprintf(why, why_size, "stopped");
                        st = -ECANCELED;
                        break;
                }
                st = call(c, body, ret_data, ret_total, why, why_size, &retry_ms);
                if (st == -EAGAIN && i + 1 < TRIES &&
                    !clock_sleep_unless(retry_ms > 0 ? retry_ms : RETRY_MS << i, stop)) {
                        snprintf(why, why_size, "stopped");
                        st = -ECANCELED;
                }
        }
        free(body);
        return st;
}

/* `conds` as one group of `kind`, or the flat list when it holds one condition. */
static json_t *group(const char *kind, json_t *conds)
{
        json_t *g;

        if (json_array_size(conds) == 0) {
                json_decref(conds);
                return NULL;
        }
        if (json_array_size(conds) == 1)
                return conds;
        g = json_object();
        json_object_set_new(g, kind, conds);
        return g;
}

json_t *roistat_orders_all_of(json_t *conds)
{
        return group("and", conds);
}

json_t *roistat_orders_any_of(json_t *conds)
{
        return group("or", conds);
}
