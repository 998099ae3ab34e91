/*
 * The ingest path and its group committer. A request is checked in the HTTP thread
 * (signature, JSON, fields, site) — refusals are answered at once and touch nothing.
 * A valid snapshot becomes a job on the commit queue and its connection is suspended;
 * the committer thread takes every queued job, stores them in one transaction, fills in
 * each answer and resumes each connection. So the client hears "202" only after fsync,
 * and N concurrent clients cost one fsync, not N.
 */
#include "http/ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/clock.h"
#include "base/log.h"
#include "http/signature.h"
#include "model/snapshot.h"
#include "store/store.h"
#include "base/xalloc.h"

#define COMMIT_MAX 512 /* jobs per transaction */
/* webhook ids are kept a week (the site module's spool re-sends within days at most) and
 * pruned at most once an hour */
#define WEBHOOK_ID_KEEP_MS (7LL * 24 * 3600 * 1000)
#define PRUNE_EVERY_MS (3600LL * 1000)

struct ingest_job {
        struct ingest_job *next;
        struct MHD_Connection *conn;
        struct snapshot *snap;
        struct store_put put;
        char *webhook_id;
        struct ingest_answer answer;
};

struct ingest {
        const struct config *cfg;
        struct store *store;
        struct dispatch *const *wake;
        size_t n_wake;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct ingest_job *head, **tail;
        size_t queued;
        bool stopping;
        int healthy;
        int64_t pruned_at;
};

void ingest_answer_clear(struct ingest_answer *a)
{
        free(a->json);
        memset(a, 0, sizeof(*a));
}

static void answer(struct ingest_answer *a, unsigned status, json_t *doc)
{
        a->status = status;
        a->json = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
}

static void refuse(struct ingest_answer *a, unsigned status, const char *error, const char *field,
                   const char *message)
{
        json_t *doc = json_pack("{s:s, s:s}", "error", error, "message", message);

        if (field)
                json_object_set_new(doc, "field", json_string(field));
        answer(a, status, doc);
}

static void answer_outcome(struct ingest_job *job)
{
        const struct store_put *p = &job->put;
        enum store_put_outcome o = p->outcome;
        const char *id = job->snap->order_id;
        bool dup = o == STORE_PUT_DUPLICATE;

        if (dup)
                o = p->first_outcome;
        switch (o) {
        case STORE_PUT_ACCEPTED:
                answer(&job->answer, 202,
                       json_pack("{s:s, s:b, s:b}", "order_id", id, "accepted", 1, "duplicate",
                                 dup));
                break;
        case STORE_PUT_STALE:
                answer(&job->answer, 200,
                       json_pack("{s:s, s:b, s:b}", "order_id", id, "stale", 1, "duplicate",
                                 dup));
                break;
        case STORE_PUT_CONFLICT:
                refuse(&job->answer, 409, "webhook_id_reused", "webhook-id",
                       "this webhook-id was already used for a different body; a new snapshot "
                       "needs a new webhook-id");
                break;
        default:
                refuse(&job->answer, 503, "store_unavailable", NULL,
                       "the order could not be stored; nothing was accepted, send it again");
                job->answer.retry_after_s = 5;
                break;
        }
}

static void log_outcome(const struct ingest_job *job)
{
        static const char *const names[] = {"accepted", "stale", "duplicate", "conflict",
                                            "failed"};
        const struct snapshot *s = job->snap;

        log_info("ingest.stored", "order_id=%s version=%lld rev=%lld outcome=%s webhook_id=%s",
                 s->order_id, s->has_version ? (long long)s->version : -1LL,
                 (long long)job->put.rev, names[job->put.outcome], job->webhook_id);
}

static void *committer(void *arg)
{
        struct ingest *in = arg;
        struct store_put *puts = xcalloc(COMMIT_MAX, sizeof(*puts));
        struct ingest_job *batch[COMMIT_MAX];

        for (;;) {
                size_t n = 0;
                bool accepted = false;
                int64_t started, mono;
                int r;

                pthread_mutex_lock(&in->lock);
                while (!in->head && !in->stopping)
                        pthread_cond_wait(&in->cond, &in->lock);
                if (!in->head && in->stopping) {
                        pthread_mutex_unlock(&in->lock);
                        break;
                }
                while (in->head && n < COMMIT_MAX) {
                        batch[n++] = in->head;
                        in->head = in->head->next;
                }
                if (!in->head)
                        in->tail = &in->head;
                in->queued -= n;
                pthread_mutex_unlock(&in->lock);

                for (size_t i = 0; i < n; i++)
                        puts[i] = batch[i]->put;
                started = clock_wall_ms();
                mono = clock_mono_ms();
                r = store_put(in->store, puts, n, started);
                in->healthy = r == 0;
                log_debug("ingest.commit", "jobs=%zu ms=%lld ok=%s", n,
                          (long long)(clock_mono_ms() - mono), r == 0 ? "yes" : "no");
                if (r < 0)
                        log_err("ingest.commit_failed", "jobs=%zu error=\"%s\"", n,
                                store_errmsg(in->store));
                for (size_t i = 0; i < n; i++) {
                        batch[i]->put = puts[i];
                        accepted |= puts[i].outcome == STORE_PUT_ACCEPTED;
                        answer_outcome(batch[i]);
                        log_outcome(batch[i]);
                }
                /* Resume under the lock: a handler suspends its connection while holding
                 * it, so no resume can overtake its suspend. */
                pthread_mutex_lock(&in->lock);
                for (size_t i = 0; i < n; i++)
                        MHD_resume_connection(batch[i]->conn);
                pthread_mutex_unlock(&in->lock);
                if (accepted)
                        for (size_t i = 0; i < in->n_wake; i++)
                                dispatch_wake(in->wake[i]);
                if (started - in->pruned_at > PRUNE_EVERY_MS) {
                        int dropped = store_prune_webhook_ids(in->store,
                                                              started - WEBHOOK_ID_KEEP_MS);
                        in->pruned_at = started;
                        if (dropped > 0)
                                log_info("ingest.pruned", "webhook_ids=%d", dropped);
                }
        }
        free(puts);
        return NULL;
}

