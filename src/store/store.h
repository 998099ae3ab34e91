/*
 * The store interface. The store owns every durable fact: the latest snapshot of each
 * order (and the history of snapshots), each sink's delivery state for each order, the
 * attempts made, dead letters, links to remote records, and small metadata.
 *
 * Policy and mechanism are apart, as in OpenSMTPD's queue: store.c holds the rules (which
 * snapshot is newer, how a delivery moves between states, when a failing one becomes a
 * dead letter, the operator's report) over a table of backend operations
 * (store_backend.h) that only read and write rows; store_sqlite.c is one backend, and a
 * PostgreSQL one is one more table.
 *
 * Level-triggered delivery: every accepted snapshot gets a revision (`rev`, increasing
 * across the whole store). A delivery row says which rev a sink must reach (want_rev)
 * and which it has reached (done_rev). A sink always sends the order's *latest* snapshot,
 * so any number of changes between two sends collapse into one.
 *
 * Work in flight is leased: store_take_due gives rows to an owner until a time, and only
 * that owner's verdicts are recorded; a lease that ends unrenewed puts its rows back.
 *
 * A handle is one backend connection and is used by one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_put_outcome {
        STORE_PUT_ACCEPTED,  /* newer than what was stored: committed, sinks will follow */
        STORE_PUT_STALE,     /* not newer: recorded in history, changes nothing */
        STORE_PUT_DUPLICATE, /* same webhook-id and same body as before: answered as before */
        STORE_PUT_CONFLICT,  /* same webhook-id, different body: refused */
        STORE_PUT_FAILED,    /* the transaction did not commit: nothing was stored */
};

/* "accepted", "stale", "duplicate", "conflict", "failed": for logs and reports. */
const char *store_outcome_name(enum store_put_outcome outcome);

struct store_put {
        /* in */
        const char *order_id;
        const char *site;
        const char *json; /* canonical snapshot */
        bool has_version;
        int64_t version;
        bool has_updated_at;
        int64_t updated_at;
        const char *webhook_id; /* may be NULL (import, poller) */
        unsigned char body_sha256[32];
        const char *source; /* "ingest", "import", … */
        /* NULL: every sink of store_set_sinks follows the order; else only this one (when
         * it is among them). A deal read from Bitrix24 goes to Roistat, never back to
         * Bitrix24 nor to the site. */
        const char *sink_only;
        /* out */
        enum store_put_outcome outcome;
        enum store_put_outcome first_outcome; /* for DUPLICATE: what the first one got */
        int64_t rev;
};

enum store_result_kind {
        STORE_OK,       /* the remote now matches `rev` */
        STORE_TEMPFAIL, /* try again at `next_at` */
        STORE_PERMFAIL, /* dead letter */
        STORE_WAITING,  /* accepted by the remote but not final (Roistat: visit not seen yet) */
};

struct store_work {
        char *order_id;
        int64_t rev; /* the rev of `json` */
        char *json;  /* the order's latest snapshot */
        int64_t attempts;
        int64_t waits;
        int64_t first_failed_at;
        int64_t uncertain_at; /* last attempt whose outcome is unknown, 0 = none */
        int64_t received_at;  /* when `json` was accepted (ms) */
};

struct store_result {
        const char *order_id;
        int64_t rev;
        enum store_result_kind kind;
        int64_t next_at;    /* TEMPFAIL, WAITING: when to look again (ms) */
        const char *detail; /* short reason for attempts / dead letters; never a secret */
        bool uncertain;     /* this attempt may have been applied: remember when */
        bool carried;       /* not a verdict: the sink moved the order into its next pass
                             * (pending again at next_at; no attempt recorded, nothing counted) */
};

/* Durable facts a sink learns during a pass — links to remote records, cached look-ups —
 * returned beside its verdicts and recorded in the same transaction (store_record), so
 * that a link is never kept without the verdict that made it, and a sink's pass costs
 * one commit, not one autocommitted fsync per fact. */
enum store_write_kind {
        STORE_WRITE_LINK,           /* order_id, key = kind ("b24.deal"), value = remote id */
        STORE_WRITE_META,           /* key, value: set */
        STORE_WRITE_META_IF_ABSENT, /* key, value: set unless the key exists (oldest wins) */
        STORE_WRITE_REQUEST,        /* order_id, key = a sink: store_request it (the Bitrix24
                                     * sink, on creating a deal, asks the site sink to tell
                                     * the site its id) */
};

