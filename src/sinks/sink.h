/*
 * What a sink is to the dispatcher: something that takes a batch of orders (each with
 * its latest snapshot) and says, per order, what happened. The result set is small, as
 * in OpenSMTPD: OK, TEMPFAIL, PERMFAIL, plus WAITING for "accepted but look again".
 * A sink never writes delivery state itself; the dispatcher records its verdicts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct sink_outcome {
        enum store_result_kind kind;
        int64_t retry_after_ms; /* TEMPFAIL/WAITING: the remote's own hint, 0 = use backoff */
        char detail[256];       /* why, in the remote's words where it gave any */
        bool uncertain;         /* the request may have been applied (answer lost, timeout) */
        bool carried;           /* not a verdict: the order only moves into the next pass (a
                                 * sink that fills its calls from several passes): due at once,
                                 * no attempt recorded, logged quietly */
};

struct sink_ops {
        const char *name;
        size_t batch_max;
        /* Delivers a batch. `store` is the dispatcher's handle, for reads and for the few
         * marks that must be durable BEFORE a remote write (a "maybe created" deal); every
         * other durable fact the pass learns (links, cached look-ups) goes into `writes`,
         * which the dispatcher records in the same transaction as the verdicts.
         * Every read of the store is checked: a failure other than -ENOENT stops the
         * orders concerned before any remote write for them (never "no link, so create").
         * Returns 0 when the per-order outcomes are filled in; -EAGAIN when the remote
         * failed as a whole (pause the sink, back off); -EACCES when the credentials were
         * refused (pause for long, say so loudly); -EIO when the store failed (a read, or
         * a mark that had to be durable first) and the orders it concerns were not sent:
         * pause as for -EAGAIN; -ECANCELED when the pass was cut short by `stop` (pause
         * too: the loop is ending). On a negative return, orders without a verdict are
         * TEMPFAIL. */
        int (*deliver)(void *ctx, struct store *store, struct store_writes *writes,
                       const struct store_work *works, size_t n, struct sink_outcome *outcomes);
        /* May be NULL. Called from another thread when the daemon stops: a pass in progress
         * sends no further request (the one in flight ends or times out) and returns
         * -ECANCELED, its unsent orders TEMPFAIL, so that shutdown waits for one request,
         * not a pass of many. Once called, every later pass returns so at once. */
        void (*stop)(void *ctx);
        /* May be NULL. This server has just taken the sink over from another that shares
         * the store (PostgreSQL): the remote may still count that server's last requests
         * against its limit, so the sink's own bucket starts full. Called by the loop's
         * thread, between passes. */
        void (*taken)(void *ctx);
        void (*free)(void *ctx);
};
