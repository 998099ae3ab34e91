/*
 * The store's policy, over a backend that only moves rows (store_backend.h): which
 * snapshot is newer (snapshot_order_is_newer, the one copy of the rule), how a delivery
 * moves between states, when a failing delivery becomes a dead letter, who holds work in
 * flight (leases), and what the operator's report says.
 *
 * A delivery moves: pending → inflight → done | retrying | waiting | dead, and back to
 * pending when a newer snapshot arrives — except that a retrying row keeps its backoff
 * (new snapshots never make a sink hammer a remote that is down), and a row in flight
 * stays in flight: the verdict on the older rev, whatever it is (even a dead letter),
 * then sends it back to pending, because the newer snapshot may well be deliverable.
 *
 * In flight means leased: an owner holds the row until a time (next_at). Only the holder's
 * verdict is recorded; a lease that ends unrenewed puts the row back to pending, marked
 * uncertain (the request may yet be applied). Every public call is one transaction.
 */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/xalloc.h"
#include "model/snapshot.h"
#include "store/store_backend.h"

struct store {
        const struct store_backend_ops *ops;
        struct store_backend *be;
        char **sinks;
        size_t n_sinks;
        bool locked;
        const char *err; /* a failure decided here rather than by the backend */
};

static const char *const state_names[STORE_N_STATES] = {
    [STORE_STATE_PENDING] = "pending",   [STORE_STATE_INFLIGHT] = "inflight",
    [STORE_STATE_RETRYING] = "retrying", [STORE_STATE_WAITING] = "waiting",
    [STORE_STATE_DONE] = "done",         [STORE_STATE_DEAD] = "dead",
};
static const char *const outcome_names[] = {"accepted", "stale", "duplicate", "conflict", "failed"};
static const char *const kind_names[] = {"ok", "tempfail", "permfail", "waiting"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse_name(const char *const *names, size_t n, const char *name)
{
        for (size_t i = 0; name && i < n; i++)
                if (strcmp(names[i], name) == 0)
                        return (int)i;
        return -EINVAL;
}

const struct store_backend_ops *store_backend_of(struct store *s, struct store_backend **ret_be)
{
        *ret_be = s->be;
        return s->ops;
}

const char *store_state_name(enum store_state state)
{
        return state_names[state];
}

int store_state_parse(const char *name, enum store_state *ret)
{
        int i = parse_name(state_names, N(state_names), name);

        if (i >= 0)
                *ret = (enum store_state)i;
        return i < 0 ? i : 0;
}

const char *store_outcome_name(enum store_put_outcome outcome)
{
        return (size_t)outcome < N(outcome_names) ? outcome_names[outcome] : "unknown";
}

int store_outcome_parse(const char *name, enum store_put_outcome *ret)
{
        int i = parse_name(outcome_names, N(outcome_names), name);

        if (i >= 0)
                *ret = (enum store_put_outcome)i;
        return i < 0 ? i : 0;
}

const char *store_kind_name(enum store_result_kind kind)
{
        return kind_names[kind];
}

int store_kind_parse(const char *name, enum store_result_kind *ret)
{
        int i = parse_name(kind_names, N(kind_names), name);

        if (i >= 0)
                *ret = (enum store_result_kind)i;
        return i < 0 ? i : 0;
}

#ifdef ORDERBRIDGE_BENCH_CEILING
extern const struct store_backend_ops store_null_ops; /* bench/store_null.c */
#endif

/* The backends, by the prefix of their location ([store] path); the last row, a plain
 * file path, is SQLite. A new backend (PostgreSQL: "postgresql://") is one row. */
static const struct {
        const char *prefix;
        const struct store_backend_ops *ops;
} backends[] = {
#ifdef ORDERBRIDGE_BENCH_CEILING
        {"null:", &store_null_ops}, /* only in bench/'s orderbridge-ceiling */
#endif
        {"postgresql://", &store_pg_ops},
        {"postgres://", &store_pg_ops},
        {"", &store_sqlite_ops},
};

const struct store_backend_ops *store_backend_for(const char *location)
{
        for (size_t i = 0; i < N(backends); i++)
                if (strncmp(location, backends[i].prefix, strlen(backends[i].prefix)) == 0)
                        return backends[i].ops;
        return &store_sqlite_ops;
}

const char *store_errmsg(struct store *s)
{
        return s->err ? s->err : s->ops->errmsg(s->be);
}

/* A failure decided by the policy: store_errmsg says why. */
static int fail(struct store *s, int r, const char *why)
{
        s->err = why;
        return r;
}

/* Why this thread's last store_open failed (store_open_error). */
static _Thread_local char open_err[512];

const char *store_open_error(void)
{
        return open_err[0] ? open_err : "unknown error";
}

int store_open_with(const struct store_backend_ops *ops, const char *location, struct store **ret)
{
        struct store *s;
        int r;

        s = xcalloc(1, sizeof(*s));
        s->ops = ops;
        open_err[0] = '\0';
        r = ops->open(location, &s->be, open_err, sizeof(open_err));
        if (r < 0) {
                if (!open_err[0])
                        snprintf(open_err, sizeof(open_err), "%s", strerror(-r));
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int store_open(const char *location, struct store **ret)
{
        return store_open_with(store_backend_for(location), location, ret);
}

struct store *store_close(struct store *s)
{
        if (!s)
                return NULL;
        s->ops->close(s->be);
        store_names_free(s->sinks, s->n_sinks);
        free(s);
        return NULL;
}

int store_lock(struct store *s, long *ret_holder_pid)
{
        long pid = 0;
        int r;

        s->err = NULL;
        r = s->ops->lock(s->be, &pid);
        if (r == -EBUSY)
                *ret_holder_pid = pid;
        if (r == 0)
                s->locked = true;
        return r;
}

void store_set_sinks(struct store *s, const char *const *sinks, size_t n)
{
        store_names_free(s->sinks, s->n_sinks);
        s->sinks = xcalloc(n ? n : 1, sizeof(*s->sinks));
        for (size_t i = 0; i < n; i++)
                s->sinks[i] = xstrdup(sinks[i]);
        s->n_sinks = n;
}

void store_names_free(char **names, size_t n)
{
        for (size_t i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
}

/* Ends a transaction: commits after success, rolls back after a failure. */
static int finish(struct store *s, int r)
{
        if (r >= 0) {
                int c = s->ops->commit(s->be);
                if (c == 0)
                        return r;
                r = c;
        }
        s->ops->rollback(s->be);
        return r;
}

/* ---- the delivery state machine ---- */

/* A row that is owed (pending, in flight, retrying, waiting) keeps the time it became
 * owed; one that is settled (done, dead) has none. Called after every change of state. */
static void mark_owed(struct store_delivery *d, int64_t now)
{
        if (d->state == STORE_STATE_DONE || d->state == STORE_STATE_DEAD)
                d->pending_since = 0;
        else if (!d->pending_since)
                d->pending_since = now;
}

/* A newer rev of the order arrived (`d` is the row, or zeroed when there is none). */
static void on_new_rev(struct store_delivery *d, bool exists, int64_t rev, int64_t now)
{
        if (!exists) {
                d->state = STORE_STATE_PENDING;
                d->next_at = now;
        } else if (d->state == STORE_STATE_DEAD) {
                d->state = STORE_STATE_PENDING;
                d->next_at = now;
                d->attempts = 0;
                d->first_failed_at = 0;
        } else if (d->state != STORE_STATE_INFLIGHT && d->state != STORE_STATE_RETRYING) {
                d->state = STORE_STATE_PENDING;
                d->next_at = now;
        }
        d->want_rev = rev;
        d->updated_at = now;
        mark_owed(d, now);
}

/* Asked to look again (store_request), with no new rev: due now, or, in flight, as soon
 * as the pass ends. A new row starts at the order's rev `rev`. */
static void on_request(struct store_delivery *d, bool exists, int64_t rev, int64_t now)
{
        if (!exists) {
                d->want_rev = rev;
        } else if (d->state == STORE_STATE_INFLIGHT) {
                d->requested = true;
                d->updated_at = now;
                return;
        }
        if (d->state == STORE_STATE_DEAD || !exists) {
                d->attempts = 0;
                d->first_failed_at = 0;
        }
        d->state = STORE_STATE_PENDING;
        d->next_at = now;
        d->updated_at = now;
        mark_owed(d, now);
}

/* Taken by `owner` until `until`. */
static void on_take(struct store_delivery *d, int64_t rev, const char *owner, int64_t until,
                    int64_t now)
{
        d->requested = false;
        d->state = STORE_STATE_INFLIGHT;
        d->sent_rev = rev;
        d->lease_owner = owner;
        d->next_at = until;
        d->updated_at = now;
}

/* The lease ended, or the run that held it did: back to pending, the outcome unknown. */
static void on_lease_end(struct store_delivery *d, int64_t now)
{
        d->state = STORE_STATE_PENDING;
        d->lease_owner = NULL;
        d->next_at = now;
        d->uncertain_at = now;
        d->updated_at = now;
}

/* A verdict on the rev in flight. Returns the kind that was recorded (a TEMPFAIL past the
 * lifetime is a PERMFAIL) and sets *detail to the words recorded with it. */
static enum store_result_kind on_verdict(struct store_delivery *d, const struct store_result *res,
                                         int64_t now, int64_t lifetime_ms, const char **detail)
{
        enum store_result_kind kind = res->kind;

        *detail = res->detail;
        if (res->carried) {
                d->state = STORE_STATE_PENDING;
                d->lease_owner = NULL;
                d->next_at = res->next_at;
                d->updated_at = now;
                return kind;
        }
        switch (kind) {
        case STORE_OK:
                d->state = STORE_STATE_DONE;
                if (res->rev > d->done_rev)
                        d->done_rev = res->rev;
                d->attempts = 0;
                d->waits = 0;
                d->first_failed_at = 0;
                *detail = NULL;
                break;
        case STORE_WAITING:
                d->state = STORE_STATE_WAITING;
                d->next_at = res->next_at;
                d->waits++;
                d->attempts = 0;
                d->first_failed_at = 0;
                break;
        case STORE_TEMPFAIL:
                if (!d->first_failed_at)
                        d->first_failed_at = now;
                d->attempts++;
                if (now - d->first_failed_at >= lifetime_ms) {
                        kind = STORE_PERMFAIL;
                        *detail = "gave up: still failing after the delivery lifetime";
                        d->state = STORE_STATE_DEAD;
                } else {
                        d->state = STORE_STATE_RETRYING;
                        d->next_at = res->next_at;
                }
                break;
        case STORE_PERMFAIL:
                d->state = STORE_STATE_DEAD;
                d->attempts++;
                break;
        }
        if (d->state == STORE_STATE_DONE || d->state == STORE_STATE_DEAD) {
                /* a newer snapshot, or a request, came while this one was in flight: it
                 * is due now */
                if (d->want_rev > res->rev || d->requested) {
                        d->state = STORE_STATE_PENDING;
                        d->next_at = now;
                } else {
                        d->next_at = STORE_NEVER;
                }
        } else if (d->requested) {
                d->next_at = now; /* retrying or waiting, but asked to look again */
        }
        d->requested = false;
        d->last_error = kind == STORE_OK ? NULL : *detail ? *detail : "";
        if (res->uncertain)
                d->uncertain_at = now;
        d->lease_owner = NULL;
        d->updated_at = now;
        mark_owed(d, now);
        return kind;
}

/* ---- snapshots ---- */

static bool put_is_newer(const struct store_put *p, const struct store_order *cur)
{
        struct snapshot_order_key incoming = {p->has_version, p->version, p->has_updated_at,
                                              p->updated_at};
        struct snapshot_order_key stored = {cur->has_version, cur->version,
                                            cur->has_updated_at, cur->updated_at};

        return snapshot_order_is_newer(&incoming, &stored);
}

static int put_deliveries(struct store *s, const struct store_put *p, int64_t now)
{
        for (size_t i = 0; i < s->n_sinks; i++) {
                struct store_delivery d = {0};
                int r;

                if (p->sink_only && strcmp(p->sink_only, s->sinks[i]) != 0)
                        continue;
                r = s->ops->delivery_get(s->be, s->sinks[i], p->order_id, &d);
                if (r < 0 && r != -ENOENT)
                        return r;
                d.sink = s->sinks[i];
                d.order_id = p->order_id;
                on_new_rev(&d, r == 0, p->rev, now);
                if ((r = s->ops->delivery_put(s->be, &d)) < 0)
                        return r;
        }
        return 0;
}

static int put_one(struct store *s, struct store_put *p, int64_t now)
{
        const struct store_backend_ops *ops = s->ops;
        struct store_order cur = {0};
        struct store_history h;
        int64_t rev = 0;
        bool exists;
        int r;

        p->rev = 0;
        if (p->webhook_id) {
                struct store_webhook w;
                r = ops->webhook_get(s->be, p->webhook_id, &w);
                if (r == 0) {
                        if (memcmp(w.body_sha256, p->body_sha256, 32) != 0) {
                                p->outcome = STORE_PUT_CONFLICT;
                                return 0;
                        }
                        p->outcome = STORE_PUT_DUPLICATE;
                        p->first_outcome =
                            w.outcome == STORE_PUT_STALE ? STORE_PUT_STALE : STORE_PUT_ACCEPTED;
                        return 0;
                }
                if (r != -ENOENT)
                        return r;
        }

        r = ops->order_get(s->be, p->order_id, false, &cur);
        if (r < 0 && r != -ENOENT)
                return r;
        exists = r == 0;
        p->outcome = !exists || put_is_newer(p, &cur) ? STORE_PUT_ACCEPTED : STORE_PUT_STALE;

        /* history: every snapshot, accepted or stale, for `status ORDER_ID` */
        h = (struct store_history){.order_id = p->order_id,
                                   .has_version = p->has_version,
                                   .version = p->version,
                                   .received_at = now,
                                   .source = p->source,
                                   .outcome = p->outcome,
                                   .json = p->json};
        if ((r = ops->history_add(s->be, &h, &rev)) < 0)
                return r;

        if (p->outcome == STORE_PUT_ACCEPTED) {
                struct store_order o = {.order_id = p->order_id,
                                        .site = p->site,
                                        .rev = rev,
                                        .has_version = p->has_version,
                                        .version = p->version,
                                        .has_updated_at = p->has_updated_at,
                                        .updated_at = p->updated_at,
                                        .json = p->json,
                                        .received_at = now,
                                        .first_received_at = exists ? cur.first_received_at : now};
                p->rev = rev;
                if ((r = ops->order_put(s->be, &o)) < 0 || (r = put_deliveries(s, p, now)) < 0)
                        return r;
        }
        if (p->webhook_id) {
                struct store_webhook w = {.webhook_id = p->webhook_id,
                                          .order_id = p->order_id,
                                          .outcome = p->outcome,
                                          .received_at = now};
                memcpy(w.body_sha256, p->body_sha256, 32);
                if ((r = ops->webhook_add(s->be, &w)) < 0)
                        return r;
        }
        return 0;
}

int store_put(struct store *s, struct store_put *puts, size_t n, int64_t now_ms)
{
        int r;

        s->err = NULL;
        r = s->ops->begin(s->be);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = put_one(s, &puts[i], now_ms);
        r = finish(s, r);
        if (r < 0)
                for (size_t i = 0; i < n; i++) {
                        puts[i].outcome = STORE_PUT_FAILED;
                        puts[i].rev = 0;
                }
        return r;
}

int store_prune_webhook_ids(struct store *s, int64_t before_ms)
{
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        return finish(s, s->ops->webhook_prune(s->be, before_ms));
}

/* ---- retention ---- */

int store_prune_step(struct store *s, struct store_prune *p, int64_t before_ms, size_t limit)
{
        int64_t last = 0;
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        if (!p->history_done)
                r = s->ops->history_prune(s->be, before_ms, p->after_rev, limit, &last);
        else
                r = s->ops->attempt_prune(s->be, before_ms, p->after_attempt, limit, &last);
        if ((r = finish(s, r)) < 0)
                return r;
        if (!p->history_done) {
                p->versions += r;
                p->history_done = last == p->after_rev;
                p->after_rev = last;
                return 1;
        }
        p->attempts += r;
        if (last == p->after_attempt)
                return 0;
        p->after_attempt = last;
        return 1;
}

int store_compact(struct store *s, int64_t pages, int64_t *ret_bytes_freed)
{
        int64_t bytes = 0;
        int r;

        s->err = NULL;
        if ((r = s->ops->compact(s->be, pages, &bytes)) == 0)
                *ret_bytes_freed = bytes;
        return r;
}

int store_compact_enable(struct store *s)
{
        s->err = NULL;
        if (!s->locked) {
                s->err = "converting the store needs the server lock";
                return -ENOLCK;
        }
        return s->ops->compact_enable(s->be);
}

/* ---- work in flight ---- */

/* A delivery row copied out of a walk, to be changed and written back. */
struct held {
        struct store_delivery d;
        char *sink, *order_id, *last_error, *lease_owner;
};

static void held_copy(struct held *h, const struct store_delivery *d)
{
        h->d = *d;
        h->d.sink = h->sink = xstrdup(d->sink);
        h->d.order_id = h->order_id = xstrdup(d->order_id);
        h->d.last_error = h->last_error = d->last_error ? xstrdup(d->last_error) : NULL;
        h->d.lease_owner = h->lease_owner = d->lease_owner ? xstrdup(d->lease_owner) : NULL;
}

static void held_clear(struct held *h)
{
        free(h->sink);
        free(h->order_id);
        free(h->last_error);
        free(h->lease_owner);
}

struct held_list {
        struct held *rows;
        size_t n, cap;
        unsigned states;   /* collect only these */
        const char *owner; /* and, when set, only rows this owner holds */
};

static int collect(void *arg, const struct store_delivery *d)
{
        struct held_list *l = arg;

        if (l->owner && (!d->lease_owner || strcmp(d->lease_owner, l->owner) != 0))
                return 0;
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 16;
                l->rows = xrealloc(l->rows, l->cap * sizeof(*l->rows));
        }
        held_copy(&l->rows[l->n++], d);
        return 0;
}

static void held_list_clear(struct held_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                held_clear(&l->rows[i]);
        free(l->rows);
}

/* Reads the rows `f` selects (copies: the walk must end before any is written back). */
static int collect_rows(struct store *s, const struct store_filter *f, const char *owner,
                        struct held_list *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->owner = owner;
        return s->ops->delivery_walk(s->be, f, collect, ret);
}

struct due_list {
        struct store_work *w;
        struct held *rows;
        size_t n, limit;
};

static int collect_due(void *arg, const struct store_delivery *d, const struct store_order *o)
{
        struct due_list *l = arg;
        struct store_work *w;

        /* next_at <= now also finds rows whose lease ended: those wait for a requeue */
        if (d->state != STORE_STATE_PENDING && d->state != STORE_STATE_RETRYING &&
            d->state != STORE_STATE_WAITING)
                return 0;
        w = &l->w[l->n];
        w->order_id = xstrdup(d->order_id);
        w->rev = o->rev;
        w->json = xstrdup(o->json ? o->json : "");
        w->attempts = d->attempts;
        w->waits = d->waits;
        w->first_failed_at = d->first_failed_at;
        w->uncertain_at = d->uncertain_at;
        w->received_at = o->received_at;
        held_copy(&l->rows[l->n], d);
        return ++l->n == l->limit ? 1 : 0;
}

int store_take_due(struct store *s, const char *sink, const char *owner, int64_t now_ms,
                   int64_t lease_ms, size_t limit, struct store_work **ret, size_t *ret_n)
{
        struct due_list l = {0};
        int r;

        *ret = NULL;
        *ret_n = 0;
        s->err = NULL;
        if (limit == 0)
                return 0;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        l.w = xcalloc(limit, sizeof(*l.w));
        l.rows = xcalloc(limit, sizeof(*l.rows));
        l.limit = limit;
        r = s->ops->delivery_due(s->be, sink, now_ms, collect_due, &l);
        for (size_t i = 0; r == 0 && i < l.n; i++) {
                on_take(&l.rows[i].d, l.w[i].rev, owner, now_ms + lease_ms, now_ms);
                r = s->ops->delivery_put(s->be, &l.rows[i].d);
        }
        r = finish(s, r);
        for (size_t i = 0; i < l.n; i++)
                held_clear(&l.rows[i]);
        free(l.rows);
        if (r < 0 || l.n == 0) {
                store_work_free(l.w, l.n);
                return r < 0 ? r : 0;
        }
        *ret = l.w;
        *ret_n = l.n;
        return 0;
}

void store_work_free(struct store_work *w, size_t n)
{
        if (!w)
                return;
        for (size_t i = 0; i < n; i++) {
                free(w[i].order_id);
                free(w[i].json);
        }
        free(w);
}

/* The in-flight rows of `sink` (an in-flight row's next_at is its lease's end, never
 * STORE_NEVER), optionally only those whose lease ends by `until` or that `owner` holds. */
static int collect_inflight(struct store *s, const char *sink, int64_t until, const char *owner,
                            struct held_list *ret)
{
        struct store_filter f = {.sink = sink,
                                 .states = 1u << STORE_STATE_INFLIGHT,
                                 .next_at_max = until < STORE_NEVER ? until : STORE_NEVER - 1};

        return collect_rows(s, &f, owner, ret);
}

int store_renew(struct store *s, const char *sink, const char *owner, int64_t now_ms,
                int64_t lease_ms)
{
        struct held_list l;
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        r = collect_inflight(s, sink, STORE_NEVER, owner, &l);
        for (size_t i = 0; r == 0 && i < l.n; i++) {
                l.rows[i].d.next_at = now_ms + lease_ms;
                r = s->ops->delivery_put(s->be, &l.rows[i].d);
        }
        r = finish(s, r < 0 ? r : (int)l.n);
        held_list_clear(&l);
        return r;
}

static int requeue(struct store *s, const char *sink, int64_t until, int64_t now_ms)
{
        struct held_list l;
        int r;

        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        r = collect_inflight(s, sink, until, NULL, &l);
        for (size_t i = 0; r == 0 && i < l.n; i++) {
                on_lease_end(&l.rows[i].d, now_ms);
                r = s->ops->delivery_put(s->be, &l.rows[i].d);
        }
        r = finish(s, r < 0 ? r : (int)l.n);
        held_list_clear(&l);
        return r;
}

int store_requeue_expired(struct store *s, const char *sink, int64_t now_ms)
{
        s->err = NULL;
        return requeue(s, sink, now_ms, now_ms);
}

int store_recover(struct store *s, const char *sink, int64_t now_ms)
{
        s->err = NULL;
        if (!s->locked && !s->ops->shared)
                return fail(s, -ENOLCK, "recovery needs the store's lock (store_lock)");
        return requeue(s, sink, STORE_NEVER, now_ms);
}

/* ---- claims: who plays a role, in a store several servers share ---- */

bool store_shared(struct store *s)
{
        return s->ops->shared;
}

int store_claim(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                int64_t *ret_left_ms)
{
        struct store_claim c;
        int64_t now;
        bool ours;
        int r;

        s->err = NULL;
        *ret_left_ms = ttl_ms;
        if (!s->ops->shared)
                return 1; /* the server lock holds every role */
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        if ((r = s->ops->now(s->be, &now)) < 0)
                return finish(s, r);
        r = s->ops->claim_get(s->be, name, &c);
        if (r < 0 && r != -ENOENT)
                return finish(s, r);
        if (r == 0 && c.until > now && strcmp(c.owner, owner) != 0) {
                /* another's, and alive: it ends when its holder stops renewing it */
                *ret_left_ms = c.until - now;
                return finish(s, 0);
        }
        ours = r == 0 && c.until > now; /* and so, by now, owned by `owner` */
        c = (struct store_claim){name, owner, ours ? c.since : now, now + ttl_ms};
        r = s->ops->claim_put(s->be, &c);
        return finish(s, r < 0 ? r : ours ? 1 : 2);
}

int store_unclaim(struct store *s, const char *name, const char *owner)
{
        struct store_claim c;
        int64_t now;
        int r;

        s->err = NULL;
        if (!s->ops->shared)
                return 0;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        if ((r = s->ops->now(s->be, &now)) == 0 &&
            (r = s->ops->claim_get(s->be, name, &c)) == 0 && strcmp(c.owner, owner) == 0 &&
            c.until > now) {
                c.until = now; /* ended: the next server to ask takes it at once */
                r = s->ops->claim_put(s->be, &c);
        }
        return finish(s, r == -ENOENT ? 0 : r);
}

struct claim_walk {
        int (*cb)(void *arg, const char *name, const char *owner, int64_t since,
                  int64_t left_ms);
        void *arg;
        int64_t now;
};

static int claim_row(void *arg, const struct store_claim *c)
{
        struct claim_walk *w = arg;

        return w->cb(w->arg, c->name, c->owner, c->since, c->until - w->now);
}

int store_claims(struct store *s,
                 int (*cb)(void *arg, const char *name, const char *owner, int64_t since,
                           int64_t left_ms),
                 void *arg)
{
        struct claim_walk w = {cb, arg, 0};
        int r;

        s->err = NULL;
        if (!s->ops->shared)
                return 0;
        if ((r = s->ops->now(s->be, &w.now)) < 0)
                return r;
        return s->ops->claim_list(s->be, claim_row, &w);
}

struct names {
        char **v;
        size_t n, cap;
};

static int add_name(void *arg, const char *name)
{
        struct names *l = arg;

        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 4;
                l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = xstrdup(name);
        return 0;
}

int store_sinks(struct store *s, char ***ret_names, size_t *ret_n)
{
        struct names l = {0};
        int r;

        s->err = NULL;
        r = s->ops->delivery_sinks(s->be, add_name, &l);
        if (r < 0) {
                store_names_free(l.v, l.n);
                return r;
        }
        *ret_names = l.v;
        *ret_n = l.n;
        return 0;
}

/* store_request's row change, inside the caller's transaction. */
static int request_row(struct store *s, const char *sink, const char *order_id, int64_t now)
{
        struct store_order o;
        struct store_delivery d = {0};
        int r;

        if ((r = s->ops->order_get(s->be, order_id, false, &o)) < 0)
                return r;
        if ((r = s->ops->delivery_get(s->be, sink, order_id, &d)) < 0 && r != -ENOENT)
                return r;
        on_request(&d, r == 0, o.rev, now);
        d.sink = sink;
        d.order_id = order_id;
        return s->ops->delivery_put(s->be, &d);
}

static int apply_writes(struct store *s, const struct store_writes *w, int64_t now)
{
        int r = 0;

        for (size_t i = 0; r == 0 && w && i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                if (x->kind == STORE_WRITE_LINK)
                        r = s->ops->link_set(s->be, x->order_id, x->key, x->value);
                else if (x->kind == STORE_WRITE_REQUEST &&
                         (r = request_row(s, x->key, x->order_id, now)) == -ENOENT)
                        r = 0; /* an order that is not stored has nothing to ask for */
                else
                        r = s->ops->meta_set(s->be, x->key, x->value,
                                             x->kind == STORE_WRITE_META_IF_ABSENT);
        }
        return r;
}

/* One verdict: 1 when `owner` no longer holds the row (nothing is written), else 0. */
static int record_one(struct store *s, const char *sink, const char *owner,
                      const struct store_result *res, int64_t now, int64_t lifetime_ms)
{
        struct store_delivery d;
        struct store_attempt a;
        enum store_result_kind kind;
        const char *detail;
        int r;

        r = s->ops->delivery_get(s->be, sink, res->order_id, &d);
        if (r == -ENOENT)
                return 1;
        if (r < 0)
                return r;
        if (d.state != STORE_STATE_INFLIGHT || !d.lease_owner || strcmp(d.lease_owner, owner))
                return 1;
        kind = on_verdict(&d, res, now, lifetime_ms, &detail);
        if ((r = s->ops->delivery_put(s->be, &d)) < 0)
                return r;
        if (res->carried)
                return 0;
        a = (struct store_attempt){.sink = sink,
                                   .order_id = res->order_id,
                                   .rev = res->rev,
                                   .at = now,
                                   .kind = kind,
                                   .text = detail};
        if ((r = s->ops->attempt_add(s->be, &a)) < 0)
                return r;
        if (kind == STORE_PERMFAIL)
                r = s->ops->dead_letter_add(s->be, &a);
        return r;
}

int store_record(struct store *s, const char *sink, const char *owner,
                 const struct store_result *results, size_t n, const struct store_writes *writes,
                 int64_t now_ms, int64_t lifetime_ms)
{
        int r, ignored = 0;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++)
                if ((r = record_one(s, sink, owner, &results[i], now_ms, lifetime_ms)) > 0)
                        ignored++;
        /* The side writes are facts about the remote (a deal's id, a contact found): they
         * are true whoever holds the rows now, so they are kept even when a verdict is not. */
        if (r >= 0)
                r = apply_writes(s, writes, now_ms);
        return finish(s, r < 0 ? r : ignored);
}

/* ---- the operator's view ---- */

int64_t store_next_due(struct store *s, const char *sink)
{
        int64_t v = STORE_NEVER;

        s->err = NULL;
        if (s->ops->delivery_next(s->be, sink, &v) < 0)
                return INT64_MAX;
        return v;
}

int store_counts(struct store *s, const char *sink, struct store_counts *ret)
{
        int64_t c[STORE_N_STATES];
        int r;

        s->err = NULL;
        if ((r = s->ops->delivery_count(s->be, sink, c)) < 0)
                return r;
        *ret = (struct store_counts){.pending = c[STORE_STATE_PENDING],
                                     .inflight = c[STORE_STATE_INFLIGHT],
                                     .retrying = c[STORE_STATE_RETRYING],
                                     .waiting = c[STORE_STATE_WAITING],
                                     .done = c[STORE_STATE_DONE],
                                     .dead = c[STORE_STATE_DEAD]};
        return s->ops->delivery_oldest(s->be, sink, &ret->oldest_pending_at);
}

const char *store_counts_nth(const struct store_counts *c, size_t i, int64_t *ret_n)
{
        switch (i) {
        case STORE_STATE_PENDING:
                *ret_n = c->pending;
                break;
        case STORE_STATE_INFLIGHT:
                *ret_n = c->inflight;
                break;
        case STORE_STATE_RETRYING:
                *ret_n = c->retrying;
                break;
        case STORE_STATE_WAITING:
                *ret_n = c->waiting;
                break;
        case STORE_STATE_DONE:
                *ret_n = c->done;
                break;
        case STORE_STATE_DEAD:
                *ret_n = c->dead;
                break;
        default:
                return NULL;
        }
        return state_names[i];
}

static int cmp_dead_newest(const void *a, const void *b)
{
        const struct store_delivery *x = &((const struct held *)a)->d;
        const struct store_delivery *y = &((const struct held *)b)->d;

        if (x->updated_at != y->updated_at)
                return x->updated_at > y->updated_at ? -1 : 1;
        return strcmp(x->order_id, y->order_id);
}

int store_dead_list(struct store *s, const char *sink, size_t limit,
                    int (*cb)(void *arg, const struct store_dead_view *d), void *arg,
                    int64_t *ret_total)
{
        struct store_filter f = {.sink = sink,
                                 .states = 1u << STORE_STATE_DEAD,
                                 .next_at_max = STORE_NEVER};
        struct held_list l;
        int r;

        s->err = NULL;
        r = collect_rows(s, &f, NULL, &l);
        if (r == 0 && l.n > 1)
                qsort(l.rows, l.n, sizeof(l.rows[0]), cmp_dead_newest);
        for (size_t i = 0; r == 0 && i < l.n && i < limit; i++) {
                const struct store_delivery *d = &l.rows[i].d;
                struct store_dead_view v = {.sink = d->sink,
                                            .order_id = d->order_id,
                                            .rev = d->sent_rev,
                                            .at = d->updated_at,
                                            .attempts = d->attempts,
                                            .reason = d->last_error ? d->last_error : ""};
                r = cb(arg, &v);
                if (r > 0)
                        r = 0, i = l.n;
        }
        if (r == 0 && ret_total)
                *ret_total = (int64_t)l.n;
        held_list_clear(&l);
        return r < 0 ? r : 0;
}

int store_retry(struct store *s, const char *sink, const char *order_id, int64_t now_ms)
{
        struct store_filter f = {.sink = sink,
                                 .order_id = order_id,
                                 .states = 1u << STORE_STATE_DEAD | 1u << STORE_STATE_RETRYING |
                                           1u << STORE_STATE_WAITING,
                                 .next_at_max = STORE_NEVER};
        struct held_list l;
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        r = collect_rows(s, &f, NULL, &l);
        for (size_t i = 0; r == 0 && i < l.n; i++) {
                struct store_delivery *d = &l.rows[i].d;
                d->state = STORE_STATE_PENDING;
                d->next_at = now_ms;
                d->attempts = 0;
                d->first_failed_at = 0;
                mark_owed(d, now_ms);
                r = s->ops->delivery_put(s->be, d);
        }
        r = finish(s, r < 0 ? r : (int)l.n);
        held_list_clear(&l);
        return r;
}

int store_request(struct store *s, const char *sink, const char *order_id,
                  const struct store_writes *writes, int64_t now_ms)
{
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        if ((r = request_row(s, sink, order_id, now_ms)) == 0)
                r = apply_writes(s, writes, now_ms);
        return finish(s, r);
}

int store_request_once(struct store *s, const char *sink, const char *order_id,
                       const char *kind, const char *value, int64_t now_ms, bool *ret_asked)
{
        const char *held;
        int r;

        s->err = NULL;
        *ret_asked = false;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        r = s->ops->link_get(s->be, order_id, kind, &held);
        if (r == 0 && strcmp(held, value) == 0)
                return finish(s, 0);
        if (r == 0 || r == -ENOENT)
                r = request_row(s, sink, order_id, now_ms);
        if (r == 0)
                r = s->ops->link_set(s->be, order_id, kind, value);
        if ((r = finish(s, r)) == 0)
                *ret_asked = true;
        return r;
}

struct orders_walk {
        int (*cb)(void *arg, const struct store_order_view *o);
        void *arg;
};

static int order_view(void *arg, const struct store_order *o)
{
        const struct orders_walk *w = arg;
        struct store_order_view v = {.order_id = o->order_id,
                                     .rev = o->rev,
                                     .json = o->json,
                                     .received_at = o->received_at,
                                     .first_received_at = o->first_received_at};

        return w->cb(w->arg, &v);
}

int store_order_snapshot(struct store *s, const char *order_id, char **ret_json,
                         int64_t *ret_received_at)
{
        struct store_order o;
        int r;

        s->err = NULL;
        if ((r = s->ops->order_get(s->be, order_id, true, &o)) < 0)
                return r;
        *ret_json = xstrdup(o.json);
        if (ret_received_at)
                *ret_received_at = o.received_at;
        return 0;
}

int store_orders_changed(struct store *s, int64_t after_ms, enum store_order_by by,
                         size_t offset, size_t limit,
                         int (*cb)(void *arg, const struct store_order_view *o), void *arg,
                         int64_t *ret_total)
{
        struct orders_walk w = {cb, arg};
        int64_t total = 0;
        int r;

        s->err = NULL;
        r = s->ops->order_walk(s->be, after_ms, by == STORE_BY_FIRST, offset, limit, order_view,
                               &w, &total);
        if (r >= 0 && ret_total)
                *ret_total = total;
        return r < 0 ? r : 0;
}

/* The report's parts are arrays of objects, one per row, keys in a fixed order. */
static json_t *int_or_null(bool has, int64_t v)
{
        return has ? json_integer(v) : json_null();
}

static json_t *text_or_null(const char *v)
{
        json_t *j = v ? json_string(v) : NULL;

        return j ? j : json_null();
}

static int report_delivery(void *arg, const struct store_delivery *d)
{
        json_t *row = json_object();

        json_object_set_new(row, "sink", text_or_null(d->sink));
        json_object_set_new(row, "state", json_string(store_state_name(d->state)));
        json_object_set_new(row, "want_rev", json_integer(d->want_rev));
        json_object_set_new(row, "done_rev", json_integer(d->done_rev));
        json_object_set_new(row, "attempts", json_integer(d->attempts));
        json_object_set_new(row, "waits", json_integer(d->waits));
        json_object_set_new(row, "next_at", int_or_null(d->next_at != STORE_NEVER, d->next_at));
        json_object_set_new(row, "first_failed_at", json_integer(d->first_failed_at));
        json_object_set_new(row, "last_error", text_or_null(d->last_error));
        json_object_set_new(row, "updated_at", json_integer(d->updated_at));
        json_object_set_new(row, "lease_owner", text_or_null(d->lease_owner));
        return json_array_append_new(arg, row) ? -ENOMEM : 0;
}

static int report_history(void *arg, const struct store_history *h)
{
        json_t *row = json_object();

        json_object_set_new(row, "rev", json_integer(h->rev));
        json_object_set_new(row, "version", int_or_null(h->has_version, h->version));
        json_object_set_new(row, "received_at", json_integer(h->received_at));
        json_object_set_new(row, "source", text_or_null(h->source));
        json_object_set_new(row, "outcome", json_string(store_outcome_name(h->outcome)));
        return json_array_append_new(arg, row) ? -ENOMEM : 0;
}

static int report_attempt(void *arg, const struct store_attempt *a)
{
        json_t *row = json_object();

        json_object_set_new(row, "sink", text_or_null(a->sink));
        json_object_set_new(row, "rev", json_integer(a->rev));
        json_object_set_new(row, "at", json_integer(a->at));
        json_object_set_new(row, "outcome", json_string(store_kind_name(a->kind)));
        json_object_set_new(row, "detail", text_or_null(a->text));
        return json_array_append_new(arg, row) ? -ENOMEM : 0;
}

static int report_dead_letter(void *arg, const struct store_attempt *a)
{
        json_t *row = json_object();

        json_object_set_new(row, "sink", text_or_null(a->sink));
        json_object_set_new(row, "rev", json_integer(a->rev));
        json_object_set_new(row, "at", json_integer(a->at));
        json_object_set_new(row, "reason", text_or_null(a->text));
        return json_array_append_new(arg, row) ? -ENOMEM : 0;
}

static int report_link(void *arg, const char *kind, const char *remote)
{
        json_t *row = json_object();

        json_object_set_new(row, "kind", text_or_null(kind));
        json_object_set_new(row, "remote_id", text_or_null(remote));
        return json_array_append_new(arg, row) ? -ENOMEM : 0;
}

/* How much of an order's past the report shows. */
#define REPORT_HISTORY 50
#define REPORT_ATTEMPTS 50
#define REPORT_DEAD_LETTERS 20

int store_order_report(struct store *s, const char *order_id, char **ret_json)
{
        const struct store_backend_ops *ops = s->ops;
        struct store_filter f = {.order_id = order_id, .next_at_max = STORE_NEVER};
        json_t *doc, *deliveries, *history, *attempts, *dead, *links, *snap;
        struct store_order o;
        int r;

        s->err = NULL;
        if ((r = ops->order_get(s->be, order_id, true, &o)) < 0)
                return r;
        snap = json_loads(o.json, 0, NULL);
        doc = json_object();
        json_object_set_new(doc, "order_id", json_string(order_id));
        json_object_set_new(doc, "rev", json_integer(o.rev));
        json_object_set_new(doc, "received_at", json_integer(o.received_at));
        json_object_set_new(doc, "snapshot", snap ? snap : json_null());
        json_object_set_new(doc, "deliveries", deliveries = json_array());
        json_object_set_new(doc, "history", history = json_array());
        json_object_set_new(doc, "attempts", attempts = json_array());
        json_object_set_new(doc, "dead_letters", dead = json_array());
        json_object_set_new(doc, "links", links = json_array());
        r = ops->delivery_walk(s->be, &f, report_delivery, deliveries);
        if (r == 0)
                r = ops->history_list(s->be, order_id, REPORT_HISTORY, report_history, history);
        if (r == 0)
                r = ops->attempt_list(s->be, order_id, REPORT_ATTEMPTS, report_attempt, attempts);
        if (r == 0)
                r = ops->dead_letter_list(s->be, order_id, REPORT_DEAD_LETTERS, report_dead_letter,
                                          dead);
        if (r == 0)
                r = ops->link_list(s->be, order_id, report_link, links);
        if (r == 0) {
                *ret_json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                r = *ret_json ? 0 : -ENOMEM;
        }
        json_decref(doc);
        return r;
}

/* ---- links and metadata ---- */

int store_meta_get(struct store *s, const char *key, char **ret_value)
{
        const char *v;
        int r;

        s->err = NULL;
        *ret_value = NULL;
        if ((r = s->ops->meta_get(s->be, key, &v)) == 0)
                *ret_value = xstrdup(v);
        return r;
}

int store_meta_set(struct store *s, const char *key, const char *value)
{
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        return finish(s, s->ops->meta_set(s->be, key, value, false));
}

int store_link_get(struct store *s, const char *order_id, const char *kind, char **ret_remote)
{
        const char *v;
        int r;

        s->err = NULL;
        *ret_remote = NULL;
        if ((r = s->ops->link_get(s->be, order_id, kind, &v)) == 0)
                *ret_remote = xstrdup(v);
        return r;
}

int store_link_set(struct store *s, const char *order_id, const char *kind, const char *remote)
{
        int r;

        s->err = NULL;
        if ((r = s->ops->begin(s->be)) < 0)
                return r;
        return finish(s, s->ops->link_set(s->be, order_id, kind, remote));
}

int store_size(struct store *s, int64_t *ret_bytes)
{
        s->err = NULL;
        return s->ops->size(s->be, ret_bytes);
}
