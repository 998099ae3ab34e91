/*
 * What a source is: something that finds order snapshots outside orderbridge and feeds
 * them to the intake, which stores them (group commit) and tells the source, per
 * snapshot, what became of it. Today's sources: `orderbridge import FILE` (source_file.c),
 * the Bitrix24 source (source_bitrix24.c: deals, from the outgoing webhook's ids and a
 * poll), and the HTTP ingest, which is not one of these but a route
 * (http/route_orders.c), because HTTP owns its threads and answers. The MySQL b_sale_*
 * poller is to be a source like them.
 *
 * A source owns its thread (if it needs one), its remote connection and its watermark.
 * It validates what it reads exactly as POST /v1/orders does (snapshot_parse, then the
 * [site] id), logs its own refusals with its own event names ("import.invalid …"), and
 * submits each valid snapshot with intake_submit(…, .bulk = true, .source = its name):
 * a poller that finds ten thousand changed deals then waits for the store instead of
 * queueing them all in memory. Whatever it must remember across restarts (a poller's
 * "changed since") it writes with store_meta_set only after `done` said ACCEPTED or
 * STALE for everything before it, so a crash re-reads rather than loses.
 *
 * Plugging one in: write sources/source_NAME.c/.h with
 *      int source_NAME_new(const struct config *cfg, struct source **ret);
 * filling a `struct source` with its ops and context, and add one row (name, "is it
 * enabled in this configuration", constructor) to the daemon's table of sources
 * (cli/serve.c, later the registry). The daemon starts every source after the intake,
 * and at SIGTERM stops them first, then drains the intake, so that every snapshot a
 * source handed over is stored before exit.
 */
#pragma once

#include "queue/intake.h"

struct source_ops {
        const char *name; /* "file", "bitrix24", "mysql": in log lines and store history */
        /* Begins feeding `in` (which outlives the source). 0 or -errno. */
        int (*start)(void *ctx, struct intake *in);
        /* Stops submitting: returns when no intake_submit of this source is in progress
         * and none will follow. Submissions already made still get their `done`. */
        void (*stop)(void *ctx);
        /* May be NULL. A hint from outside that something changed at the source (Bitrix24's
         * outgoing webhook names a deal id): look at it soon. Called from an HTTP thread:
         * must not block on the remote. 0, or -errno (-ENOSPC: too many hints waiting;
         * the source's own poll finds the change later). */
        int (*notify)(void *ctx, const char *what);
        void (*free)(void *ctx);
};

struct source {
        const struct source_ops *ops;
        void *ctx;
        bool started;
};

/* Wraps ops and context (owned by the source from now on) into a source. */
struct source *source_new(const struct source_ops *ops, void *ctx);

int source_start(struct source *s, struct intake *in);

/* Stops a started source (see source_ops.stop); a no-op otherwise. */
void source_stop(struct source *s);

/* Passes a hint to a started source (source_ops.notify): -ENOTSUP when it takes none,
 * -ESRCH when it is not running. */
int source_notify(struct source *s, const char *what);

/* Stops it if needed, frees its context and the source. Accepts NULL. */
struct source *source_free(struct source *s);
