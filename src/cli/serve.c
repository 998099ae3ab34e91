/*
 * `orderbridge serve`: the daemon. Starts one dispatcher per enabled sink, the intake
 * (the group committer, which wakes the dispatchers after each commit that accepted
 * work) and the HTTP front, then waits for SIGTERM/SIGINT and stops them in the reverse
 * order: the HTTP front answers what it holds, the intake commits what it was handed,
 * and only then do the dispatchers stop, so whatever was acknowledged is committed
 * before exit and no commit wakes a stopped dispatcher.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "http/server.h"
#include "queue/dispatch.h"
#include "queue/intake.h"
#include "sinks/registry.h"
#include "store/store.h"

/* The dispatchers a commit wakes. */
struct wake_list {
        struct dispatch *const *d;
        size_t n;
};

/* After each commit, from the intake's thread: the ingest's commit log lines, and a
 * wake-up for every dispatcher when there is new work. */
static void on_commit(void *arg, const struct intake_commit *c)
{
        const struct wake_list *w = arg;

        log_debug("ingest.commit", "jobs=%zu ms=%lld ok=%s", c->items, (long long)c->elapsed_ms,
                  c->error == 0 ? "yes" : "no");
        if (c->error < 0)
                log_err("ingest.commit_failed", "jobs=%zu error=\"%s\"", c->items, c->errmsg);
        if (c->pruned > 0)
                log_info("ingest.pruned", "webhook_ids=%d", c->pruned);
        if (c->accepted > 0)
                for (size_t i = 0; i < w->n; i++)
                        dispatch_wake(w->d[i]);
}

int cli_serve(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        struct dispatch *sinks[SINK_KINDS_MAX] = {0};
        struct http_server *srv = NULL;
        struct intake *in = NULL;
        struct wake_list wake;
        struct store *lock = NULL;
        long holder = 0;
        size_t n_sinks = 0;
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

        /* First, before any dispatcher: this process becomes the store's only server, and
         * what an earlier run left in flight goes back to pending (Postfix's qmgr). */
        r = dispatch_recover(cfg, &lock, &holder);
        if (r == -EBUSY) {
                log_err("serve.failed", "what=lock error=\"another orderbridge (pid %ld) is "
                        "serving %s\"", holder, cfg->store_path);
                goto out;
        }
        if (r < 0) {
                log_err("serve.failed", "what=recover path=%s error=\"%s\"", cfg->store_path,
                        strerror(-r));
                goto out;
        }
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                const struct sink_ops *ops;
                void *ctx;
                if (!sink_kind_enabled(k, cfg))
                        continue;
                r = k->create(cfg, &ops, &ctx);
                if (r == 0)
                        r = dispatch_start(cfg, ops, ctx, &sinks[n_sinks]);
                if (r < 0) {
                        log_err("serve.failed", "what=%s error=\"%s\"", k->name,
                                strerror(-r));
                        goto out;
                }
                n_sinks++;
        }
        wake = (struct wake_list){sinks, n_sinks};
        r = intake_new(cfg, &in);
        if (r == 0)
                r = intake_on_commit(in, on_commit, &wake);
        if (r < 0) {
                log_err("serve.failed", "what=store path=%s error=\"%s\"", cfg->store_path,
                        strerror(-r));
                goto out;
        }
        r = http_server_start(cfg, in, &srv);
        if (r < 0) {
                log_err("serve.failed", "what=listen listen=%s error=\"%s\"", cfg->listen,
                        strerror(-r));
                goto out;
        }
        log_info("serve.ready", "listen=%s port=%u sinks=%zu store=%s", cfg->listen,
                 http_server_port(srv), n_sinks, cfg->store_path);
        do {
                if (sigwait(&set, &sig) != 0)
                        break;
                if (sig == SIGHUP)
                        log_info("serve.sighup", "%s", "restart the service to reload");
        } while (sig == SIGHUP);
        log_info("serve.stopping", "signal=%d", sig);
        r = 0;
out:
        srv = http_server_stop(srv);
        in = intake_free(in);
        for (size_t i = 0; i < n_sinks; i++)
                dispatch_stop(sinks[i]);
        lock = store_close(lock);
        log_info("serve.stopped", "status=%s", r == 0 ? "ok" : "failed");
        return r == 0 ? 0 : 1;
}
