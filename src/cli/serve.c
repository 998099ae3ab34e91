/*
 * `orderbridge serve`: the daemon. Start-up order: take the store's server lock and
 * recover what an earlier run left in flight (once, per sink, before any worker), start
 * one dispatcher per enabled sink, the intake (the group committer, which wakes the
 * dispatchers after each commit that accepted work), the enabled sources, the HTTP front,
 * and the scheduled light reconcile ([delivery] reconcile_interval). Then wait for
 * SIGTERM/SIGINT and stop in the reverse order: the HTTP front answers what it holds and
 * the sources stop submitting, the reconcile (it only reads the remotes and records what
 * it found) ends its run, the intake commits what it was handed, and only then do the
 * dispatchers stop, so whatever was acknowledged is committed before exit and no commit
 * wakes a stopped dispatcher.
 *
 * Under systemd (Type=notify): READY=1 goes out when all of that runs (lifecycle_set),
 * the watchdog's pinger starts after it, STOPPING=1 when a signal comes. SIGHUP re-reads
 * the configuration file and, when it is valid, applies its [log] level; anything else
 * (the status maps, the sinks' keys and URLs, the listener) needs a restart: the sink
 * threads read their sections of the loaded configuration without a lock, for the
 * daemon's whole life, so swapping it under them is not safe, and a restart loses
 * nothing (what was accepted is in the store, and a restart takes under a second).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/lifecycle.h"
#include "base/log.h"
#include "cli/cli.h"
#include "http/server.h"
#include "queue/dispatch.h"
#include "queue/intake.h"
#include "queue/reconciler.h"
#include "queue/watchdog.h"
#include "queue/retention.h"
#include "sinks/registry.h"
#include "sources/registry.h"
#include "store/store.h"

#define SOURCES_MAX 16

/* What the daemon runs; each part is NULL (or 0) until started. */
struct daemon {
        struct store *lock; /* the server lock, held until exit */
        struct dispatch *sinks[SINK_KINDS_MAX];
        size_t n_sinks;
        struct intake *in;
        struct source *sources[SOURCES_MAX];
        size_t n_sources;
        struct http_env env; /* what the HTTP routes reach */
        struct http_server *srv;
        struct reconciler *rec; /* the scheduled light reconcile, NULL when off */
        struct watchdog *dog;   /* systemd's watchdog pinger, NULL when not asked for */
};

/* After each commit, from the intake's thread: the ingest's commit log lines, and a
 * wake-up for every dispatcher when there is new work. */
static void on_commit(void *arg, const struct intake_commit *c)
{
        const struct daemon *d = arg;

        log_debug("ingest.commit", "jobs=%zu ms=%lld ok=%s", c->items, (long long)c->elapsed_ms,
                  c->error == 0 ? "yes" : "no");
        if (c->error < 0)
                log_err("ingest.commit_failed", "jobs=%zu error=\"%s\"", c->items, c->errmsg);
        if (c->pruned > 0)
                log_info("ingest.pruned", "webhook_ids=%d", c->pruned);
        if (c->accepted > 0)
                for (size_t i = 0; i < d->n_sinks; i++)
                        dispatch_wake(d->sinks[i]);
}

/* This process becomes the store's only server, and what an earlier run left in flight
 * goes back to pending: first, before any dispatcher (Postfix's qmgr). */
static int take_store(const struct config *cfg, struct daemon *d)
{
        long holder = 0;
        int r = dispatch_recover(cfg, &d->lock, &holder);

        if (r == -EBUSY)
                log_err("serve.failed", "what=lock error=\"another orderbridge (pid %ld) is "
                        "serving %s\"", holder, cfg->store_path);
        else if (r < 0)
                log_err("serve.failed", "what=recover path=%s error=\"%s\"", cfg->store_path,
                        strerror(-r));
        else
                retention_prepare(cfg, d->lock); /* once: a store that cannot shrink can */
        return r;
}

static int start_sinks(const struct config *cfg, struct daemon *d)
{
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                const struct sink_ops *ops;
                void *ctx;
                int r;

                if (!sink_kind_enabled(k, cfg))
                        continue;
                r = k->create(cfg, &ops, &ctx);
                if (r == 0)
                        r = dispatch_start(cfg, ops, ctx, &d->sinks[d->n_sinks]);
                if (r < 0) {
                        log_err("serve.failed", "what=%s error=\"%s\"", k->name, strerror(-r));
                        return r;
                }
                d->n_sinks++;
        }
        return 0;
}

static int start_intake(const struct config *cfg, struct daemon *d)
{
        int r = intake_new(cfg, &d->in);

        if (r == 0)
                r = intake_on_commit(d->in, on_commit, d);
        if (r < 0)
                log_err("serve.failed", "what=store path=%s error=\"%s\"", cfg->store_path,
                        strerror(-r));
        return r;
}

