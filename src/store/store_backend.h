/*
 * What a store backend is to store.c: a table of operations that read and write rows,
 * and nothing else (OpenSMTPD's queue_backend.c over queue_fs.c). Every rule — which
 * snapshot is newer, how a delivery moves between states, when it becomes a dead letter,
 * what the operator's report says — is in store.c; a backend decides nothing, so a new
 * one (PostgreSQL) cannot disagree with SQLite about the state machine.
 *
 * Conventions: 0 or a count on success, -errno on failure (-ENOENT: no such row); the
 * strings of a row handed back by a get stay valid until the next call of the same
 * operation, those handed to a callback until it returns; a callback returns 0 to go on,
 * >0 to stop early, <0 to fail the walk with that value. Writes happen between begin and
 * commit; everything a store call does is one transaction.
 *
 * `next_at` is the one time the store watches a delivery by: when it is due (pending,
 * retrying, waiting), when its lease ends (inflight), never (done, dead: STORE_NEVER).
 * So "due", "lease ended" and "when to look next" are all plain range reads on it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_NEVER INT64_MAX

enum store_state {
        STORE_STATE_PENDING,
        STORE_STATE_INFLIGHT,
        STORE_STATE_RETRYING,
        STORE_STATE_WAITING,
        STORE_STATE_DONE,
        STORE_STATE_DEAD,
        STORE_N_STATES,
};

/* The words stored for states, put outcomes (store_outcome_name is in store.h) and result
 * kinds; -EINVAL when unknown. */
const char *store_state_name(enum store_state state);
int store_state_parse(const char *name, enum store_state *ret);
int store_outcome_parse(const char *name, enum store_put_outcome *ret);
const char *store_kind_name(enum store_result_kind kind);
int store_kind_parse(const char *name, enum store_result_kind *ret);

/* One order's latest accepted snapshot. `json` is read only when asked for. */
struct store_order {
        const char *order_id;
        const char *site;
        int64_t rev;
        bool has_version;
        int64_t version;
        bool has_updated_at;
        int64_t updated_at;
        const char *json;
        int64_t received_at;
        int64_t first_received_at;
};

/* One received snapshot, accepted or not (the history). */
struct store_history {
        int64_t rev; /* assigned by history_add */
        const char *order_id;
        bool has_version;
        int64_t version;
        int64_t received_at;
        const char *source;
        enum store_put_outcome outcome;
        const char *json;
};

struct store_webhook {
        const char *webhook_id;
        unsigned char body_sha256[32];
        const char *order_id;
        enum store_put_outcome outcome;
        int64_t received_at;
};

/* One sink's delivery of one order. */
struct store_delivery {
        const char *sink;
        const char *order_id;
        enum store_state state;
        int64_t want_rev, sent_rev, done_rev;
        int64_t attempts, waits;
        int64_t next_at; /* see the top of this file */
        int64_t first_failed_at;
        int64_t uncertain_at;
        int64_t updated_at;
        const char *last_error;  /* may be NULL */
        const char *lease_owner; /* inflight only, else NULL */
        bool requested;          /* store_request came while in flight: due again after */
        int64_t pending_since;   /* owed since (left done or dead, or was made); 0 when
                                  * done or dead */
};

/* An attempt (`text` = its detail, may be NULL) or a dead letter (`text` = the reason). */
struct store_attempt {
        const char *sink;
        const char *order_id;
        int64_t rev;
        int64_t at;
        enum store_result_kind kind;
        const char *text;
};

/* Which deliveries a walk visits: every condition given must hold. */
struct store_filter {
        const char *sink;     /* NULL: any */
        const char *order_id; /* NULL: any */
        unsigned states;      /* bits (1u << enum store_state); 0: any */
        int64_t next_at_max;  /* only rows with next_at <= this */
};

/* A named claim on a role that one server at a time plays (a sink's delivery loop, the
 * Bitrix24 poll, the scheduled reconcile) in a store several servers share: held by
 * `owner` from `since` until `until`, by the backend's clock (store_claim has the rule). */
struct store_claim {
        const char *name;
        const char *owner;
        int64_t since, until;
};

