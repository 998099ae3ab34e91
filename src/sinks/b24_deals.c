/*
 * A queue of read-only commands sent in `batch` calls of at most 50. A command counts as
 * answered only when its own result is there (a batch answers per command: an error for
 * one is not an error for the others); one refused for a while (QUERY_LIMIT_EXCEEDED, no
 * result at all) goes back into the queue a few times, one refused for good ends the read
 * with the portal's words. A list answered in more than one page (result_next) asks for
 * the next page in a later batch. Nothing here writes: a repeated command is harmless.
 */
#include "sinks/b24_deals.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/xalloc.h"

#define BATCH_MAX 50
#define TRIES 3
#define RETRY_MS 2000

struct cmd {
        const char *method;
        json_t *params; /* owned */
        int tries;
};

struct queue {
        struct cmd *items;
        size_t head, n, cap;
};

/* What a command's answer is handed to: 0, or a negative code with `err` filled. */
typedef int (*on_result_fn)(void *arg, const struct cmd *c, json_t *result, json_t *next,
                            struct queue *q, struct b24_error *err);

static void push(struct queue *q, const char *method, json_t *params, int tries)
{
        if (q->n == q->cap) {
                q->cap = q->cap ? 2 * q->cap : 64;
                q->items = xrealloc(q->items, q->cap * sizeof(*q->items));
        }
        q->items[q->n++] = (struct cmd){method, params, tries};
}

static void queue_clear(struct queue *q)
{
        for (size_t i = q->head; i < q->n; i++)
                json_decref(q->items[i].params);
        free(q->items);
        memset(q, 0, sizeof(*q));
}

static int cancelled(struct b24_error *err)
{
        memset(err, 0, sizeof(*err));
        snprintf(err->code, sizeof(err->code), "stopped");
        snprintf(err->description, sizeof(err->description), "the read was stopped");
        return -ECANCELED;
}

/* One batch call, tried again while the portal is unwell (its own hint, else backoff). */
static int call(struct b24_client *c, json_t *cmd, const atomic_bool *stop, json_t **ret_doc,
                struct b24_error *err)
{
        int r = -EAGAIN;

        for (int i = 0; i < TRIES && r == -EAGAIN; i++) {
                if (stop && atomic_load(stop))
                        return cancelled(err);
                r = b24_call(c, "batch", json_pack("{s:i, s:O}", "halt", 0, "cmd", cmd), ret_doc,
                             err);
                if (r == -EAGAIN && i + 1 < TRIES &&
                    !clock_sleep_unless(err->retry_after_ms > 0 ? err->retry_after_ms : RETRY_MS << i, stop))
                        return cancelled(err);
        }
        return r;
}

/* A command without its result: again later, or, out of tries, the read's failure. */
static int unanswered(struct queue *q, const struct cmd *c, const char *code, const char *words,
                      int cls, struct b24_error *err)
{
        if (cls == -EAGAIN && c->tries + 1 < TRIES) {
                push(q, c->method, json_incref(c->params), c->tries + 1);
                return 0;
        }
        memset(err, 0, sizeof(*err));
        snprintf(err->code, sizeof(err->code), "%s", code[0] ? code : "no_result");
        snprintf(err->description, sizeof(err->description), "%s: %s", c->method, words);
        return cls;
}

/* Reads one batch answer: each command's result to `on_result`, the unanswered back. */
static int read_answer(json_t *doc, struct cmd *cmds, size_t n, struct queue *q,
                       on_result_fn on_result, void *arg, struct b24_error *err)
{
        json_t *results, *errors,
            *nexts = json_object_get(json_object_get(doc, "result"), "result_next");
        char key[16];
        int r = 0;

        b24_batch_sections(doc, &results, &errors);
        for (size_t i = 0; r == 0 && i < n; i++) {
                json_t *mine, *e;
                snprintf(key, sizeof(key), "k%zu", i);
                mine = results ? json_object_get(results, key) : NULL;
                e = errors ? json_object_get(errors, key) : NULL;
                if (e) {
                        const char *code = json_string_value(json_object_get(e, "error"));
                        const char *d = json_string_value(json_object_get(e, "error_description"));
                        r = unanswered(q, &cmds[i], code ? code : "", d ? d : "",
                                       b24_classify_error(code, 400), err);
                } else if (!mine || json_is_null(mine)) {
                        r = unanswered(q, &cmds[i], "",
                                       "the portal answered neither a result "
                                       "nor an error for the command",
                                       -EAGAIN, err);
                } else {
                        r = on_result(arg, &cmds[i], mine,
                                      json_is_object(nexts) ? json_object_get(nexts, key) : NULL, q,
                                      err);
                }
        }
        return r;
}

