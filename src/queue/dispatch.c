/*
 * One delivery loop per sink. Each loop has its own store connection. What an earlier
 * run left in flight is put back once, at start-up, before any loop runs
 * (dispatch_recover; the sinks' remotes are idempotent per order, or, for Bitrix24
 * creates, resolve the uncertainty themselves).
 *
 * Work in flight is leased to this loop (owner "host:pid:start"). The lease is short and
 * renewed while the loop holds work, by a keeper thread with its own connection, rather
 * than sized to outlast a pass: a pass's length depends on the remote (timeouts, rate
 * limits, how many calls a batch takes), the keeper's cadence does not. A lease ends only
 * when this process stops renewing — it died, or its store failed for a whole lease.
 *
 * Verdicts are the only copy of what the remote now holds: when recording them fails,
 * the loop keeps them (and the side writes) and retries with backoff, taking no new work
 * meanwhile; if it must stop first, the rows stay in flight and the next start sends them
 * again, marked uncertain.
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
#include "base/metrics.h"
#include "base/xalloc.h"
#include "queue/role.h"
#include "queue/sinkstate.h"

/* How long work stays leased without renewal, and how often the keeper renews it: a
 * lease survives three missed renewals (a store busy for its 10 s timeout each time). */
#define LEASE_MS 60000
#define RENEW_EVERY_MS (LEASE_MS / 4)
/* Retrying a failed store_record */
#define RECORD_RETRY_MIN_MS 200
#define RECORD_RETRY_MAX_MS 30000

struct dispatch {
        const struct config *cfg;
        const struct sink_ops *ops;
        void *ctx;
        struct store *store;
        struct store *keeper_store;
        const char *owner; /* this process's (role_owner): its leases and its roles */
        pthread_t thread, keeper;
        bool keeper_started;
        pthread_mutex_t lock;
        pthread_cond_t cond, keeper_cond;
        bool woken, stopping;
        bool holding; /* the loop holds leased work (under `lock`) */
        struct backoff_rng rng;
        int64_t sink_failures;
        /* a shared store (PostgreSQL): one server at a time delivers this sink */
        bool shared;
        struct role role;
};

/* Sleeps `delay_ms` (monotonic) or, when `wakeable`, until a wake-up. Returns false when
 * stopping. A wait that is not wakeable leaves the wake-up for the next one. */
static bool wait_for(struct dispatch *d, int64_t delay_ms, bool wakeable)
{
        struct timespec ts;
        bool go_on;

        clock_mono_deadline(delay_ms, &ts);
        pthread_mutex_lock(&d->lock);
        while (!(wakeable && d->woken) && !d->stopping)
                if (pthread_cond_timedwait(&d->cond, &d->lock, &ts) == ETIMEDOUT)
                        break;
        if (wakeable)
                d->woken = false;
        go_on = !d->stopping;
        pthread_mutex_unlock(&d->lock);
        return go_on;
}

static bool stopping(struct dispatch *d)
{
        bool v;

        pthread_mutex_lock(&d->lock);
        v = d->stopping;
        pthread_mutex_unlock(&d->lock);
        return v;
}

static void set_holding(struct dispatch *d, bool holding)
{
        pthread_mutex_lock(&d->lock);
        d->holding = holding;
        pthread_mutex_unlock(&d->lock);
}

