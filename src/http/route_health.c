/*
 * GET /healthz: whether the daemon does its job, for a load balancer, a monitor or
 * systemd. 200 {"status":"ok"} only when the store commits and every sink delivers;
 * otherwise 503 {"status":"failing","problems":[…]}, one entry per thing wrong, each
 * with its sink (when it has one), the problem, the reason in words and since when. A
 * sink backing off from a remote that is down (paused_remote) is listed but is not by
 * itself a failure: it heals alone, unless it lasts past [delivery] stuck_after_s.
 *
 * Whether the store commits is asked of the store itself, not only of the intake's last
 * transaction (an idle daemon has none): one probe thread writes one meta row and reads
 * each sink's oldest owed delivery, at most once per PROBE_FRESH_MS whatever the number
 * of requests, so a flood of probes costs no write. A request never waits on the store
 * for more than PROBE_SLOW_MS: a probe that has not returned by then (a lock held by
 * another process, a hung disk) is itself the answer.
 *
 * Nothing from an order is shown beyond counts, and no secret: the reasons are the
 * dispatcher's words for a failed pass, which never carry one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/xalloc.h"
#include "http/route.h"
#include "model/iso8601.h"
#include "queue/sinkstate.h"
#include "store/store.h"

#define PROBE_FRESH_MS 3000 /* a probe's answer stands this long */
#define PROBE_SLOW_MS 2000  /* a probe running this long means the store does not commit */
#define HEALTH_META_KEY "health.probe"

/* What the store showed: the last probe's outcome (ok, error, each registered sink's
 * oldest owed delivery, wall ms of store_counts.oldest_pending_at) and since when it has
 * failed as requests saw it (wall, 0 while it commits). */
struct store_view {
        bool ok;
        char error[200];
        int64_t bad_since_ms;
        size_t n_oldest;
        char oldest_sink[SINKSTATE_MAX][32];
        int64_t oldest_at_ms[SINKSTATE_MAX];
};

struct health {
        const struct config *cfg;
        struct store *store; /* the probe thread's alone */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake, done; /* monotonic; wake: a probe is wanted; done: one ended */
        /* under lock */
        bool stopping, wanted, probing;
        int64_t probe_started_ms; /* monotonic */
        int64_t probed_at_ms;     /* monotonic, when the last probe ended; 0: none yet */
        struct store_view seen;
};

/* One probe, outside the lock: a committed write, then each registered sink's oldest
 * owed delivery. Stores the outcome under the lock. */
static void probe(struct health *h)
{
        struct sinkstate_view views[SINKSTATE_MAX];
        size_t n = sinkstate_list(views, SINKSTATE_MAX);
        int64_t oldest[SINKSTATE_MAX] = {0};
        char now[32], error[200] = "";
        int r;

        iso8601_format(clock_wall_ms() / 1000, now, sizeof(now));
        r = store_meta_set(h->store, HEALTH_META_KEY, now);
        if (r < 0)
                snprintf(error, sizeof(error), "a test commit failed: %s", store_errmsg(h->store));
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct store_counts c;
                if ((r = store_counts(h->store, views[i].name, &c)) < 0)
                        snprintf(error, sizeof(error), "cannot count %s's deliveries: %s",
                                 views[i].name, store_errmsg(h->store));
                else
                        oldest[i] = c.oldest_pending_at;
        }
        pthread_mutex_lock(&h->lock);
        h->seen.ok = r >= 0;
        snprintf(h->seen.error, sizeof(h->seen.error), "%s", error);
        h->seen.n_oldest = r >= 0 ? n : 0;
        for (size_t i = 0; i < h->seen.n_oldest; i++) {
                snprintf(h->seen.oldest_sink[i], sizeof(h->seen.oldest_sink[i]), "%s",
                         views[i].name);
                h->seen.oldest_at_ms[i] = oldest[i];
        }
        pthread_mutex_unlock(&h->lock);
}

