/*
 * GET /metrics: the process's metrics in Prometheus' text format 0.0.4, for a loopback
 * peer, or for anyone with `Authorization: Bearer <[server] admin_token>` (compared in
 * constant time); others get 403 (no token configured) or 401.
 *
 * Events (attempts, remote calls, answers, commits, the rate-limit buckets) are counted
 * where they happen (base/metrics); what is state — deliveries per sink and state, the
 * oldest owed delivery, dead letters, pauses, the store's size — is read here at each
 * scrape, from the store (the route's own read-only connection, one scrape at a time)
 * and from sinkstate, and set as gauges before the registry is rendered. A store that
 * cannot be read leaves those gauges as they were and says so in orderbridge_store_up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/xalloc.h"
#include "http/auth.h"
#include "http/route.h"
#include "queue/sinkstate.h"
#include "sinks/registry.h"
#include "store/store.h"

#ifndef ORDERBRIDGE_VERSION
#define ORDERBRIDGE_VERSION "unknown"
#endif

#define RENDER_MAX (4 * 1024 * 1024) /* a few hundred series take a few tens of KiB */

static const struct metrics_family deliveries_family = {
    .name = "orderbridge_deliveries",
    .help = "Deliveries (one per order and sink) by state: pending, inflight, retrying, "
            "waiting, done, dead.",
    .type = METRICS_GAUGE,
    .labels = {"sink", "state"},
};

static const struct metrics_family oldest_family = {
    .name = "orderbridge_delivery_oldest_pending_age_seconds",
    .help = "How long the longest-owed pending, in-flight or retrying delivery has been owed "
            "(0: none).",
    .type = METRICS_GAUGE,
    .labels = {"sink"},
};

static const struct metrics_family dead_family = {
    .name = "orderbridge_dead_letters",
    .help = "Deliveries given up on, waiting for an operator (orderbridge status --dead, "
            "orderbridge retry).",
    .type = METRICS_GAUGE,
    .labels = {"sink"},
};

static const struct metrics_family paused_family = {
    .name = "orderbridge_sink_paused",
    .help = "1 while the sink's loop is paused for this reason (remote: the remote failed as "
            "a whole; auth: credentials refused; store: the store failed), else 0.",
    .type = METRICS_GAUGE,
    .labels = {"sink", "reason"},
};

static const struct metrics_family size_family = {
    .name = "orderbridge_store_size_bytes",
    .help = "Bytes the store takes on disk.",
    .type = METRICS_GAUGE,
};

static const struct metrics_family store_up_family = {
    .name = "orderbridge_store_up",
    .help = "1 when this scrape could read the store (the delivery gauges are current), "
            "else 0.",
    .type = METRICS_GAUGE,
};

static const struct metrics_family build_family = {
    .name = "orderbridge_build_info",
    .help = "Always 1; the version of the running daemon is its label.",
    .type = METRICS_GAUGE,
    .labels = {"version"},
};

/* One sink's state gauges; false when the store could not be read. */
static bool collect_sink(struct store *store, const char *sink, int64_t now_ms)
{
        static const char *const reasons[] = {"remote", "auth", "store"};
        static const enum sink_pause pauses[] = {SINK_PAUSED_REMOTE, SINK_PAUSED_AUTH,
                                                 SINK_PAUSED_STORE};
        struct store_counts c;
        struct sinkstate_view v;
        bool running = sinkstate_get(sink, &v) < 0;
        const char *state;
        int64_t n;

        for (size_t i = 0; i < 3; i++)
                metrics_gauge_set(&paused_family, (const char *const[]){sink, reasons[i]},
                                  !running && v.pause == pauses[i]);
        if (store_counts(store, sink, &c) < 0)
                return false;
        for (size_t i = 0; (state = store_counts_nth(&c, i, &n)); i++)
                metrics_gauge_set(&deliveries_family, (const char *const[]){sink, state},
                                  (double)n);
        metrics_gauge_set(&oldest_family, (const char *const[]){sink},
                          c.oldest_pending_at > 0 && now_ms > c.oldest_pending_at
                                  ? (double)(now_ms - c.oldest_pending_at) / 1000.0
                                  : 0);
        metrics_gauge_set(&dead_family, (const char *const[]){sink}, (double)c.dead);
        return true;
}

/* Sets the gauges read from the store and sinkstate. */
static void collect(const struct config *cfg, struct store *store)
{
        const char *sinks[SINK_KINDS_MAX];
        size_t n = sink_registry_enabled(cfg, sinks, SINK_KINDS_MAX);
        int64_t now_ms = clock_wall_ms(), bytes = 0;
        bool ok = true;

        for (size_t i = 0; i < n; i++)
                ok = collect_sink(store, sinks[i], now_ms) && ok;
        if (store_size(store, &bytes) == 0)
                metrics_gauge_set(&size_family, NULL, (double)bytes);
        else
                ok = false;
        metrics_gauge_set(&store_up_family, NULL, ok);
        metrics_gauge_set(&build_family, (const char *const[]){ORDERBRIDGE_VERSION}, 1);
}

static int metrics_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        struct http_store_reader *rd = state;
        struct buf out;
        int r;

        if (!http_request_peer_loopback(rq)) {
                if (!env->cfg->admin_token)
                        return http_request_reply_error(
                                rq, 403, "forbidden", NULL,
                                "/metrics is served to loopback peers; set [server] "
                                "admin_token_file to allow others with a bearer token");
                if (http_auth_check(env->cfg->admin_token,
                                    http_request_header(rq, "Authorization")) != HTTP_AUTH_OK)
                        return http_request_reply(
                                rq, 401,
                                "{\"error\":\"unauthorized\",\"field\":\"Authorization\","
                                "\"message\":\"a valid bearer token is required\"}",
                                0, "Bearer");
        }
        buf_init(&out, RENDER_MAX);
        pthread_mutex_lock(&rd->lock);
        collect(env->cfg, rd->store);
        r = metrics_render(&out, clock_mono_us());
        pthread_mutex_unlock(&rd->lock);
        if (r < 0)
                r = http_request_reply_error(rq, 500, "too_large", NULL,
                                             "the metrics do not fit the render buffer");
        else
                r = http_request_reply_type(rq, 200, "text/plain; version=0.0.4; charset=utf-8",
                                            out.data ? out.data : "", out.len, NULL);
        buf_free(&out);
        return r;
}

const struct http_route route_metrics = {
    .methods = "GET, HEAD",
    .path = "/metrics",
    .body = HTTP_BODY_NONE,
    .open = http_store_reader_open,
    .close = http_store_reader_close,
    .handle = metrics_handle,
};
