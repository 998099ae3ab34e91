/*
 * The daemon's light reconcile: every [delivery] reconcile_interval seconds (the first one
 * interval after start), in a thread of its own with its own store handle, the orders
 * changed since the last run are read back from Roistat and Bitrix24 (presence, status or
 * stage, amount; no rows), and the count of differences is kept in the store (meta
 * "reconcile.drift", "reconcile.at") for `orderbridge status`. It repairs nothing itself.
 */
#pragma once

#include "config/config.h"

struct reconciler;

/* Starts the thread: 0 and *ret, or 0 and *ret = NULL when there is nothing to run (the
 * interval is 0, or neither remote is enabled); -errno when it cannot start. */
int reconciler_start(const struct config *cfg, struct reconciler **ret);

/* Stops it (a run in progress ends after its current request) and frees. NULL is fine. */
struct reconciler *reconciler_stop(struct reconciler *r);
