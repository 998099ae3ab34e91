/*
 * The queue manager. One thread per sink takes due deliveries from the store in
 * batches, hands them to the sink, and records the verdicts — it is the only writer of
 * delivery state. It sleeps until the earliest due time, the poll interval, or a wake-up
 * from ingest, whichever comes first, so a single new order goes out at once.
 */
#pragma once

#include <stdint.h>

#include "config/config.h"
#include "sinks/sink.h"

struct dispatch;

/* Starts one thread for `ops`; `ctx` is owned by the dispatcher from now on. */
int dispatch_start(const struct config *cfg, const struct sink_ops *ops, void *ctx,
                   struct dispatch **ret);

/* Something new may be due: look now. Safe from any thread. */
void dispatch_wake(struct dispatch *d);

/* Stops the thread (an in-flight request is finished or times out) and frees. */
struct dispatch *dispatch_stop(struct dispatch *d);
