/*
 * The intake: the one way a snapshot enters the store. Sources (the HTTP ingest route,
 * `orderbridge import`, later the Bitrix24 and MySQL pollers) submit parsed, validated
 * snapshots; one committer thread takes everything queued, stores it in one transaction
 * with one fsync (group commit), calls each submitter back with its outcome, and then
 * tells the commit hooks (the daemon wakes its dispatchers from there). The intake knows
 * nothing of HTTP, of sources or of sinks; it owns its own store connection.
 *
 * Invariants: a submission that returned 0 gets exactly one `done` call, from the
 * committer thread, after its transaction committed (or failed) — so a source may
 * answer "accepted" from `done` and know it is durable. Bulk submissions wait while the
 * queue is full, so a backfill cannot grow memory; a submission someone is waiting on
 * (an HTTP request) never waits and is never refused for a full queue, its number being
 * bounded by the connections. Submissions are committed in the order they were made.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/snapshot.h"
#include "store/store.h"

#define INTAKE_COMMIT_MAX 512 /* submissions per transaction */
#define INTAKE_QUEUE_MAX 1024 /* bulk submissions wait while this many are queued */

struct intake;

struct intake_item {
        struct snapshot *snap;         /* parsed and validated; taken by a successful submit
                                        * (set to NULL), freed after `done` returns */
        const char *webhook_id;        /* NULL, or the sender's message id (copied): a replay
                                        * with the same body is answered as the first time */
        unsigned char body_sha256[32]; /* the body as received; read only with webhook_id */
        const char *source;            /* "ingest", "import", … recorded with the snapshot;
                                        * a string that outlives the intake */
        bool bulk;                     /* wait while the queue is full (back-pressure) */
        const char *sink_only;         /* NULL, or the one sink this snapshot goes to (a deal
                                        * read from Bitrix24: "roistat"); outlives the intake */
};

/* What `done` is told; the pointers are valid only during the call. */
struct intake_result {
        enum store_put_outcome outcome; /* store.h: ACCEPTED, STALE, DUPLICATE, CONFLICT, FAILED */
        enum store_put_outcome first_outcome; /* DUPLICATE: what the first submission got */
        int64_t rev;                       /* ACCEPTED: the store's revision of the snapshot */
        int error;                         /* FAILED: -errno */
        const char *errmsg;                /* FAILED: the store's words, for the source's log */
        const struct snapshot *snap;       /* the submitted snapshot */
        const char *webhook_id;            /* as submitted (NULL when none) */
};

/* What a commit hook is told after each transaction, once every `done` of it returned. */
struct intake_commit {
        size_t items;       /* submissions in the transaction */
        size_t accepted;    /* of them ACCEPTED: new work for the sinks */
        int64_t elapsed_ms; /* store_put, fsync included */
        int error;          /* 0, or the -errno of a failed transaction */
        const char *errmsg; /* error: the store's words; valid during the call */
        int pruned;         /* webhook ids forgotten after this commit (hourly), or 0 */
};

/* Opens the intake's store connection on [store] path (the enabled sinks are the ones a
 * newly accepted snapshot must reach) and starts the committer. 0 or -errno. */
int intake_new(const struct config *cfg, struct intake **ret);

/* Commits whatever is queued, calls every `done`, stops the committer, closes the store. */
struct intake *intake_free(struct intake *in);

/* Queues `item`. Returns 0 (item->snap is taken; `done(userdata, result)` will be called
 * once, from the committer thread), or -ESHUTDOWN when the intake is draining (nothing is
 * taken, `done` is never called). A bulk item waits while INTAKE_QUEUE_MAX are queued. */
int intake_submit(struct intake *in, struct intake_item *item,
                  void (*done)(void *userdata, const struct intake_result *result), void *userdata);

/* Adds a hook called from the committer after every transaction (up to 4 hooks; register
 * them before the first submission). Wake the dispatchers when commit->accepted > 0;
 * a hook must not block. 0 or -ENOSPC. */
int intake_on_commit(struct intake *in, void (*fn)(void *arg, const struct intake_commit *c),
                     void *arg);

/* Refuses new submissions (-ESHUTDOWN), commits what is queued, calls every `done` and
 * every hook, and stops the committer. Idempotent; intake_free drains by itself. */
void intake_drain(struct intake *in);

/* Whether the last transaction committed (true before the first one). Safe from any
 * thread: /healthz reads it while the committer writes it. */
bool intake_healthy(struct intake *in);