static void *probe_loop(void *arg)
{
        struct health *h = arg;

        pthread_mutex_lock(&h->lock);
        for (;;) {
                while (!h->wanted && !h->stopping)
                        pthread_cond_wait(&h->wake, &h->lock);
                if (h->stopping)
                        break;
                h->probing = true;
                h->probe_started_ms = clock_mono_ms();
                pthread_mutex_unlock(&h->lock);
                probe(h);
                pthread_mutex_lock(&h->lock);
                h->probing = h->wanted = false;
                h->probed_at_ms = clock_mono_ms();
                pthread_cond_broadcast(&h->done);
        }
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

static int health_open(const struct http_env *env, void **ret_state)
{
        struct health *h = xcalloc(1, sizeof(*h));
        int r = store_open(env->cfg->store_path, &h->store);

        if (r < 0) {
                free(h);
                return r;
        }
        h->cfg = env->cfg;
        pthread_mutex_init(&h->lock, NULL);
        clock_cond_init(&h->wake);
        clock_cond_init(&h->done);
        if ((r = pthread_create(&h->thread, NULL, probe_loop, h)) != 0) {
                store_close(h->store);
                free(h);
                return -r;
        }
        *ret_state = h;
        return 0;
}

static void health_close(void *state)
{
        struct health *h = state;

        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_broadcast(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        store_close(h->store);
        pthread_cond_destroy(&h->wake);
        pthread_cond_destroy(&h->done);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

/* What a request sees of the store: the cached probe, or a new one (waited for at most
 * until the probe has run PROBE_SLOW_MS). */
static void store_look(struct health *h, bool intake_ok, struct store_view *ret)
{
        int64_t now;

        pthread_mutex_lock(&h->lock);
        now = clock_mono_ms();
        if (h->probed_at_ms == 0 || now - h->probed_at_ms >= PROBE_FRESH_MS) {
                struct timespec deadline;
                if (!h->probing) {
                        h->wanted = true;
                        h->probe_started_ms = now; /* until the thread takes it */
                        pthread_cond_signal(&h->wake);
                }
                clock_mono_deadline(h->probe_started_ms + PROBE_SLOW_MS - now, &deadline);
                while ((h->wanted || h->probing) && !h->stopping &&
                       pthread_cond_timedwait(&h->done, &h->lock, &deadline) != ETIMEDOUT)
                        ;
        }
        *ret = h->seen;
        if (h->wanted || h->probing) {
                ret->ok = false;
                snprintf(ret->error, sizeof(ret->error),
                         "a test commit has not returned for %lld ms (a lock held, or the disk "
                         "hangs)",
                         (long long)(clock_mono_ms() - h->probe_started_ms));
        }
        if (!intake_ok) {
                ret->ok = false;
                snprintf(ret->error, sizeof(ret->error), "the last ingest commit failed");
        }
        if (ret->ok)
                h->seen.bad_since_ms = 0;
        else if (h->seen.bad_since_ms == 0)
                h->seen.bad_since_ms = clock_wall_ms();
        ret->bad_since_ms = h->seen.bad_since_ms;
        pthread_mutex_unlock(&h->lock);
}

/* Appends {"sink":…,"problem":…,"reason":…,"since":ISO8601[,"until":…]} to `problems`. */
static void add_problem(json_t *problems, const char *sink, const char *problem,
                        const char *reason, int64_t since_ms, int64_t until_ms)
{
        json_t *p = json_object();
        char when[32];

        if (sink)
                json_object_set_new(p, "sink", json_string(sink));
        json_object_set_new(p, "problem", json_string(problem));
        json_object_set_new(p, "reason", json_string(reason));
        if (since_ms > 0) {
                iso8601_format(since_ms / 1000, when, sizeof(when));
                json_object_set_new(p, "since", json_string(when));
        }
        if (until_ms > 0) {
                iso8601_format(until_ms / 1000, when, sizeof(when));
                json_object_set_new(p, "until", json_string(when));
        }
        json_array_append_new(problems, p);
}

static int64_t oldest_of(const struct store_view *sv, const char *sink)
{
        for (size_t i = 0; i < sv->n_oldest; i++)
                if (strcmp(sv->oldest_sink[i], sink) == 0)
                        return sv->oldest_at_ms[i];
        return 0;
}

/* One sink's problems; returns how many of them fail the daemon (paused_remote does not). */
static int sink_problems(const struct sinkstate_view *v, const struct store_view *sv,
                         int64_t stuck_ms, json_t *problems)
{
        int64_t mono = clock_mono_ms(), wall = clock_wall_ms();
        int64_t oldest = oldest_of(sv, v->name);
        enum sink_stall stall;
        char why[320];
        int failing = 0;

        if (v->pause != SINK_RUNNING) {
                add_problem(problems, v->name, sinkstate_pause_name(v->pause), v->reason,
                            v->paused_at_ms, v->paused_until_ms);
                failing += v->pause != SINK_PAUSED_REMOTE;
        }
        stall = sinkstate_stall(v, mono, wall, stuck_ms);
        if (stall == SINK_STALL_PASS) {
                snprintf(why, sizeof(why), "a delivery pass has run for %lld s",
                         (long long)((mono - v->pass_started_ms) / 1000));
                add_problem(problems, v->name, "stuck_pass", why,
                            wall - (mono - v->pass_started_ms), 0);
                failing++;
        } else if (stall == SINK_STALL_LOOP) {
                snprintf(why, sizeof(why), "the delivery loop has not gone round for %lld s",
                         (long long)((mono - v->beat_ms) / 1000));
                add_problem(problems, v->name, "stuck_loop", why, wall - (mono - v->beat_ms), 0);
                failing++;
        }
        if (oldest > 0 && wall - oldest > stuck_ms) {
                snprintf(why, sizeof(why), "an order has been owed for %lld s",
                         (long long)((wall - oldest) / 1000));
                add_problem(problems, v->name, "stuck_queue", why, oldest, 0);
                failing++;
        }
        return failing;
}

static int health_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        struct health *h = state;
        struct sinkstate_view views[SINKSTATE_MAX];
        struct store_view sv;
        size_t n = sinkstate_list(views, SINKSTATE_MAX);
        json_t *problems = json_array(), *body;
        int failing = 0, r;
        char *text;

        store_look(h, intake_healthy(env->intake), &sv);
        if (!sv.ok) {
                add_problem(problems, NULL, "store_failing", sv.error, sv.bad_since_ms, 0);
                failing++;
        }
        for (size_t i = 0; i < n; i++)
                failing += sink_problems(&views[i], &sv, h->cfg->stuck_after_s * 1000, problems);
        body = json_pack("{s:s}", "status", failing ? "failing" : "ok");
        if (json_array_size(problems) > 0)
                json_object_set(body, "problems", problems);
        text = json_dumps(body, JSON_COMPACT);
        r = http_request_reply(rq, failing ? 503 : 200, text, failing ? 5 : 0, NULL);
        free(text);
        json_decref(body);
        json_decref(problems);
        return r;
}

const struct http_route route_health = {
    .methods = "GET, HEAD",
    .path = "/healthz",
    .body = HTTP_BODY_NONE,
    .open = health_open,
    .close = health_close,
    .handle = health_handle,
};