struct store_write {
        enum store_write_kind kind;
        char *order_id; /* LINK only */
        char *key;
        char *value;
};

struct store_writes {
        struct store_write *items;
        size_t n, cap;
};

void store_writes_link(struct store_writes *w, const char *order_id, const char *kind,
                       const char *remote);
void store_writes_meta(struct store_writes *w, const char *key, const char *value,
                       bool only_if_absent);
void store_writes_request(struct store_writes *w, const char *order_id, const char *sink);
/* The value the pending writes give `key` (meta) or (order_id, kind) (link), or NULL:
 * a sink reads its own writes of this pass before the store. */
const char *store_writes_find_meta(const struct store_writes *w, const char *key);
const char *store_writes_find_link(const struct store_writes *w, const char *order_id,
                                   const char *kind);
void store_writes_clear(struct store_writes *w);

struct store_counts {
        int64_t pending, inflight, retrying, waiting, done, dead;
        /* since when the longest-owed pending, in-flight or retrying delivery has been
         * owed (ms; it left done or dead then, or was made), 0 when there is none */
        int64_t oldest_pending_at;
};

/* Opens the store at `location`: a file path (SQLite). Creates and migrates the schema. */
int store_open(const char *location, struct store **ret);
/* Several servers share this store (PostgreSQL): each takes orders and writes at will,
 * and the roles only one of them may play at a time go by store_claim. */
bool store_shared(struct store *s);
/* Takes or renews the claim `name` (a sink's delivery, the Bitrix24 poll…) for `owner`
 * for `ttl_ms` by the store's clock: 2 when `owner` takes it (it was free, or its last
 * holder let it lapse: what that holder left in flight is now ownerless), 1 when `owner`
 * held it and keeps it, 0 when another holds it (*ret_left_ms: until its claim ends
 * unless renewed). A store that is not shared: always 1 (its server lock holds every
 * role). */
int store_claim(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                int64_t *ret_left_ms);
/* Gives the claim up, when `owner` holds it, so that another server takes it at once. */
int store_unclaim(struct store *s, const char *name, const char *owner);
/* The claims and who holds them (left_ms <= 0: lapsed), by name. */
int store_claims(struct store *s,
                 int (*cb)(void *arg, const char *name, const char *owner, int64_t since,
                           int64_t left_ms),
                 void *arg);
/* Copies every order of `src` (history, deliveries in their states, attempts, dead
 * letters, links) and its meta into `dst`, which must hold no order (-EEXIST), a page of
 * orders per transaction, telling `progress` (may be NULL) after each. Returns how many
 * orders it copied. `src` should be locked (store_lock): nothing may change it meanwhile. */
int store_copy(struct store *src, struct store *dst,
               void (*progress)(void *arg, int64_t done, int64_t total), void *arg);
/* Why this thread's last failed store_open failed, in words an operator can act on
 * (the location and the backend's reason; never a password). */
const char *store_open_error(void);
struct store *store_close(struct store *s);

/* Makes this handle the store's only server until store_close (Postfix's master.lock):
 * -EBUSY when another process holds it, with its pid in *ret_holder_pid (0 when unknown).
 * Readers and writers that do not serve (status, retry, import) never take it. */
int store_lock(struct store *s, long *ret_holder_pid);

/* The sinks that newly accepted snapshots must reach (names like "roistat"). */
void store_set_sinks(struct store *s, const char *const *sinks, size_t n);

/* Stores a group of snapshots in one transaction (group commit). Every put gets its
 * outcome; on failure all are STORE_PUT_FAILED and -EIO (or another -errno) is returned. */
int store_put(struct store *s, struct store_put *puts, size_t n, int64_t now_ms);

/* Forgets webhook ids received before `before_ms` (a sender's retries come within
 * minutes; the ids only need to outlive them). Returns how many were dropped. */
int store_prune_webhook_ids(struct store *s, int64_t before_ms);

/* Deliveries of `sink` due at `now_ms`, at most `limit`, oldest first, leased to `owner`
 * until now_ms + lease_ms (in flight) in the same transaction. Free with store_work_free. */
int store_take_due(struct store *s, const char *sink, const char *owner, int64_t now_ms,
                   int64_t lease_ms, size_t limit, struct store_work **ret, size_t *ret_n);
