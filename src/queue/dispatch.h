/*
 * The queue manager. One thread per sink takes due deliveries from the store in
 * batches (leased to it), hands them to the sink, and records the verdicts — it is the
 * only writer of delivery state. It sleeps until the earliest due time, the poll
 * interval, or a wake-up from ingest, whichever comes first, so a single new order goes
 * out at once. Start-up recovery (dispatch_recover) runs once, before any of them.
 */
#pragma once

#include <stdint.h>

#include "config/config.h"
#include "sinks/sink.h"

struct dispatch;

/* Start-up, before any dispatcher: makes this process the store's only server (the lock
 * lives as long as *ret_lock, which the caller closes last, with store_close) and puts
 * back what an earlier run left in flight, sink by sink — every sink with rows, enabled
 * in this run or not (Postfix's qmgr moves `active` back to `incoming` before any scan).
 * -EBUSY and *ret_holder_pid when another process serves the store. */
int dispatch_recover(const struct config *cfg, struct store **ret_lock, long *ret_holder_pid);

/* Starts one thread for `ops`; `ctx` is owned by the dispatcher from now on. */
int dispatch_start(const struct config *cfg, const struct sink_ops *ops, void *ctx,
                   struct dispatch **ret);

/* Something new may be due: look now. Safe from any thread. */
void dispatch_wake(struct dispatch *d);

/* The sink's name (its ops' name). */
const char *dispatch_sink(const struct dispatch *d);

/* Stops the thread (an in-flight request is finished or times out) and frees. */
struct dispatch *dispatch_stop(struct dispatch *d);