struct store_backend;

struct store_backend_ops {
        const char *name;
        /* Several servers may share one store at once (PostgreSQL): `lock` then excludes
         * nobody, and the roles only one server may play go by claims (store_claim). A
         * store that is not shared (SQLite) has no claim operations: its server lock holds
         * every role. */
        bool shared;
        /* Opens (creating and migrating) the store at `location`; on failure `err` says
         * why in words an operator can act on (never a password). -EPROTO: the schema is
         * newer than this program knows; -EACCES: the store refused our credentials;
         * -ECONNREFUSED: the server could not be reached. */
        int (*open)(const char *location, struct store_backend **ret, char *err, size_t err_size);
        void (*close)(struct store_backend *be);
        const char *(*errmsg)(struct store_backend *be);
        /* The exclusive server lock, held until close: -EBUSY and the holder's pid. It must
         * exclude every other server of the same store (SQLite: a file lock beside it). */
        int (*lock)(struct store_backend *be, long *ret_holder_pid);

        int (*begin)(struct store_backend *be); /* a write transaction */
        int (*commit)(struct store_backend *be);
        void (*rollback)(struct store_backend *be);

        int (*webhook_get)(struct store_backend *be, const char *webhook_id,
                           struct store_webhook *ret);
        int (*webhook_add)(struct store_backend *be, const struct store_webhook *w);
        int (*webhook_prune)(struct store_backend *be, int64_t before_ms); /* → count */

        int (*order_get)(struct store_backend *be, const char *order_id, bool with_json,
                         struct store_order *ret);
        int (*order_put)(struct store_backend *be, const struct store_order *o); /* upsert */
        /* Orders with received_at > after_ms, by received_at (or, by_first, by
         * first_received_at) then order_id, from `offset`, at most `limit`, with their
         * json; *ret_total: how many match. */
        int (*order_walk)(struct store_backend *be, int64_t after_ms, bool by_first, size_t offset,
                          size_t limit, int (*cb)(void *arg, const struct store_order *o),
                          void *arg, int64_t *ret_total);
        /* h->rev > 0 (store_copy only) keeps that rev; later ones come after it. */
        int (*history_add)(struct store_backend *be, const struct store_history *h,
                           int64_t *ret_rev);
        int (*history_list)(struct store_backend *be, const char *order_id, size_t limit,
                            int (*cb)(void *arg, const struct store_history *h),
                            void *arg); /* newest first, each with its json */

        int (*delivery_get)(struct store_backend *be, const char *sink, const char *order_id,
                            struct store_delivery *ret);
        int (*delivery_put)(struct store_backend *be, const struct store_delivery *d); /* upsert */
        /* Deliveries by filter; one order's come by sink, otherwise in no set order (a
         * walk of one sink must be a range read on next_at, not a scan of the sink). */
        int (*delivery_walk)(struct store_backend *be, const struct store_filter *f,
                             int (*cb)(void *arg, const struct store_delivery *d), void *arg);
        /* Deliveries of `sink` with next_at <= now_ms joined with their order (its rev,
         * json and received_at), by next_at then rev. */
        int (*delivery_due)(struct store_backend *be, const char *sink, int64_t now_ms,
                            int (*cb)(void *arg, const struct store_delivery *d,
                                      const struct store_order *o),
                            void *arg);
        int (*delivery_next)(struct store_backend *be, const char *sink, int64_t *ret_min);
        int (*delivery_count)(struct store_backend *be, const char *sink,
                              int64_t ret[STORE_N_STATES]);
        /* The least pending_since of `sink`'s pending, inflight and retrying rows, 0 when
         * there is none. */
        int (*delivery_oldest)(struct store_backend *be, const char *sink, int64_t *ret_min);
        int (*delivery_sinks)(struct store_backend *be, int (*cb)(void *arg, const char *name),
                              void *arg);

        int (*attempt_add)(struct store_backend *be, const struct store_attempt *a);
        int (*attempt_list)(struct store_backend *be, const char *order_id, size_t limit,
                            int (*cb)(void *arg, const struct store_attempt *a),
                            void *arg); /* newest first */
        int (*dead_letter_add)(struct store_backend *be, const struct store_attempt *a);
        int (*dead_letter_list)(struct store_backend *be, const char *order_id, size_t limit,
                                int (*cb)(void *arg, const struct store_attempt *a),
                                void *arg); /* newest first */