void store_work_free(struct store_work *w, size_t n);

/* Extends every lease that `owner` holds on `sink` to now_ms + lease_ms. Returns how many
 * rows it holds. */
int store_renew(struct store *s, const char *sink, const char *owner, int64_t now_ms,
                int64_t lease_ms);

/* Records what happened to work taken earlier by `owner` and the side writes of the same
 * pass (`writes`, may be NULL), one transaction for all. A TEMPFAIL past `lifetime_ms`
 * since the first failure becomes a dead letter. A verdict on a row that `owner` no
 * longer holds (its lease ended and the row was put back or taken by another) is not
 * applied: returns 0 when every verdict was applied, else how many were not. On failure
 * (-errno) nothing is recorded. */
int store_record(struct store *s, const char *sink, const char *owner,
                 const struct store_result *results, size_t n, const struct store_writes *writes,
                 int64_t now_ms, int64_t lifetime_ms);

/* Rows of `sink` whose lease has ended go back to pending, marked uncertain (the request
 * may yet be applied). Returns how many. */
int store_requeue_expired(struct store *s, const char *sink, int64_t now_ms);

/* Start-up recovery, once per sink before any dispatcher runs (Postfix's qmgr moves
 * `active` back to `incoming` before any scan). Needs store_lock: the lock proves that
 * no other process serves this store, so every lease still recorded was granted to a run
 * that has ended, and ended with it. Those rows go back to pending, marked uncertain.
 * Returns how many; -ENOLCK without the lock. In a shared store the same proof is the
 * sink's claim, just taken (store_claim returned 2): the caller must hold it. */
int store_recover(struct store *s, const char *sink, int64_t now_ms);

/* The sinks that have delivery rows, enabled in this run or not (for store_recover).
 * Free with store_names_free. */
int store_sinks(struct store *s, char ***ret_names, size_t *ret_n);
void store_names_free(char **names, size_t n);

/* When a delivery of `sink` next needs attention (is due, or its lease ends), or
 * INT64_MAX. */
int64_t store_next_due(struct store *s, const char *sink);

int store_counts(struct store *s, const char *sink, struct store_counts *ret);

/* The i-th delivery state's name ("pending", "inflight", "retrying", "waiting", "done",
 * "dead": the order every view lists them in) and its count in *c; NULL past the last.
 * A view walks it rather than naming the six fields, so none misses a state. */
const char *store_counts_nth(const struct store_counts *c, size_t i, int64_t *ret_n);

/* A dead delivery, as the operator's views list it. */
struct store_dead_view {
        const char *sink;
        const char *order_id;
        int64_t rev;      /* the rev it gave up on */
        int64_t at;       /* when it died (ms) */
        int64_t attempts;
        const char *reason; /* the remote's words, or ours ("gave up: …") */
};

/* The dead deliveries of `sink` (NULL: every sink), newest first, at most `limit`, each
 * handed to `cb` (strings valid during the call; 0 go on, >0 stop, <0 fail).
 * *ret_total (may be NULL): how many there are in all. */
int store_dead_list(struct store *s, const char *sink, size_t limit,
                    int (*cb)(void *arg, const struct store_dead_view *d), void *arg,
                    int64_t *ret_total);

/* Dead (and retrying) deliveries back to pending now; order_id NULL = all. Returns how
 * many rows changed. */
int store_retry(struct store *s, const char *sink, const char *order_id, int64_t now_ms);

/* Something other than a new snapshot asks `sink` to look at `order_id` again (the CRM
 * moved a deal the site must follow; reconcile found drift): records `writes` (may be
 * NULL) and makes that delivery pending now, in one transaction. One in flight is due
 * again as soon as its pass ends, whatever that pass's verdict; a dead one comes back
 * with its attempts reset; one that does not exist yet is made at the order's rev.
 * -ENOENT when the order is unknown (nothing is recorded then). */
int store_request(struct store *s, const char *sink, const char *order_id,
                  const struct store_writes *writes, int64_t now_ms);

/* store_request for an instruction kept as the link (order_id, kind): asks only when that
 * link does not hold `value` already, and then records it, in one transaction. The same
 * instruction seen again (the event and the poll, a redelivered event) changes nothing,
 * whatever became of it: a refused one stays one dead letter until a new instruction or
 * `retry`. *ret_asked says which. -ENOENT when the order is unknown. */