static int start_sources(const struct config *cfg, struct daemon *d)
{
        for (size_t i = 0; i < source_registry_count() && d->n_sources < SOURCES_MAX; i++) {
                const struct source_kind *k = source_registry_get(i);
                struct source *src = NULL;
                int r;

                if (!source_kind_enabled(k, cfg))
                        continue;
                r = k->create(cfg, &src);
                if (r == 0) {
                        d->sources[d->n_sources++] = src;
                        r = source_start(src, d->in);
                }
                if (r < 0) {
                        log_err("serve.failed", "what=%s error=\"%s\"", k->name, strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* SIGHUP: the file again, checked like at start; its log level applied when it is valid,
 * the running configuration kept (and the problems logged) when it is not. */
static void reload(const struct config *cfg)
{
        struct config *fresh = NULL;
        char *errors = NULL;
        enum log_level lvl;
        int r = config_load(cfg->path, &fresh, &errors);

        if (r < 0) {
                /* the reader's messages name the file, line and key, never a secret */
                log_err("serve.reload_failed",
                        "config=%s kept=running errors=\"%s\"", cfg->path,
                        errors ? errors : strerror(-r));
                free(errors);
                return;
        }
        if (log_level_parse(fresh->log_level, &lvl) == 0) {
                /* logged under whichever of the two levels is the more verbose, so that
                 * a change either way leaves its line */
                if (lvl <= LOG_INFO)
                        log_set_level(lvl);
                log_info("serve.reloaded",
                         "config=%s log_level=%s restart_for=\"status maps, keys, URLs, "
                         "listen, store\"",
                         cfg->path, fresh->log_level);
                log_set_level(lvl);
        }
        fresh = config_free(fresh);
}

static void stop_all(struct daemon *d)
{
        d->dog = watchdog_stop(d->dog);
        d->srv = http_server_stop(d->srv);
        for (size_t i = 0; i < d->n_sources; i++)
                source_stop(d->sources[i]);
        d->rec = reconciler_stop(d->rec);
        d->in = intake_free(d->in); /* commits what it holds first */
        for (size_t i = 0; i < d->n_sources; i++)
                d->sources[i] = source_free(d->sources[i]);
        for (size_t i = 0; i < d->n_sinks; i++)
                d->sinks[i] = dispatch_stop(d->sinks[i]);
        d->lock = store_close(d->lock);
}

int cli_serve(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        struct daemon d = {0};
        sigset_t set;
        int sig = 0, r;

        if (argc > 0) {
                fprintf(stderr, "orderbridge serve: unexpected argument %s\n", argv[0]);
                return 2;
        }
        /* block the stop signals in every thread; this one waits for them */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        if ((r = take_store(cfg, &d)) < 0 || (r = start_sinks(cfg, &d)) < 0 ||
            (r = start_intake(cfg, &d)) < 0 || (r = start_sources(cfg, &d)) < 0)
                goto out;
        d.env = (struct http_env){.cfg = cfg,
                                  .intake = d.in,
                                  .sources = d.sources,
                                  .n_sources = d.n_sources,
                                  .sinks = d.sinks,
                                  .n_sinks = d.n_sinks};
        r = http_server_start(&d.env, &d.srv);
        if (r < 0) {
                log_err("serve.failed", "what=listen listen=%s error=\"%s\"", cfg->listen,
                        strerror(-r));
                goto out;
        }
        r = reconciler_start(cfg, &d.rec);
        if (r < 0) {
                log_err("serve.failed", "what=reconcile error=\"%s\"", strerror(-r));
                goto out;
        }
        log_info("serve.ready", "listen=%s port=%u sinks=%zu sources=%zu store=%s", cfg->listen,
                 http_server_port(d.srv), d.n_sinks, d.n_sources, cfg->store_path);
        lifecycle_set(LIFECYCLE_READY);
        /* after READY: systemd's watchdog timer runs from the end of the start-up */
        r = watchdog_start(cfg->poll_interval_ms, &d.dog);
        if (r < 0) {
                log_err("serve.failed", "what=watchdog error=\"%s\"", strerror(-r));
                goto out;
        }
        do {
                if (sigwait(&set, &sig) != 0)
                        break;
                if (sig == SIGHUP)
                        reload(cfg);
        } while (sig == SIGHUP);
        lifecycle_set(LIFECYCLE_STOPPING);
        log_info("serve.stopping", "signal=%d", sig);
        r = 0;
out:
        lifecycle_set(LIFECYCLE_STOPPING);
        stop_all(&d);
        log_event(r == 0 ? LOG_INFO : LOG_ERR, "serve.stopped", "status=%s",
                  r == 0 ? "ok" : "failed");
        return r == 0 ? 0 : 1;
}