        int (*link_get)(struct store_backend *be, const char *order_id, const char *kind,
                        const char **ret_remote);
        int (*link_set)(struct store_backend *be, const char *order_id, const char *kind,
                        const char *remote);
        int (*link_list)(struct store_backend *be, const char *order_id,
                         int (*cb)(void *arg, const char *kind, const char *remote),
                         void *arg); /* by kind */
        /* Retention (store_prune_step). Each walks its rows in id order: it looks at the
         * next `limit` rows after `after` (a rev; an attempt id), removes those the rule
         * allows, and sets *ret_last to the last one it looked at (`after` when none is
         * left). Returns how many it removed.
         * history_prune removes a history row received before `before_ms` unless it is
         * its order's latest accepted snapshot (orders.rev), or a delivery of its order
         * that is not done may still need it: rev >= that delivery's done_rev (what the
         * remote holds, and everything after it).
         * attempt_prune removes an attempt made before `before_ms` unless it is the last
         * attempt of its (sink, order). */
        int (*history_prune)(struct store_backend *be, int64_t before_ms, int64_t after,
                             size_t limit, int64_t *ret_last);
        int (*attempt_prune)(struct store_backend *be, int64_t before_ms, int64_t after,
                             size_t limit, int64_t *ret_last);
        /* Gives up to `pages` free pages back to the file system, outside any transaction
         * (SQLite: PRAGMA incremental_vacuum); *ret_bytes: by how much the store shrank.
         * A backend that compacts by itself (PostgreSQL's autovacuum) sets 0. */
        int (*compact)(struct store_backend *be, int64_t pages, int64_t *ret_bytes);
        /* Makes compact able to shrink a store made without it (SQLite: auto_vacuum
         * INCREMENTAL, which an existing file takes only with a VACUUM that rewrites it):
         * 1 when it converted the store, 0 when there was nothing to do. */
        int (*compact_enable)(struct store_backend *be);
        /* The bytes the store takes (SQLite: the database's pages, free ones included). */
        int (*size)(struct store_backend *be, int64_t *ret_bytes);
        int (*meta_get)(struct store_backend *be, const char *key, const char **ret_value);
        /* only_if_absent: an existing value is kept (the oldest wins) */
        int (*meta_set)(struct store_backend *be, const char *key, const char *value,
                        bool only_if_absent);
        int (*meta_list)(struct store_backend *be,
                         int (*cb)(void *arg, const char *key, const char *value),
                         void *arg); /* by key */

        /* Shared stores only (NULL otherwise). `now`: the backend's own clock in ms (one
         * clock for every server: a claim's times are read and written by it). */
        int (*now)(struct store_backend *be, int64_t *ret_ms);
        int (*claim_get)(struct store_backend *be, const char *name, struct store_claim *ret);
        int (*claim_put)(struct store_backend *be, const struct store_claim *c); /* upsert */
        int (*claim_list)(struct store_backend *be,
                          int (*cb)(void *arg, const struct store_claim *c),
                          void *arg); /* by name */
};

extern const struct store_backend_ops store_sqlite_ops;
extern const struct store_backend_ops store_pg_ops;

/* The password the PostgreSQL backend connects with ([store] password_file or
 * $OB_STORE_PASSWORD, read by the configuration); NULL: libpq's own ways (PGPASSWORD,
 * ~/.pgpass). Copied; set it before the first store_open. */
void store_pg_set_password(const char *password);

/* The backend that serves `location` (store.c's table; a plain path is SQLite). */
const struct store_backend_ops *store_backend_for(const char *location);

/* The backend under an open store, for store_copy.c: it moves rows, no rules. */
const struct store_backend_ops *store_backend_of(struct store *s, struct store_backend **ret_be);

/* store_open with a given backend: for tests that wrap a backend to inject faults. */
int store_open_with(const struct store_backend_ops *ops, const char *location, struct store **ret);
