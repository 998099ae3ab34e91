/*
 * The group committer (see intake.h). Submitters append jobs to one FIFO under `lock`;
 * the committer thread takes up to INTAKE_COMMIT_MAX of them, converts each snapshot to
 * a store_put (the only place that conversion is written), stores them in one
 * transaction, and calls back every submitter, then the commit hooks. Nothing is called
 * back with `lock` held, so a callback may take its own locks and even submit again.
 *
 * `healthy` is written by the committer and read by /healthz from the HTTP threads, so it
 * is an atomic. Webhook ids are pruned from the committer, at most once an hour; so is the
 * store's history (retention.h), a bounded step at a time between commits: the committer
 * waits for work only until the next step is due.
 */
#include "queue/intake.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/xalloc.h"
#include "queue/retention.h"
#include "sinks/registry.h"
#include "store/store.h"

/* webhook ids are kept a week (the site module's spool re-sends within days at most) */
#define WEBHOOK_ID_KEEP_MS (7LL * 24 * 3600 * 1000)
#define PRUNE_EVERY_MS (3600LL * 1000)
#define DAY_MS (24LL * 3600 * 1000)
#define HOOKS_MAX 4

/* A commit is one fsync'd SQLite transaction: a millisecond or a few, seconds when the
 * disk stalls. */
static const double commit_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static const struct metrics_family commit_family = {
    .name = "orderbridge_intake_commit_duration_seconds",
    .help = "Time one group commit of accepted snapshots took (one transaction, synced), "
            "failed or not.",
    .type = METRICS_HISTOGRAM,
    .buckets = commit_buckets,
    .n_buckets = sizeof(commit_buckets) / sizeof(commit_buckets[0]),
};

struct job {
        struct job *next;
        struct snapshot *snap;
        char *webhook_id;
        unsigned char body_sha256[32];
        const char *source;
        const char *sink_only;
        void (*done)(void *userdata, const struct intake_result *result);
        void *userdata;
};

struct hook {
        void (*fn)(void *arg, const struct intake_commit *c);
        void *arg;
};

struct intake {
        struct store *store;
        pthread_t thread;
        bool started;

        pthread_mutex_t lock;
        pthread_cond_t work;  /* committer: something queued, or stopping */
        pthread_cond_t space; /* bulk submitters: the queue shrank, or stopping */
        struct job *head, **tail;
        size_t queued;
        bool stopping;
        struct hook hooks[HOOKS_MAX];
        size_t n_hooks;

        atomic_bool healthy;
        int64_t next_prune_ms; /* monotonic */
        struct retention *retention; /* the committer's alone */
};

/* The snapshot → store_put conversion: the store reads the job's strings in place. */
static struct store_put put_of(const struct job *j)
{
        const struct snapshot *s = j->snap;
        struct store_put p = {
            .order_id = s->order_id,
            .site = s->site,
            .json = s->json,
            .has_version = s->has_version,
            .version = s->version,
            .has_updated_at = s->has_updated_at,
            .updated_at = s->updated_at,
            .webhook_id = j->webhook_id,
            .source = j->source,
            .sink_only = j->sink_only,
        };

        memcpy(p.body_sha256, j->body_sha256, sizeof(p.body_sha256));
        return p;
}

static struct job *job_free(struct job *j)
{
        snapshot_free(j->snap);
        free(j->webhook_id);
        free(j);
        return NULL;
}

/* Takes up to INTAKE_COMMIT_MAX jobs, waiting for one until `until_ms` (monotonic); 0
 * jobs: the time came, or *ret_stop, the intake is stopping and nothing is left. */
static size_t take_batch(struct intake *in, struct job **batch, struct hook *hooks,
                         size_t *ret_n_hooks, int64_t until_ms, bool *ret_stop)
{
        struct timespec deadline;
        size_t n = 0;
        int64_t now;

        pthread_mutex_lock(&in->lock);
        while (!in->head && !in->stopping && (now = clock_mono_ms()) < until_ms) {
                if (until_ms == INT64_MAX) {
                        pthread_cond_wait(&in->work, &in->lock);
                        continue;
                }
                clock_mono_deadline(until_ms - now, &deadline);
                pthread_cond_timedwait(&in->work, &in->lock, &deadline);
        }
        *ret_stop = !in->head && in->stopping;
        while (in->head && n < INTAKE_COMMIT_MAX) {
                batch[n++] = in->head;
                in->head = in->head->next;
        }
        if (!in->head)
                in->tail = &in->head;
        in->queued -= n;
        if (n)
                pthread_cond_broadcast(&in->space);
        memcpy(hooks, in->hooks, in->n_hooks * sizeof(*hooks));
        *ret_n_hooks = in->n_hooks;
        pthread_mutex_unlock(&in->lock);
        return n;
}

