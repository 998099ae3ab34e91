/*
 * `orderbridge serve`: the daemon. Starts one dispatcher per enabled sink, the ingest
 * committer and the HTTP front, then waits for SIGTERM/SIGINT and stops them in the
 * reverse order, so that whatever was acknowledged is committed before exit.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "http/ingest.h"
#include "http/server.h"
#include "queue/dispatch.h"
#include "sinks/sink_bitrix24.h"
#include "sinks/sink_roistat.h"
#include "store/store.h"

static bool roistat_on(const struct config *cfg)
{
        return cfg->roistat_enabled;
}

static bool bitrix24_on(const struct config *cfg)
{
        return cfg->b24_enabled;
}

/* The sinks, in the order config_sinks() names them. */
static const struct {
        const char *name;
        bool (*enabled)(const struct config *cfg);
        int (*make)(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);
} sink_kinds[] = {
        {"roistat", roistat_on, sink_roistat_new},
        {"bitrix24", bitrix24_on, sink_bitrix24_new},
};

int cli_serve(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        struct dispatch *sinks[2] = {0};
        struct http_server *srv = NULL;
        struct ingest *in = NULL;
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
        for (size_t i = 0; i < sizeof(sink_kinds) / sizeof(sink_kinds[0]); i++) {
                const struct sink_ops *ops;
                void *ctx;
                if (!sink_kinds[i].enabled(cfg))
                        continue;
                r = sink_kinds[i].make(cfg, &ops, &ctx);
                if (r == 0)
                        r = dispatch_start(cfg, ops, ctx, &sinks[n_sinks]);
                if (r < 0) {
                        log_err("serve.failed", "what=%s error=\"%s\"", sink_kinds[i].name,
                                strerror(-r));
                        goto out;
                }
                n_sinks++;
        }
        r = ingest_new(cfg, sinks, n_sinks, &in);
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
        for (size_t i = 0; i < n_sinks; i++)
                dispatch_stop(sinks[i]);
        in = ingest_free(in);
        lock = store_close(lock);
        log_info("serve.stopped", "status=%s", r == 0 ? "ok" : "failed");
        return r == 0 ? 0 : 1;
}
