/*
 * The scheduled light reconcile. Each run looks at the orders changed in the store after a
 * watermark (meta "reconcile.since", ms; the first run, the last 30 days) and then moves
 * the watermark to the run's start — but never past an order it left unsettled (drift
 * found, not yet delivered, or not read because a remote failed): such an order is looked
 * at again every run until it is in step, so the count in `status` stays until the drift
 * is repaired instead of vanishing with the next quiet hour.
 *
 * A run's outcome is three meta keys ("reconcile.drift", "reconcile.at", the watermark)
 * and one log line, reconcile.done or reconcile.failed. When a remote could not be read
 * nothing is recorded: the last count stands, and the next run looks again from the same
 * watermark.
 *
 * Why it does not repair: a difference is often a person's doing — a manager moving a
 * deal, a refund entered in Roistat — and a daemon that quietly put its own values back
 * every hour would fight the people using those systems; a person decides, with
 * `orderbridge reconcile --repair`.
 */
#include "queue/reconciler.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "model/iso8601.h"
#include "queue/reconcile.h"
#include "queue/role.h"
#include "store/store.h"

#define META_DRIFT "reconcile.drift"
#define META_AT "reconcile.at"
#define META_SINCE "reconcile.since"
#define FIRST_WINDOW_MS (30LL * 86400 * 1000)
#define DRIFTS_LOGGED 20 /* a run logs this many of its drifts, one line each */

struct reconciler {
        const struct config *cfg;
        struct reconcile *rc;
        struct store *st;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stopping;    /* under lock */
        atomic_bool stop; /* what a run in progress watches */
        /* a shared store: one server's run per interval, claimed for the interval */
        struct role role;
};

/* Sleeps one interval (monotonic). False when stopping. */
static bool sleep_interval(struct reconciler *r)
{
        struct timespec ts;
        bool go_on;

        clock_mono_deadline(r->cfg->reconcile_interval_s * 1000, &ts);
        pthread_mutex_lock(&r->lock);
        while (!r->stopping)
                if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT)
                        break;
        go_on = !r->stopping;
        pthread_mutex_unlock(&r->lock);
        return go_on;
}

/* The watermark: the store's, or the first run's 30 days. */
static int64_t watermark(struct reconciler *r, int64_t now)
{
        char *v = NULL, *end = NULL;
        long long ms = -1;

        if (store_meta_get(r->st, META_SINCE, &v) == 0 && v) {
                ms = strtoll(v, &end, 10);
                if (end == v || *end || ms < 0)
                        ms = -1;
        }
        free(v);
        return ms >= 0 ? ms : now - FIRST_WINDOW_MS;
}

static int record(struct reconciler *r, const struct reconcile_report *rep, int64_t start)
{
        int64_t since = start;
        char buf[32];
        int e;

        if (rep->unsettled_since_ms != INT64_MAX && rep->unsettled_since_ms - 1 < since)
                since = rep->unsettled_since_ms - 1;
        snprintf(buf, sizeof(buf), "%zu", rep->n_drifts);
        e = store_meta_set(r->st, META_DRIFT, buf);
        iso8601_format(start / 1000, buf, sizeof(buf));
        if (e == 0)
                e = store_meta_set(r->st, META_AT, buf);
        snprintf(buf, sizeof(buf), "%" PRId64, since);
        if (e == 0)
                e = store_meta_set(r->st, META_SINCE, buf);
        return e;
}

static void run_once(struct reconciler *r)
{
        int64_t start = clock_wall_ms();
        struct reconcile_opts o = {
            .since_ms = watermark(r, start), .light = true, .stop = &r->stop};
        struct reconcile_report rep;
        int e = reconcile_run(r->rc, r->st, &o, &rep);

        if (e == -ECANCELED) {
                reconcile_report_clear(&rep);
                return;
        }
        if (e < 0) {
                log_err("reconcile.failed", "what=store error=\"%s\"", store_errmsg(r->st));
        } else if (rep.remote_error) {
                log_warn("reconcile.failed", "what=remote checked=%zu error=\"%s\"", rep.checked,
                         rep.remote_errmsg);
        } else {
                for (size_t i = 0; i < rep.n_drifts && i < DRIFTS_LOGGED; i++) {
                        const struct reconcile_drift *d = &rep.drifts[i];
                        log_info("reconcile.drift",
                                 "order_id=%s sink=%s field=%s store=\"%s\" remote=\"%s\"",
                                 d->order_id, d->sink, d->field, d->store, d->remote);
                }
                if (record(r, &rep, start) < 0)
                        log_err("reconcile.failed", "what=record error=\"%s\"",
                                store_errmsg(r->st));
                log_info("reconcile.done", "checked=%zu drift=%zu not_delivered=%zu", rep.checked,
                         rep.n_drifts, rep.n_unsent);
        }
        reconcile_report_clear(&rep);
}

static void *loop(void *arg)
{
        struct reconciler *r = arg;

        int64_t wait;

        while (sleep_interval(r))
                if (role_hold(&r->role, r->st, &wait))
                        run_once(r);
        return NULL;
}

int reconciler_start(const struct config *cfg, struct reconciler **ret)
{
        struct reconciler *r;
        int e;

        *ret = NULL;
        if (cfg->reconcile_interval_s == 0)
                return 0;
        r = xcalloc(1, sizeof(*r));
        r->cfg = cfg;
        e = reconcile_new(cfg, &r->rc);
        if (e == -EINVAL) {
                free(r); /* neither remote is enabled: nothing to compare */
                return 0;
        }
        if (e == 0)
                e = store_open(cfg->store_path, &r->st);
        if (e == 0) {
                role_init(&r->role, "reconcile",
                          cfg->reconcile_interval_s * 1000 > cfg->claim_ttl_s * 1000
                              ? cfg->reconcile_interval_s * 1000
                              : cfg->claim_ttl_s * 1000);
                atomic_init(&r->stop, false);
                pthread_mutex_init(&r->lock, NULL);
                clock_cond_init(&r->cond);
                e = -pthread_create(&r->thread, NULL, loop, r);
                if (e < 0) {
                        role_destroy(&r->role);
                        pthread_cond_destroy(&r->cond);
                        pthread_mutex_destroy(&r->lock);
                }
        }
        if (e < 0) {
                store_close(r->st);
                reconcile_free(r->rc);
                free(r);
                return e;
        }
        *ret = r;
        return 0;
}

struct reconciler *reconciler_stop(struct reconciler *r)
{
        if (!r)
                return NULL;
        atomic_store(&r->stop, true);
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        role_destroy(&r->role);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        store_close(r->st);
        reconcile_free(r->rc);
        free(r);
        return NULL;
}