int ingest_new(const struct config *cfg, struct dispatch *const *wake, size_t n_wake,
               struct ingest **ret)
{
        struct ingest *in = xcalloc(1, sizeof(*in));
        const char *sinks[2];
        size_t n_sinks = 0;
        int r;

        in->cfg = cfg;
        in->wake = wake;
        in->n_wake = n_wake;
        in->tail = &in->head;
        in->healthy = 1;
        pthread_mutex_init(&in->lock, NULL);
        pthread_cond_init(&in->cond, NULL);
        r = store_open(cfg->store_path, &in->store);
        if (r < 0) {
                free(in);
                return r;
        }
        n_sinks = config_sinks(cfg, sinks);
        store_set_sinks(in->store, sinks, n_sinks);
        r = -pthread_create(&in->thread, NULL, committer, in);
        if (r < 0) {
                store_close(in->store);
                free(in);
                return r;
        }
        *ret = in;
        return 0;
}

void ingest_drain(struct ingest *in)
{
        pthread_mutex_lock(&in->lock);
        in->stopping = true;
        pthread_cond_signal(&in->cond);
        pthread_mutex_unlock(&in->lock);
        pthread_join(in->thread, NULL);
}

struct ingest *ingest_free(struct ingest *in)
{
        if (!in)
                return NULL;
        if (!in->stopping)
                ingest_drain(in);
        store_close(in->store);
        pthread_mutex_destroy(&in->lock);
        pthread_cond_destroy(&in->cond);
        free(in);
        return NULL;
}

int ingest_store_healthy(struct ingest *in)
{
        return in->healthy;
}

int ingest_submit(struct ingest *in, struct MHD_Connection *conn, const struct ingest_request *req,
                  struct ingest_job **ret_job, struct ingest_answer *ret)
{
        const struct config *cfg = in->cfg;
        struct snapshot_error err;
        struct snapshot *snap = NULL;
        struct ingest_job *job;
        int sr;
        unsigned int dlen;

        if (!cfg->has_signing_key) {
                refuse(ret, 503, "not_configured", NULL,
                       "no signing secret is configured ([server] signing_secret_file)");
                return 1;
        }
        sr = signature_verify(&cfg->signing_key, req->webhook_id, req->webhook_timestamp,
                              req->webhook_signature, req->body, req->len, time(NULL));
        if (sr < 0) {
                const char *field = sr == -EINVAL                    ? "webhook-id"
                                    : sr == -EDOM || sr == -ERANGE ? "webhook-timestamp"
                                                                   : "webhook-signature";
                log_warn("ingest.unauthorized", "reason=\"%s\"", signature_strerror(sr));
                refuse(ret, 401, "bad_signature", field, signature_strerror(sr));
                return 1;
        }
        if (snapshot_parse(req->body, req->len, &snap, &err) < 0) {
                char msg[300];
                snprintf(msg, sizeof(msg), "%s %s", err.field, err.message);
                log_warn("ingest.invalid", "webhook_id=%s field=%s message=\"%s\"",
                         req->webhook_id, err.field, err.message);
                refuse(ret, 400, "invalid_field", err.field, msg);
                return 1;
        }
        if (cfg->site_id && strcmp(cfg->site_id, snap->site) != 0) {
                log_warn("ingest.invalid", "order_id=%s field=site message=\"not this site\"",
                         snap->order_id);
                refuse(ret, 400, "invalid_field", "site",
                       "site does not match this orderbridge's [site] id");
                snapshot_free(snap);
                return 1;
        }
        if (snap->visit_dropped)
                log_warn("ingest.visit_dropped", "order_id=%s reason=\"roistat_visit must be "
                         "1-%d digits\"", snap->order_id, SNAPSHOT_VISIT_MAX);

        job = xcalloc(1, sizeof(*job));
        job->conn = conn;
        job->snap = snap;
        job->webhook_id = xstrdup(req->webhook_id);
        job->put = (struct store_put){
                .order_id = snap->order_id,
                .site = snap->site,
                .json = snap->json,
                .has_version = snap->has_version,
                .version = snap->version,
                .has_updated_at = snap->has_updated_at,
                .updated_at = snap->updated_at,
                .webhook_id = job->webhook_id,
                .source = "ingest",
        };
        EVP_Digest(req->body, req->len, job->put.body_sha256, &dlen, EVP_sha256(), NULL);

        pthread_mutex_lock(&in->lock);
        if (in->stopping) {
                pthread_mutex_unlock(&in->lock);
                snapshot_free(snap);
                free(job->webhook_id);
                free(job);
                refuse(ret, 503, "shutting_down", NULL, "orderbridge is stopping; send it again");
                ret->retry_after_s = 5;
                return 1;
        }
        *in->tail = job;
        in->tail = &job->next;
        in->queued++;
        *ret_job = job;
        MHD_suspend_connection(conn);
        pthread_cond_signal(&in->cond);
        pthread_mutex_unlock(&in->lock);
        return 0;
}

void ingest_job_finish(struct ingest_job *job, struct ingest_answer *ret)
{
        *ret = job->answer;
        snapshot_free(job->snap);
        free(job->webhook_id);
        free(job);
}