/* Sends the queue, 50 commands a call, until it is empty or a command fails for good. */
static int run(struct b24_client *c, struct queue *q, on_result_fn on_result, void *arg,
               const atomic_bool *stop, struct b24_error *err)
{
        int r = 0;

        while (r == 0 && q->head < q->n) {
                size_t n = q->n - q->head < BATCH_MAX ? q->n - q->head : BATCH_MAX;
                /* on_result may push more: the taken commands are copied out of the queue */
                struct cmd *cmds = xcalloc(n, sizeof(*cmds));
                json_t *cmd = json_object(), *doc = NULL;

                memcpy(cmds, &q->items[q->head], n * sizeof(*cmds));
                q->head += n;
                for (size_t i = 0; r == 0 && i < n; i++) {
                        char key[16], *text = b24_query_string(cmds[i].method, cmds[i].params);
                        if (!text) {
                                memset(err, 0, sizeof(*err));
                                snprintf(err->code, sizeof(err->code), "request");
                                snprintf(err->description, sizeof(err->description),
                                         "%s: the command is too long", cmds[i].method);
                                r = -EINVAL;
                                break;
                        }
                        snprintf(key, sizeof(key), "k%zu", i);
                        json_object_set_new(cmd, key, json_string(text));
                        free(text);
                }
                if (r == 0)
                        r = call(c, cmd, stop, &doc, err);
                if (r == 0)
                        r = read_answer(doc, cmds, n, q, on_result, arg, err);
                json_decref(doc);
                json_decref(cmd);
                for (size_t i = 0; i < n; i++)
                        json_decref(cmds[i].params);
                free(cmds);
        }
        return r;
}

static int not_a_list(const struct cmd *c, struct b24_error *err)
{
        memset(err, 0, sizeof(*err));
        snprintf(err->code, sizeof(err->code), "answer");
        snprintf(err->description, sizeof(err->description), "%s answered no list", c->method);
        return -EINVAL;
}

/* crm.deal.list's page: each deal under its ORIGIN_ID; the next page asked for. */
static int on_deals(void *arg, const struct cmd *c, json_t *result, json_t *next, struct queue *q,
                    struct b24_error *err)
{
        json_t *by_origin = arg, *deal;
        json_int_t start = json_integer_value(json_object_get(c->params, "start"));
        size_t i;

        if (!json_is_array(result))
                return not_a_list(c, err);
        json_array_foreach(result, i, deal)
        {
                const char *origin = json_string_value(json_object_get(deal, "ORIGIN_ID"));
                json_t *list;
                if (!origin)
                        continue;
                list = json_object_get(by_origin, origin);
                if (!list)
                        json_object_set_new(by_origin, origin, list = json_array());
                json_array_append(list, deal);
        }
        /* a next page only forward: a portal repeating a start would loop for ever */
        if (json_is_integer(next) && json_integer_value(next) > start) {
                json_t *more = json_deep_copy(c->params);
                json_object_set_new(more, "start", json_integer(json_integer_value(next)));
                push(q, c->method, more, 0);
        }
        return 0;
}

int b24_deals_of_orders(struct b24_client *c, const char *site_id, const char *const *order_ids,
                        size_t n, json_t *select, const atomic_bool *stop, json_t **ret,
                        struct b24_error *err)
{
        json_t *fields = json_pack("[s, s]", "ID", "ORIGIN_ID"), *by_origin = json_object(), *f;
        struct queue q = {0};
        size_t i;
        int r;

        json_array_foreach(select, i, f) json_array_append(fields, f);
        for (i = 0; i < n; i += B24_DEALS_IDS_MAX) {
                json_t *ids = json_array();
                for (size_t j = i; j < n && j < i + B24_DEALS_IDS_MAX; j++)
                        json_array_append_new(ids, json_string(order_ids[j]));
                push(&q, "crm.deal.list",
                     json_pack("{s:{s:s, s:o}, s:O, s:{s:s}, s:i}", "filter", "=ORIGINATOR_ID",
                               site_id, "@ORIGIN_ID", ids, "select", fields, "order", "ID", "ASC",
                               "start", 0),
                     0);
        }
        json_decref(fields);
        r = run(c, &q, on_deals, by_origin, stop, err);
        queue_clear(&q);
        if (r < 0) {
                json_decref(by_origin);
                return r;
        }
        *ret = by_origin;
        return 0;
}

/* crm.deal.productrows.get's answer, under its deal's id. */
static int on_rows(void *arg, const struct cmd *c, json_t *result, json_t *next, struct queue *q,
                   struct b24_error *err)
{
        if (!json_is_array(result))
                return not_a_list(c, err);
        json_object_set(arg, json_string_value(json_object_get(c->params, "id")), result);
        return 0;
}

int b24_deals_rows(struct b24_client *c, const char *const *deal_ids, size_t n,
                   const atomic_bool *stop, json_t **ret, struct b24_error *err)
{
        json_t *rows = json_object();
        struct queue q = {0};
        int r;

        for (size_t i = 0; i < n; i++)
                push(&q, "crm.deal.productrows.get", json_pack("{s:s}", "id", deal_ids[i]), 0);
        r = run(c, &q, on_rows, rows, stop, err);
        queue_clear(&q);
        if (r < 0) {
                json_decref(rows);
                return r;
        }
        *ret = rows;
        return 0;
}
