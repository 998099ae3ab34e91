/*
 * orderbridge: the verb table and the serve loop. Every verb reads the same
 * configuration file (-c FILE); secrets come only from the files it names or from the
 * environment, never from arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "config/config.h"
#include "queue/dispatch.h"
#include "http/server.h"
#include "http/ingest.h"
#include "base/log.h"
#include "sinks/sink_bitrix24.h"
#include "sinks/sink_roistat.h"

struct verb_opts {
        int json;
        const char *sink;
};

struct verb {
        const char *name, *args, *summary, *help;
        int (*run)(const struct config *cfg, const struct verb_opts *o, int argc, char **argv);
};

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

static int run_serve(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        struct dispatch *sinks[2] = {0};
        struct http_server *srv = NULL;
        struct ingest *in = NULL;
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
        log_info("serve.stopped", "status=%s", r == 0 ? "ok" : "failed");
        return r == 0 ? 0 : 1;
}

static int run_check(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        printf("%s: ok\n", cfg->path);
        printf("  listen %s, store %s, signing secret %s, admin token %s\n", cfg->listen,
               cfg->store_path, cfg->has_signing_key ? "loaded" : "MISSING (ingest will refuse)",
               cfg->admin_token ? "loaded" : "not set (GET /v1/orders/{id} disabled)");
        if (cfg->roistat_enabled) {
                printf("  roistat: project %s, batch %lld, %zu statuses, map:",
                       cfg->roistat_project, (long long)cfg->roistat_batch_size,
                       cfg->n_roistat_statuses);
                for (size_t i = 0; i < cfg->roistat_map.n; i++)
                        printf(" %s→%s", cfg->roistat_map.entries[i].key,
                               cfg->roistat_map.entries[i].value);
                printf("\n");
        } else {
                printf("  roistat: disabled\n");
        }
        if (cfg->b24_enabled) {
                int r;
                printf("  bitrix24: pipeline %lld, rate %lld/s burst %lld, map:",
                       (long long)cfg->b24_category_id, (long long)cfg->b24_rate,
                       (long long)cfg->b24_burst);
                for (size_t i = 0; i < cfg->b24_map.n; i++)
                        printf(" %s→%s", cfg->b24_map.entries[i].key,
                               cfg->b24_map.entries[i].value);
                printf("\n");
                fflush(stdout);
                r = b24_check_stages(cfg);
                if (r == 1)
                        return 1;
                printf(r == 0 ? "  bitrix24: every mapped stage exists in the portal\n"
                              : "  bitrix24: stages NOT verified (portal unreachable)\n");
        } else {
                printf("  bitrix24: disabled\n");
        }
        return 0;
}

static int run_stages(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        if (!cfg->b24_enabled) {
                fprintf(stderr, "orderbridge stages: [bitrix24] is not configured\n");
                return 1;
        }
        return b24_print_stages(cfg);
}

static int run_import(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        if (argc != 1) {
                fprintf(stderr, "orderbridge import: give exactly one FILE (JSON Lines)\n");
                return 2;
        }
        return cli_import(cfg, argv[0]);
}

static int run_status(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        if (argc > 1) {
                fprintf(stderr, "orderbridge status: at most one ORDER_ID\n");
                return 2;
        }
        return cli_status(cfg, argc == 1 ? argv[0] : NULL, o->json);
}

static int run_retry(const struct config *cfg, const struct verb_opts *o, int argc, char **argv)
{
        if (argc > 1) {
                fprintf(stderr, "orderbridge retry: at most one ORDER_ID\n");
                return 2;
        }
        return cli_retry(cfg, o->sink, argc == 1 ? argv[0] : NULL);
}

static const struct verb verbs[] = {
        {"serve", "", "run the daemon: accept orders, deliver them",
         "Accepts signed order snapshots on [server] listen and delivers them to the enabled\n"
         "sinks until SIGTERM or SIGINT. Logs go to stderr, one line per event.\n",
         run_serve},
        {"check", "", "validate the configuration and say what is wrong",
         "Reads the configuration and its secret files, reports every problem as\n"
         "FILE:LINE: [section] key: what is wrong, and exits 1 if there is any.\n",
         run_check},
        {"import", "FILE", "enqueue snapshots from a JSON Lines file (backfill)",
         "Reads one snapshot per line (the body of POST /v1/orders), validates each like\n"
         "ingest does, and stores the valid ones; a running daemon delivers them within\n"
         "[delivery] poll_interval_ms. Prints progress every second; exits 1 if any line\n"
         "was invalid (each is reported with its line number).\n",
         run_import},
        {"status", "[--json] [ORDER_ID]", "show the queue, or one order's history",
         "Without ORDER_ID: for each sink, how many orders are pending, in flight,\n"
         "retrying, waiting, delivered and dead. With ORDER_ID: its latest snapshot, the\n"
         "snapshots received, each sink's state, the attempts made and the last error.\n",
         run_status},
        {"stages", "", "list the Bitrix24 portal's deal pipelines and stages",
         "Asks the portal (crm.category.list, crm.status.list) for every deal pipeline and\n"
         "its stage ids, to write [bitrix24] category_id and [bitrix24.map].\n",
         run_stages},
        {"retry", "[--sink NAME] [ORDER_ID]", "send dead (or backing-off) deliveries again now",
         "Moves dead, retrying and waiting deliveries back to pending (all of them, or one\n"
         "sink's, or one order's), for example after fixing the configuration.\n",
         run_retry},
};

#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

static void usage(FILE *f)
{
        fprintf(f, "usage: orderbridge VERB -c FILE [ARGS]\n\n"
                   "orderbridge takes 1C-Bitrix orders (signed JSON snapshots) and keeps Roistat\n"
                   "(and Bitrix24) in step with them.\n\nverbs:\n");
        for (size_t i = 0; i < N_VERBS; i++)
                fprintf(f, "  %-8s %-26s %s\n", verbs[i].name, verbs[i].args, verbs[i].summary);
        fprintf(f, "\noptions:\n  -c, --config FILE   the configuration (INI)\n"
                   "  -h, --help          this text; `orderbridge VERB --help` for a verb\n"
                   "  --keys              list every configuration key with its default\n");
}

static void verb_usage(const struct verb *v, FILE *f)
{
        fprintf(f, "usage: orderbridge %s -c FILE %s\n\n%s\n%s", v->name, v->args, v->summary,
                v->help);
        fprintf(f, "\noptions:\n  -c, --config FILE   the configuration (INI)\n"
                   "  --json              (status) print JSON instead of text\n"
                   "  --sink NAME         (retry) only this sink's deliveries\n"
                   "  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"sink", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
        struct verb_opts vo = {0};
        const struct verb *v = NULL;
        const char *conf = NULL;
        struct config *cfg = NULL;
        char *errors = NULL;
        enum log_level lvl;
        int c, r;

        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--keys") == 0) {
                config_print_keys(stdout);
                return 0;
        }
        for (size_t i = 0; i < N_VERBS; i++)
                if (strcmp(argv[1], verbs[i].name) == 0)
                        v = &verbs[i];
        if (!v) {
                fprintf(stderr, "orderbridge: unknown verb \"%s\"\n\n", argv[1]);
                usage(stderr);
                return 2;
        }
        argc--;
        argv++;
        /* "+": stop at the first non-option, so ORDER_IDs are never taken for options */
        while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        conf = optarg;
                        break;
                case 'h':
                        verb_usage(v, stdout);
                        return 0;
                case 'j':
                        vo.json = 1;
                        break;
                case 's':
                        vo.sink = optarg;
                        break;
                default:
                        verb_usage(v, stderr);
                        return 2;
                }
        }
        if (!conf) {
                fprintf(stderr, "orderbridge %s: -c FILE is required\n", v->name);
                return 2;
        }
        r = config_load(conf, &cfg, &errors);
        if (r < 0) {
                fputs(errors ? errors : "configuration error\n", stderr);
                free(errors);
                return 1;
        }
        if (log_level_parse(cfg->log_level, &lvl) == 0)
                log_set_level(lvl);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = v->run(cfg, &vo, argc - optind, argv + optind);
        curl_global_cleanup();
        config_free(cfg);
        return r;
}
