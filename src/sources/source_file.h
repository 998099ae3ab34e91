/*
 * The JSON Lines source behind `orderbridge import FILE`: one snapshot per line (the body
 * of POST /v1/orders), validated as the ingest validates them, fed to the intake in bulk
 * (so a large file waits for the store instead of filling memory). A bad line is logged
 * with its number ("import.invalid line=N field=… message=…") and skipped, never
 * stored; progress is logged once a second ("import.progress"), the totals at the end
 * ("import.done"). The first failed commit stops the reading ("import.store_failed").
 */
#pragma once

#include "config/config.h"
#include "sources/source.h"

struct source_file_stats {
        long lines;    /* read, blank ones included */
        long accepted; /* stored as the order's newest snapshot */
        long stale;    /* not newer than what was stored: changed nothing */
        long invalid;  /* refused, each logged with its line number */
        long failed;   /* handed over but not stored (the store failed) */
};

/* Opens `path` ("-" is standard input) for a source named "import". 0, or -errno when
 * the file cannot be opened. */
int source_file_new(const struct config *cfg, const char *path, struct source **ret);

/* Waits until the started source `s` has read the whole file (or stopped at a store
 * failure) and every line it handed over has its outcome. Returns 0 and the totals, or
 * the -errno of the failed commit (-ESHUTDOWN when the intake stopped first). */
int source_file_wait(struct source *s, struct source_file_stats *ret_stats);