/* The keeper: while the loop holds work, renews its leases every RENEW_EVERY_MS. */
static void *keep_leases(void *arg)
{
        struct dispatch *d = arg;
        int64_t failures = 0;

        /* in a shared store the sink's role is renewed here too, so that a long pass
         * does not outlast it */
        int64_t every = d->shared && d->role.ttl_ms / 3 < RENEW_EVERY_MS ? d->role.ttl_ms / 3
                                                                        : RENEW_EVERY_MS;

        pthread_mutex_lock(&d->lock);
        while (!d->stopping) {
                struct timespec ts;
                int r;
                clock_mono_deadline(every, &ts);
                pthread_cond_timedwait(&d->keeper_cond, &d->lock, &ts);
                if (d->stopping)
                        continue;
                if (d->shared) {
                        pthread_mutex_unlock(&d->lock);
                        role_renew(&d->role, d->keeper_store);
                        pthread_mutex_lock(&d->lock);
                }
                if (d->stopping || !d->holding)
                        continue;
                pthread_mutex_unlock(&d->lock);
                r = store_renew(d->keeper_store, d->ops->name, d->owner, clock_wall_ms(), LEASE_MS);
                if (r < 0)
                        log_warn("dispatch.renew_failed",
                                 "sink=%s failures=%lld lease_ms=%d error=\"%s\"", d->ops->name,
                                 (long long)++failures, LEASE_MS, store_errmsg(d->keeper_store));
                else
                        failures = 0;
                pthread_mutex_lock(&d->lock);
        }
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

static const char *kind_name(enum store_result_kind k)
{
        static const char *const names[] = {"ok", "tempfail", "permfail", "waiting"};
        return names[k];
}

static const struct metrics_family attempts_family = {
    .name = "orderbridge_delivery_attempts_total",
    .help = "Delivery attempts by sink and the sink's verdict (ok, tempfail, permfail, "
            "waiting); an order carried into the sink's next pass is no attempt.",
    .type = METRICS_COUNTER,
    .labels = {"sink", "outcome"},
};

/* Records a pass's verdicts and side writes, retrying until the store takes them. */
static void record(struct dispatch *d, const struct store_result *res, size_t n,
                   const struct store_writes *writes, int64_t now)
{
        int64_t failures = 0, delay;
        int r;

        for (;;) {
                r = store_record(d->store, d->ops->name, d->owner, res, n, writes, now,
                                 d->cfg->lifetime_s * 1000);
                if (r >= 0)
                        break;
                failures++;
                delay =
                    backoff_delay_ms(failures, RECORD_RETRY_MIN_MS, RECORD_RETRY_MAX_MS, &d->rng);
                log_err("dispatch.record_failed",
                        "sink=%s orders=%zu failures=%lld retry_ms=%lld error=\"%s\"", d->ops->name,
                        n, (long long)failures, (long long)delay, store_errmsg(d->store));
                if (!wait_for(d, delay, false)) {
                        log_warn("dispatch.record_abandoned",
                                 "sink=%s orders=%zu hint=\"left in flight: the next start "
                                 "sends them again\"",
                                 d->ops->name, n);
                        return;
                }
        }
        if (failures > 0)
                log_info("dispatch.record_recovered", "sink=%s orders=%zu failures=%lld",
                         d->ops->name, n, (long long)failures);
        if (r > 0)
                log_warn("dispatch.lease_lost",
                         "sink=%s orders=%d hint=\"their lease ended and another took them: "
                         "verdicts not recorded\"",
                         d->ops->name, r);
}

/* Records the sink's pause state in the store's meta for `orderbridge status` (another
 * process). Best effort: the daemon's own views read memory, and a failure is logged. */
static void save_state(struct dispatch *d)
{
        struct sinkstate_view v;
        char key[64], *json;

        if (sinkstate_get(d->ops->name, &v) < 0)
                return;
        sinkstate_meta_key(d->ops->name, key, sizeof(key));
        json = sinkstate_meta_json(&v);
        if (store_meta_set(d->store, key, json) < 0)
                log_warn("dispatch.state_not_saved", "sink=%s error=\"%s\"", d->ops->name,
                         store_errmsg(d->store));
        free(json);
}

static void run_batch(struct dispatch *d, struct store_work *w, size_t n, int64_t *pause_until)
{
        struct sink_outcome *out = xcalloc(n, sizeof(*out));
        struct store_result *res = xcalloc(n, sizeof(*res));
        const struct config *cfg = d->cfg;
        int64_t now;
        int status;

        for (size_t i = 0; i < n; i++) {
                out[i].kind = STORE_TEMPFAIL;
                snprintf(out[i].detail, sizeof(out[i].detail), "no verdict from the sink");
        }
        struct store_writes writes = {0};

        sinkstate_pass_begin(d->ops->name);
        status = d->ops->deliver(d->ctx, d->store, &writes, w, n, out);
        now = clock_wall_ms();

        if (status == 0) {
                d->sink_failures = 0;
                if (sinkstate_pass_result(d->ops->name, 0, 0, NULL)) {
                        log_info("dispatch.resumed", "sink=%s", d->ops->name);
                        save_state(d);
                }
        } else {
                int64_t delay, hint = 0;
                d->sink_failures++;
                for (size_t i = 0; i < n; i++)
                        if (out[i].retry_after_ms > hint)
                                hint = out[i].retry_after_ms;
                delay = backoff_delay_ms(d->sink_failures, cfg->backoff_min_ms, cfg->backoff_max_ms,
                                         &d->rng);
                if (status == -EACCES && delay < 60000)
                        delay = 60000;
                if (hint > delay)
                        delay = hint;
                *pause_until = clock_mono_ms() + delay;
                log_event(status == -EACCES ? LOG_ERR : LOG_WARN, "dispatch.pause",
                          "sink=%s failures=%lld pause_ms=%lld cause=%s reason=\"%s\"",
                          d->ops->name, (long long)d->sink_failures, (long long)delay,
                          status == -EACCES ? "auth" : status == -EIO ? "store" : "remote",
                          out[0].detail);
                if (sinkstate_pass_result(d->ops->name, status, now + delay, out[0].detail))
                        save_state(d);
        }

        for (size_t i = 0; i < n; i++) {
                int64_t confirm_at = w[i].uncertain_at + cfg->confirm_after_s * 1000;

                /* A request that may have been applied after we gave up on it could still
                 * land after this newer one: send the latest state once more when that
                 * window has passed, so the remote ends on the latest snapshot. */
                if (out[i].kind == STORE_OK && w[i].uncertain_at > 0 && cfg->confirm_after_s > 0 &&
                    now < confirm_at) {
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
                res[i].carried = out[i].carried;
                if (out[i].kind == STORE_TEMPFAIL) {
                        int64_t delay = backoff_delay_ms(w[i].attempts + 1, cfg->backoff_min_ms,
                                                         cfg->backoff_max_ms, &d->rng);
                        if (out[i].retry_after_ms > delay)
                                delay = out[i].retry_after_ms;
                        if (*pause_until - clock_mono_ms() > delay)
                                delay = *pause_until - clock_mono_ms();
                        res[i].next_at = now + delay;
                } else if (out[i].carried) {
                        /* due before anything else: a carried order keeps its place at
                         * the head of the queue, ahead of orders that came after it */
                        res[i].next_at = 0;
                } else if (out[i].kind == STORE_WAITING) {
                        res[i].next_at =
                            now + (out[i].retry_after_ms > 0 ? out[i].retry_after_ms
                                                             : cfg->visit_wait_s * 1000);
                }
                if (!out[i].carried)
                        metrics_counter_add(&attempts_family,
                                            (const char *const[]){d->ops->name,
                                                                  kind_name(out[i].kind)},
                                            1);
                if (out[i].kind == STORE_OK)
                        log_info("deliver.ok", "sink=%s order_id=%s rev=%lld", d->ops->name,
                                 w[i].order_id, (long long)w[i].rev);
                else if (out[i].carried)
                        log_debug("deliver.carried", "sink=%s order_id=%s rev=%lld",
                                  d->ops->name, w[i].order_id, (long long)w[i].rev);
                else
                        log_warn("deliver.not_ok",
                                 "sink=%s order_id=%s rev=%lld outcome=%s "
                                 "attempts=%lld detail=\"%s\"",
                                 d->ops->name, w[i].order_id, (long long)w[i].rev,
                                 kind_name(out[i].kind), (long long)w[i].attempts + 1,
                                 out[i].detail);
        }
        record(d, res, n, &writes, now);
        sinkstate_pass_end(d->ops->name);
        store_writes_clear(&writes);
        free(out);
        free(res);
}

/* This server has just taken the sink over (a shared store): what the last holder left
 * in flight goes back to pending, marked uncertain, as after a restart; and the remote may
 * still count that holder's last requests, so the sink starts with its bucket full. */
static void take_over(struct dispatch *d)
{
        int r = store_recover(d->store, d->ops->name, clock_wall_ms());

        if (r > 0)
                log_warn("dispatch.requeued", "sink=%s count=%d reason=taken_over", d->ops->name,
                         r);
        else if (r < 0)
                log_err("dispatch.requeue_failed", "sink=%s error=\"%s\" hint=\"their leases "
                        "end by themselves\"", d->ops->name, store_errmsg(d->store));
        if (d->ops->taken)
                d->ops->taken(d->ctx);
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

                if (stopping(d))
                        break;
                sinkstate_beat(d->ops->name);
                if (mono < pause_until) {
                        if (!wait_for(d, pause_until - mono, true))
                                break;
                        continue;
                }
                if (!role_hold(&d->role, d->store, &next)) {
                        /* another server delivers this sink: ask again when its claim may
                         * have lapsed (not at every order taken in, hence not wakeable) */
                        if (!wait_for(d, next, false))
                                break;
                        continue;
                }
                if (role_taken(&d->role)) /* only ever so in a shared store */
                        take_over(d);
                now = clock_wall_ms();
                r = store_take_due(d->store, d->ops->name, d->owner, now, LEASE_MS,
                                   d->ops->batch_max, &w, &n);
                if (r < 0) {
                        log_err("dispatch.take_failed", "sink=%s error=\"%s\"", d->ops->name,
                                store_errmsg(d->store));
                        if (!wait_for(d, d->cfg->poll_interval_ms, true))
                                break;
                        continue;
                }
                if (n > 0) {
                        set_holding(d, true);
                        run_batch(d, w, n, &pause_until);
                        set_holding(d, false);
                        store_work_free(w, n);
                        continue;
                }
                next = store_next_due(d->store, d->ops->name);
                if (next <= now) {
                        /* due, yet nothing to take: a lease has ended unrenewed */
                        r = store_requeue_expired(d->store, d->ops->name, now);
                        if (r > 0) {
                                log_warn("dispatch.requeued", "sink=%s count=%d reason=lease_ended",
                                         d->ops->name, r);
                                continue;
                        }
                        if (r < 0)
                                log_err("dispatch.requeue_failed", "sink=%s error=\"%s\"",
                                        d->ops->name, store_errmsg(d->store));
                        next = now + d->cfg->poll_interval_ms;
                }
                if (next > now + d->cfg->poll_interval_ms)
                        next = now + d->cfg->poll_interval_ms;
                if (!wait_for(d, next - now, true))
                        break;
        }
        return NULL;
}

/* Stops and joins whichever threads run, then frees. */
static struct dispatch *dispatch_free(struct dispatch *d, bool started)
{
        pthread_mutex_lock(&d->lock);
        d->stopping = true;
        pthread_cond_broadcast(&d->cond);
        pthread_cond_broadcast(&d->keeper_cond);
        pthread_mutex_unlock(&d->lock);
        if (started && d->ops->stop)
                d->ops->stop(d->ctx); /* cut a long pass short: at most one request more */
        if (started)
                pthread_join(d->thread, NULL);
        if (d->keeper_started)
                pthread_join(d->keeper, NULL);
        if (started && d->shared)
                role_release(&d->role, d->store); /* another server takes it at once */
        role_destroy(&d->role);
        d->ops->free(d->ctx);
        store_close(d->store);
        store_close(d->keeper_store);
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        pthread_cond_destroy(&d->keeper_cond);
        free(d);
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
        clock_cond_init(&d->keeper_cond);
        backoff_rng_seed(&d->rng, (uint64_t)clock_wall_ms() ^ (uint64_t)(uintptr_t)d);
        d->owner = role_owner();
        sinkstate_register(ops->name);
        role_init(&d->role, ops->name, cfg->claim_ttl_s * 1000);
        r = store_open(cfg->store_path, &d->store);
        if (r == 0)
                r = store_open(cfg->store_path, &d->keeper_store);
        if (r == 0)
                d->shared = store_shared(d->store);
        if (r == 0) {
                r = -pthread_create(&d->keeper, NULL, keep_leases, d);
                d->keeper_started = r == 0;
        }
        if (r == 0)
                save_state(d); /* running: a pause an earlier run recorded is over */
        if (r == 0)
                r = -pthread_create(&d->thread, NULL, loop, d);
        if (r < 0) {
                dispatch_free(d, false);
                return r;
        }
        log_info("dispatch.started", "sink=%s batch_max=%zu lease_ms=%d", ops->name, ops->batch_max,
                 LEASE_MS);
        *ret = d;
        return 0;
}

int dispatch_recover(const struct config *cfg, struct store **ret_lock, long *ret_holder_pid)
{
        struct store *s = NULL;
        char **sinks = NULL;
        size_t n = 0;
        int r;

        r = store_open(cfg->store_path, &s);
        if (r < 0)
                log_err("store.open_failed", "error=\"%s\"", store_open_error());
        if (r == 0)
                r = store_lock(s, ret_holder_pid);
        /* a shared store: other servers may be delivering now; a sink's leftovers go back
         * when its role is taken (take_over) */
        if (r == 0 && !store_shared(s))
                r = store_sinks(s, &sinks, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = store_recover(s, sinks[i], clock_wall_ms());
                if (r > 0)
                        log_info("dispatch.requeued", "sink=%s count=%d", sinks[i], r);
        }
        store_names_free(sinks, n);
        if (r < 0) {
                store_close(s);
                return r;
        }
        *ret_lock = s;
        return 0;
}

const char *dispatch_sink(const struct dispatch *d)
{
        return d->ops->name;
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
        return dispatch_free(d, true);
}
