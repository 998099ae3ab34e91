/*
 * Retention: the store forgets, in small steps, what is older than [store] retain_days
 * and no longer needed — superseded snapshot versions and old attempts (store.h says
 * which are kept) — and then gives the freed pages back to the file system, so the store
 * grows with the number of orders, not with the number of changes.
 *
 * A pass runs at start and then every hour. It is a state machine driven by its owner's
 * thread (the intake's committer, between commits, on its own store connection): each
 * retention_step does one bounded piece — a prune step over at most `batch` rows, or a
 * compaction of at most `batch` pages — so ingest never waits for a whole pass. A pass
 * ends with one log line, store.pruned.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

#define RETENTION_EVERY_MS (3600LL * 1000)
#define RETENTION_BATCH 1000 /* rows a prune step looks at, pages a compaction step frees */

struct retention;

/* Forgets what is older than keep_ms (0: retention is off; nothing is ever due), a pass
 * every every_ms, steps of `batch`. The first pass is due at once. */
struct retention *retention_new(int64_t keep_ms, int64_t every_ms, size_t batch);
struct retention *retention_free(struct retention *r);

/* When (monotonic ms) the next step is due; INT64_MAX when retention is off. */
int64_t retention_due_at(const struct retention *r);

/* Does the next step if one is due at mono_ms (wall_ms sets a new pass's cut-off).
 * Returns 1 when it did a step, 0 when none was due. A failed step is logged and ends
 * the pass; the next one comes an interval later. */
int retention_step(struct retention *r, struct store *s, int64_t wall_ms, int64_t mono_ms);

/* For the server at start, under the store's lock, when [store] retain_days is set: makes
 * a store created without incremental vacuum able to shrink (a one-time VACUUM), and logs
 * it with its duration. A failure is logged and is not fatal: pruning still works, the
 * file just keeps its free pages for reuse. */
void retention_prepare(const struct config *cfg, struct store *s);
