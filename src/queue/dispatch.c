/*
 * One delivery loop per sink. Each loop has its own store connection. On start it
 * re-queues what a previous run left in flight (the sinks' remotes are idempotent per
 * order, or, for Bitrix24 creates, resolve the uncertainty themselves).
 *
 * Two levels of backoff: per order (attempts recorded in the store, so they survive a
 * restart) and per sink (a remote that is down as a whole pauses the loop, so a backlog
 * of thousands of orders does not turn into thousands of doomed requests).
 */
#include "queue/dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"

struct dispatch {
        const struct config *cfg;
        const struct sink_ops *ops;
        void *ctx;
        struct store *store;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool woken, stopping;
        struct backoff_rng rng;
        int64_t sink_failures;
};

/* Sleeps `delay_ms` (monotonic) or until a wake-up. Returns false when stopping. */
static bool wait_for(struct dispatch *d, int64_t delay_ms)
{
        struct timespec ts;
        bool go_on;

        clock_mono_deadline(delay_ms, &ts);
        pthread_mutex_lock(&d->lock);
        while (!d->woken && !d->stopping)
                if (pthread_cond_timedwait(&d->cond, &d->lock, &ts) == ETIMEDOUT)
                        break;
        d->woken = false;
        go_on = !d->stopping;
        pthread_mutex_unlock(&d->lock);
        return go_on;
}

static const char *kind_name(enum store_result_kind k)
{
        static const char *const names[] = {"ok", "tempfail", "permfail", "waiting"};
        return names[k];
}

static void run_batch(struct dispatch *d, struct store_work *w, size_t n, int64_t *pause_until)
{
        struct sink_outcome *out = xcalloc(n, sizeof(*out));
        struct store_result *res = xcalloc(n, sizeof(*res));
        const struct config *cfg = d->cfg;
        int64_t now;
        int status, r;

        for (size_t i = 0; i < n; i++) {
                out[i].kind = STORE_TEMPFAIL;
                snprintf(out[i].detail, sizeof(out[i].detail), "no verdict from the sink");
        }
        struct store_writes writes = {0};

        status = d->ops->deliver(d->ctx, d->store, &writes, w, n, out);
        now = clock_wall_ms();

        if (status == 0) {
                d->sink_failures = 0;
        } else {
                int64_t delay, hint = 0;
                d->sink_failures++;
                for (size_t i = 0; i < n; i++)
                        if (out[i].retry_after_ms > hint)
                                hint = out[i].retry_after_ms;
                delay = backoff_delay_ms(d->sink_failures, cfg->backoff_min_ms,
                                         cfg->backoff_max_ms, &d->rng);
                if (status == -EACCES && delay < 60000)
                        delay = 60000;
                if (hint > delay)
                        delay = hint;
                *pause_until = clock_mono_ms() + delay;
                log_warn("dispatch.pause", "sink=%s failures=%lld pause_ms=%lld reason=\"%s\"",
                         d->ops->name, (long long)d->sink_failures, (long long)delay,
                         out[0].detail);
        }

        for (size_t i = 0; i < n; i++) {
                int64_t confirm_at = w[i].uncertain_at + cfg->confirm_after_s * 1000;

                /* A request that may have been applied after we gave up on it could still
                 * land after this newer one: send the latest state once more when that
                 * window has passed, so the remote ends on the latest snapshot. */
                if (out[i].kind == STORE_OK && w[i].uncertain_at > 0 &&
                    cfg->confirm_after_s > 0 && now < confirm_at) {
                        out[i].kind = STORE_WAITING;
                        out[i].retry_after_ms = confirm_at - now;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "delivered; sent once more in %llds, after an earlier attempt "
                                 "whose outcome is unknown",
                                 (long long)((confirm_at - now + 999) / 1000));
                }
                res[i].order_id = w[i].order_id;
                res[i].rev = w[i].rev;
                res[i].kind = out[i].kind;
                res[i].detail = out[i].detail;
                res[i].uncertain = out[i].uncertain;
                if (out[i].kind == STORE_TEMPFAIL) {
                        int64_t delay = backoff_delay_ms(w[i].attempts + 1, cfg->backoff_min_ms,
                                                         cfg->backoff_max_ms, &d->rng);
                        if (out[i].retry_after_ms > delay)
                                delay = out[i].retry_after_ms;
                        if (*pause_until - clock_mono_ms() > delay)
                                delay = *pause_until - clock_mono_ms();
                        res[i].next_at = now + delay;
                } else if (out[i].kind == STORE_WAITING) {
                        res[i].next_at = now + (out[i].retry_after_ms > 0
                                                        ? out[i].retry_after_ms
                                                        : cfg->visit_wait_s * 1000);
                }
                if (out[i].kind == STORE_OK)
                        log_info("deliver.ok", "sink=%s order_id=%s rev=%lld", d->ops->name,
                                 w[i].order_id, (long long)w[i].rev);
                else
                        log_warn("deliver.not_ok", "sink=%s order_id=%s rev=%lld outcome=%s "
                                 "attempts=%lld detail=\"%s\"", d->ops->name, w[i].order_id,
                                 (long long)w[i].rev, kind_name(out[i].kind),
                                 (long long)w[i].attempts + 1, out[i].detail);
        }
        r = store_record(d->store, d->ops->name, res, n, &writes, now, cfg->lifetime_s * 1000);
        if (r < 0)
                /* The rows stay in flight and are re-queued on the next start; meanwhile
                 * the remote is idempotent per order, so nothing is lost or doubled. */
                log_err("dispatch.record_failed", "sink=%s error=\"%s\"", d->ops->name,
                        store_errmsg(d->store));
        store_writes_clear(&writes);
        free(out);
        free(res);
}