static void commit(struct intake *in, struct job **batch, size_t n, struct store_put *puts,
                   const struct hook *hooks, size_t n_hooks)
{
        struct intake_commit c = {.items = n};
        int64_t mono = clock_mono_ms(), now = clock_wall_ms(), started_us;

        for (size_t i = 0; i < n; i++)
                puts[i] = put_of(batch[i]);
        started_us = clock_mono_us();
        c.error = store_put(in->store, puts, n, now);
        metrics_observe(&commit_family, NULL, (double)(clock_mono_us() - started_us) / 1e6);
        c.elapsed_ms = clock_mono_ms() - mono;
        if (c.error < 0)
                c.errmsg = store_errmsg(in->store);
        atomic_store(&in->healthy, c.error == 0);

        for (size_t i = 0; i < n; i++) {
                struct intake_result r = {
                    .outcome = puts[i].outcome,
                    .first_outcome = puts[i].first_outcome,
                    .rev = puts[i].rev,
                    .snap = batch[i]->snap,
                    .webhook_id = batch[i]->webhook_id,
                };
                if (r.outcome == STORE_PUT_FAILED) {
                        r.error = c.error < 0 ? c.error : -EIO;
                        r.errmsg = c.errmsg ? c.errmsg : "not stored";
                }
                c.accepted += r.outcome == STORE_PUT_ACCEPTED;
                batch[i]->done(batch[i]->userdata, &r);
                batch[i] = job_free(batch[i]);
        }

        if (mono >= in->next_prune_ms) {
                int dropped = store_prune_webhook_ids(in->store, now - WEBHOOK_ID_KEEP_MS);
                in->next_prune_ms = mono + PRUNE_EVERY_MS;
                c.pruned = dropped > 0 ? dropped : 0;
        }
        for (size_t i = 0; i < n_hooks; i++)
                hooks[i].fn(hooks[i].arg, &c);
}

static void *committer(void *arg)
{
        struct intake *in = arg;
        struct store_put *puts = xcalloc(INTAKE_COMMIT_MAX, sizeof(*puts));
        struct job **batch = xcalloc(INTAKE_COMMIT_MAX, sizeof(*batch));
        struct hook hooks[HOOKS_MAX];
        size_t n, n_hooks;
        bool stop = false;

        while (!stop) {
                n = take_batch(in, batch, hooks, &n_hooks, retention_due_at(in->retention),
                               &stop);
                if (n > 0)
                        commit(in, batch, n, puts, hooks, n_hooks);
                /* after a commit too: a steady stream of orders must not starve it */
                if (!stop)
                        retention_step(in->retention, in->store, clock_wall_ms(),
                                       clock_mono_ms());
        }
        free(batch);
        free(puts);
        return NULL;
}

int intake_new(const struct config *cfg, struct intake **ret)
{
        struct intake *in = xcalloc(1, sizeof(*in));
        const char *sinks[SINK_KINDS_MAX];
        size_t n_sinks;
        int r;

        in->tail = &in->head;
        metrics_declare(&commit_family, NULL);
        atomic_init(&in->healthy, true);
        pthread_mutex_init(&in->lock, NULL);
        clock_cond_init(&in->work);
        pthread_cond_init(&in->space, NULL);
        in->retention = retention_new(cfg->retain_days * DAY_MS, RETENTION_EVERY_MS,
                                      RETENTION_BATCH);
        r = store_open(cfg->store_path, &in->store);
        if (r < 0)
                goto fail;
        n_sinks = sink_registry_enabled(cfg, sinks, SINK_KINDS_MAX);
        store_set_sinks(in->store, sinks, n_sinks);
        r = -pthread_create(&in->thread, NULL, committer, in);
        if (r < 0)
                goto fail;
        in->started = true;
        *ret = in;
        return 0;
fail:
        intake_free(in);
        return r;
}

void intake_drain(struct intake *in)
{
        pthread_mutex_lock(&in->lock);
        in->stopping = true;
        pthread_cond_signal(&in->work);
        pthread_cond_broadcast(&in->space);
        pthread_mutex_unlock(&in->lock);
        if (in->started) {
                pthread_join(in->thread, NULL);
                in->started = false;
        }
}

struct intake *intake_free(struct intake *in)
{
        if (!in)
                return NULL;
        intake_drain(in);
        store_close(in->store);
        retention_free(in->retention);
        pthread_mutex_destroy(&in->lock);
        pthread_cond_destroy(&in->work);
        pthread_cond_destroy(&in->space);
        free(in);
        return NULL;
}

int intake_submit(struct intake *in, struct intake_item *item,
                  void (*done)(void *userdata, const struct intake_result *result), void *userdata)
{
        struct job *j = xcalloc(1, sizeof(*j));

        j->webhook_id = item->webhook_id ? xstrdup(item->webhook_id) : NULL;
        memcpy(j->body_sha256, item->body_sha256, sizeof(j->body_sha256));
        j->source = item->source;
        j->sink_only = item->sink_only;
        j->done = done;
        j->userdata = userdata;

        pthread_mutex_lock(&in->lock);
        while (item->bulk && in->queued >= INTAKE_QUEUE_MAX && !in->stopping)
                pthread_cond_wait(&in->space, &in->lock);
        if (in->stopping) {
                pthread_mutex_unlock(&in->lock);
                job_free(j);
                return -ESHUTDOWN;
        }
        j->snap = item->snap;
        item->snap = NULL;
        *in->tail = j;
        in->tail = &j->next;
        in->queued++;
        pthread_cond_signal(&in->work);
        pthread_mutex_unlock(&in->lock);
        return 0;
}

int intake_on_commit(struct intake *in, void (*fn)(void *arg, const struct intake_commit *c),
                     void *arg)
{
        int r = 0;

        pthread_mutex_lock(&in->lock);
        if (in->n_hooks == HOOKS_MAX)
                r = -ENOSPC;
        else
                in->hooks[in->n_hooks++] = (struct hook){fn, arg};
        pthread_mutex_unlock(&in->lock);
        return r;
}

bool intake_healthy(struct intake *in)
{
        return atomic_load(&in->healthy);
}
