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
};

enum sink_status {
        SINK_DONE = 0,          /* per-order outcomes are filled in */
        SINK_REMOTE_DOWN = -1,  /* the remote failed as a whole: pause the sink, back off */
        SINK_AUTH = -2,         /* credentials refused: pause for long, say so loudly */
};

struct sink_ops {
        const char *name;
        size_t batch_max;
        /* Called before each batch with the sink's own store handle. Returns enum
         * sink_status; outcomes must be filled for each of the n works when SINK_DONE,
         * and may be left for the others (all are then TEMPFAIL). */
        int (*deliver)(void *ctx, struct store *store, const struct store_work *works, size_t n,
                       struct sink_outcome *outcomes);
        void (*free)(void *ctx);
};