static void *loop(void *arg)
{
        struct dispatch *d = arg;
        int64_t pause_until = 0;

        for (;;) {
                struct store_work *w = NULL;
                int64_t now, next, mono = clock_mono_ms();
                size_t n = 0;
                int r;

                if (mono < pause_until) {
                        if (!wait_for(d, pause_until - mono))
                                break;
                        continue;
                }
                now = clock_wall_ms();
                r = store_take_due(d->store, d->ops->name, now, d->ops->batch_max, &w, &n);
                if (r < 0) {
                        log_err("dispatch.take_failed", "sink=%s error=\"%s\"", d->ops->name,
                                store_errmsg(d->store));
                        if (!wait_for(d, d->cfg->poll_interval_ms))
                                break;
                        continue;
                }
                if (n > 0) {
                        run_batch(d, w, n, &pause_until);
                        store_work_free(w, n);
                        continue;
                }
                next = store_next_due(d->store, d->ops->name);
                if (next > now + d->cfg->poll_interval_ms)
                        next = now + d->cfg->poll_interval_ms;
                if (!wait_for(d, next - now))
                        break;
        }
        return NULL;
}

int dispatch_start(const struct config *cfg, const struct sink_ops *ops, void *ctx,
                   struct dispatch **ret)
{
        struct dispatch *d = xcalloc(1, sizeof(*d));
        int r;

        d->cfg = cfg;
        d->ops = ops;
        d->ctx = ctx;
        pthread_mutex_init(&d->lock, NULL);
        clock_cond_init(&d->cond);
        backoff_rng_seed(&d->rng, (uint64_t)clock_wall_ms() ^ (uint64_t)(uintptr_t)d);
        r = store_open(cfg->store_path, &d->store);
        if (r == 0) {
                r = store_requeue_inflight(d->store, clock_wall_ms());
                if (r > 0)
                        log_info("dispatch.requeued", "sink=%s count=%d", ops->name, r);
                r = r < 0 ? r : 0;
        }
        if (r == 0)
                r = -pthread_create(&d->thread, NULL, loop, d);
        if (r < 0) {
                d->store = store_close(d->store);
                ops->free(ctx);
                pthread_mutex_destroy(&d->lock);
                pthread_cond_destroy(&d->cond);
                free(d);
                return r;
        }
        log_info("dispatch.started", "sink=%s batch_max=%zu", ops->name, ops->batch_max);
        *ret = d;
        return 0;
}

void dispatch_wake(struct dispatch *d)
{
        if (!d)
                return;
        pthread_mutex_lock(&d->lock);
        d->woken = true;
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&d->lock);
}

struct dispatch *dispatch_stop(struct dispatch *d)
{
        if (!d)
                return NULL;
        pthread_mutex_lock(&d->lock);
        d->stopping = true;
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&d->lock);
        if (d->ops->stop)
                d->ops->stop(d->ctx);
        pthread_join(d->thread, NULL);
        d->ops->free(d->ctx);
        store_close(d->store);
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        free(d);
        return NULL;
}
