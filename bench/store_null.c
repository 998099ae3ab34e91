/*
 * The ceiling's store: a backend that keeps nothing. bench/meson.build builds
 * `orderbridge-ceiling` — the same daemon, the same HTTP server, routes, signature check,
 * snapshot validation, intake and store policy — with this backend behind
 * `[store] path = null:`, so that bench/ingest_bench.py can put the durable figures beside
 * those of the same server answering without storing. Never part of the product: the
 * table in store.c lists it only in that build (ORDERBRIDGE_BENCH_CEILING).
 *
 * Every read finds nothing, every write succeeds, revisions count up: each order is new,
 * so each answer is the 202 of a first snapshot.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/xalloc.h"
#include "store/store_backend.h"

struct store_backend {
        atomic_llong rev;
};

static int null_open(const char *location, struct store_backend **ret, char *err,
                     size_t err_size)
{
        struct store_backend *be = xcalloc(1, sizeof(*be));

        (void)location, (void)err, (void)err_size;
        atomic_init(&be->rev, 0);
        *ret = be;
        return 0;
}

static void null_close(struct store_backend *be)
{
        free(be);
}

static const char *null_errmsg(struct store_backend *be)
{
        return "the null store keeps nothing";
}

static int null_lock(struct store_backend *be, long *ret_holder_pid)
{
        return 0;
}

static int null_ok(struct store_backend *be)
{
        return 0;
}

static void null_rollback(struct store_backend *be)
{
}

static int null_webhook_get(struct store_backend *be, const char *id, struct store_webhook *ret)
{
        return -ENOENT;
}

static int null_webhook_add(struct store_backend *be, const struct store_webhook *w)
{
        return 0;
}

static int null_prune(struct store_backend *be, int64_t before_ms)
{
        return 0;
}

static int null_order_get(struct store_backend *be, const char *order_id, bool with_json,
                          struct store_order *ret)
{
        return -ENOENT;
}

static int null_order_put(struct store_backend *be, const struct store_order *o)
{
        return 0;
}

static int null_order_walk(struct store_backend *be, int64_t after_ms, bool by_first, size_t offset,
                           size_t limit, int (*cb)(void *arg, const struct store_order *o),
                           void *arg, int64_t *ret_total)
{
        *ret_total = 0;
        return 0;
}

static int null_history_add(struct store_backend *be, const struct store_history *h,
                            int64_t *ret_rev)
{
        *ret_rev = (int64_t)atomic_fetch_add(&be->rev, 1) + 1;
        return 0;
}

static int null_history_list(struct store_backend *be, const char *order_id, size_t limit,
                             int (*cb)(void *arg, const struct store_history *h), void *arg)
{
        return 0;
}

static int null_delivery_get(struct store_backend *be, const char *sink, const char *order_id,
                             struct store_delivery *ret)
{
        return -ENOENT;
}

static int null_delivery_put(struct store_backend *be, const struct store_delivery *d)
{
        return 0;
}

static int null_delivery_walk(struct store_backend *be, const struct store_filter *f,
                              int (*cb)(void *arg, const struct store_delivery *d), void *arg)
{
        return 0;
}

static int null_delivery_due(struct store_backend *be, const char *sink, int64_t now_ms,
                             int (*cb)(void *arg, const struct store_delivery *d,
                                       const struct store_order *o),
                             void *arg)
{
        return 0;
}

static int null_delivery_next(struct store_backend *be, const char *sink, int64_t *ret_min)
{
        *ret_min = STORE_NEVER;
        return 0;
}

static int null_delivery_count(struct store_backend *be, const char *sink,
                               int64_t ret[STORE_N_STATES])
{
        for (int i = 0; i < STORE_N_STATES; i++)
                ret[i] = 0;
        return 0;
}

static int null_delivery_oldest(struct store_backend *be, const char *sink, int64_t *ret_min)
{
        *ret_min = 0;
        return 0;
}

static int null_size(struct store_backend *be, int64_t *ret_bytes)
{
        *ret_bytes = 0;
        return 0;
}

static int null_delivery_sinks(struct store_backend *be, int (*cb)(void *arg, const char *name),
                               void *arg)
{
        return 0;
}

static int null_attempt_add(struct store_backend *be, const struct store_attempt *a)
{
        return 0;
}

static int null_attempt_list(struct store_backend *be, const char *order_id, size_t limit,
                             int (*cb)(void *arg, const struct store_attempt *a), void *arg)
{
        return 0;
}

static int null_link_get(struct store_backend *be, const char *order_id, const char *kind,
                         const char **ret_remote)
{
        return -ENOENT;
}

static int null_link_set(struct store_backend *be, const char *order_id, const char *kind,
                         const char *remote)
{
        return 0;
}

static int null_link_list(struct store_backend *be, const char *order_id,
                          int (*cb)(void *arg, const char *kind, const char *remote), void *arg)
{
        return 0;
}

static int null_meta_get(struct store_backend *be, const char *key, const char **ret_value)
{
        return -ENOENT;
}

static int null_meta_set(struct store_backend *be, const char *key, const char *value,
                         bool only_if_absent)
{
        return 0;
}

/* nothing is kept, so nothing is old and nothing is free */
static int null_prune(struct store_backend *be, int64_t before_ms, int64_t after, size_t limit,
                      int64_t *ret_last)
{
        *ret_last = after;
        return 0;
}

static int null_compact(struct store_backend *be, int64_t pages, int64_t *ret_bytes)
{
        *ret_bytes = 0;
        return 0;
}

static int null_compact_enable(struct store_backend *be)
{
        return 0;
}

const struct store_backend_ops store_null_ops = {
        .name = "null",
        .open = null_open,
        .close = null_close,
        .errmsg = null_errmsg,
        .lock = null_lock,
        .begin = null_ok,
        .commit = null_ok,
        .rollback = null_rollback,
        .webhook_get = null_webhook_get,
        .webhook_add = null_webhook_add,
        .webhook_prune = null_prune,
        .order_get = null_order_get,
        .order_put = null_order_put,
        .order_walk = null_order_walk,
        .history_add = null_history_add,
        .history_list = null_history_list,
        .delivery_get = null_delivery_get,
        .delivery_put = null_delivery_put,
        .delivery_walk = null_delivery_walk,
        .delivery_due = null_delivery_due,
        .delivery_next = null_delivery_next,
        .delivery_count = null_delivery_count,
        .delivery_oldest = null_delivery_oldest,
        .size = null_size,
        .delivery_sinks = null_delivery_sinks,
        .attempt_add = null_attempt_add,
        .attempt_list = null_attempt_list,
        .dead_letter_add = null_attempt_add,
        .dead_letter_list = null_attempt_list,
        .link_get = null_link_get,
        .link_set = null_link_set,
        .link_list = null_link_list,
        .meta_get = null_meta_get,
        .meta_set = null_meta_set,
        .history_prune = null_prune,
        .attempt_prune = null_prune,
        .compact = null_compact,
        .compact_enable = null_compact_enable,
};