int store_request_once(struct store *s, const char *sink, const char *order_id,
                       const char *kind, const char *value, int64_t now_ms, bool *ret_asked);

/* An order as a listing shows it. */
struct store_order_view {
        const char *order_id;
        int64_t rev;
        const char *json;          /* its latest accepted snapshot (canonical JSON) */
        int64_t received_at;       /* when that snapshot was accepted (ms) */
        int64_t first_received_at; /* when the order was first accepted (ms) */
};

/* How a listing of changed orders is sorted (then by order id). */
enum store_order_by {
        STORE_BY_CHANGE, /* oldest change first: an order that changes moves to the end (a
                          * walk that goes on from the last change it read, reconcile's) */
        STORE_BY_FIRST,  /* first accepted first: a change keeps an order's place, new orders
                          * come last (offset pages, Roistat's pull export: an order changed
                          * while Roistat pages does not shift the rest past an offset) */
};

/* The orders whose latest snapshot was accepted after `after_ms`, sorted `by`, skipping
 * `offset`, at most `limit`, each handed to `cb` (its strings valid during the call; cb
 * returns 0 to go on, >0 to stop, <0 to fail). *ret_total (may be NULL): how many match
 * in all. */
int store_orders_changed(struct store *s, int64_t after_ms, enum store_order_by by,
                         size_t offset, size_t limit,
                         int (*cb)(void *arg, const struct store_order_view *o), void *arg,
                         int64_t *ret_total);

/* One order's latest accepted snapshot: 0 and *ret_json (caller frees) and, when not
 * NULL, *ret_received_at (ms); -ENOENT when unknown. */
int store_order_snapshot(struct store *s, const char *order_id, char **ret_json,
                         int64_t *ret_received_at);

/* One order's state as a JSON document (snapshot, history, deliveries, attempts, links):
 * 0 and *ret_json, -ENOENT when unknown. */
int store_order_report(struct store *s, const char *order_id, char **ret_json);

int store_meta_get(struct store *s, const char *key, char **ret_value);
int store_meta_set(struct store *s, const char *key, const char *value);

int store_link_get(struct store *s, const char *order_id, const char *kind, char **ret_remote);
int store_link_set(struct store *s, const char *order_id, const char *kind, const char *remote);

/* ---- retention ---- */

/* A pruning pass: zeroed to start one; store_prune_step moves its cursors on and adds up
 * what it removed. */
struct store_prune {
        int64_t after_rev;     /* the history walk: the last rev looked at */
        int64_t after_attempt; /* the attempts walk: the last attempt looked at */
        bool history_done;     /* the history walk reached the end; attempts are next */
        int64_t versions;      /* snapshot versions removed by this pass */
        int64_t attempts;      /* attempts removed by this pass */
};

/* One bounded step of a pass that forgets what was received or tried before `before_ms`
 * and is needed no more: snapshot versions that are superseded (never an order's latest,
 * never one a delivery that is not done may still need: the one its remote holds and
 * every later one), then attempts (never the last of a delivery, so a dead letter keeps
 * the remote's words). A step looks at no more than `limit` rows, in one transaction, so
 * it holds the store briefly. Returns 1 while the pass has more to look at, 0 once it is
 * complete, -errno when the step failed (it removed nothing; `p` is unchanged). */
int store_prune_step(struct store *s, struct store_prune *p, int64_t before_ms, size_t limit);

/* Gives up to `pages` free pages (4 KiB each in SQLite) back to the file system, so that
 * what a prune freed leaves the file; *ret_bytes_freed: by how much it shrank (0 when
 * nothing was free). 0 or -errno. */
int store_compact(struct store *s, int64_t pages, int64_t *ret_bytes_freed);

/* Makes store_compact work on a store created before it could (SQLite: a file with
 * auto_vacuum=NONE is rewritten once by VACUUM; that takes a while, and as much free disk
 * as the file). For the server at start, under store_lock. 1 when it converted the store,
 * 0 when there was nothing to do, -errno (the store is as it was). */
int store_compact_enable(struct store *s);

/* The bytes the store takes on disk (for /metrics and the bytes-per-order figure). */
int store_size(struct store *s, int64_t *ret_bytes);

/* The last error's text (the backend's words), for the caller's log line. */
const char *store_errmsg(struct store *s);
