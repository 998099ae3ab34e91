/*
 * orderbridge: the verb table (each verb lives in cli/VERB.c). Every verb reads the same
 * configuration file (-c FILE); secrets come only from the files it names or from the
 * environment, never from arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "config/config.h"
#include "sinks/registry.h"

struct verb {
        const char *name, *args, *summary, *help;
        const char *takes; /* the options of its own, by their letters in `options` below */
        int (*run)(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
};

/* The options a verb may take beyond -c and -h, each with its line of help. */
static const struct {
        int letter;
        const char *help;
} options[] = {
        {'j', "  --json              print JSON instead of text\n"},
        {'s', "  --sink NAME         only this sink's deliveries\n"},
        {'d', "  --dead              list the dead letters (newest first): order, sink,\n"
              "                      attempts, when, and the last error in the remote's words\n"},
        {'l', "  --limit N           with --dead: at most N of them (1..10000, default 50)\n"},
        {'r', "  --repair            ask the sinks to deliver again what differs (the running\n"
              "                      daemon does it within its poll interval)\n"},
        {'S', "  --since DATE        orders changed since DATE: 2026-03-01 (UTC midnight) or\n"
              "                      2026-03-01T10:00:00+03:00 (default: 30 days ago)\n"},
        {'F', "  --from PATH         copy the SQLite store at PATH into the configured store\n"
              "                      (which must hold no order), the queue as it stands\n"},
};

static const struct verb verbs[] = {
        {"serve", "", "run the daemon: accept orders, deliver them",
         "Accepts signed order snapshots on [server] listen and delivers them to the enabled\n"
         "sinks until SIGTERM or SIGINT. Logs go to stderr, one line per event.\n",
         "", cli_serve},
        {"check", "", "validate the configuration and say what is wrong",
         "Reads the configuration and its secret files, reports every problem as\n"
         "FILE:LINE: [section] key: what is wrong, and exits 1 if there is any.\n",
         "", cli_check},
        {"import", "FILE", "enqueue snapshots from a JSON Lines file (backfill)",
         "Reads one snapshot per line (the body of POST /v1/orders), validates each like\n"
         "ingest does, and stores the valid ones; a running daemon delivers them within\n"
         "[delivery] poll_interval_ms. Prints progress every second; exits 1 if any line\n"
         "was invalid (each is reported with its line number).\n",
         "", cli_import},
        {"status", "[--json] [--sink NAME] [--dead [--limit N]] [ORDER_ID]",
         "show the queue, the dead letters, or one order's history",
         "Without ORDER_ID: for each sink (or only the one --sink NAME names), how many\n"
         "orders are pending, in flight, retrying, waiting, delivered and dead, how long\n"
         "the oldest owed one has waited, and a sink that the running daemon has paused\n"
         "(why, since and until when). With --dead: the dead letters instead. With\n"
         "ORDER_ID: its latest snapshot, the snapshots received, each sink's state, the\n"
         "attempts made and the last error.\n",
         "jsdl", cli_status},
        {"stages", "", "list the Bitrix24 portal's deal pipelines and stages",
         "Asks the portal (crm.category.list, crm.status.list) for every deal pipeline and\n"
         "its stage ids, to write [bitrix24] category_id and [bitrix24.map].\n",
         "", cli_stages},
        {"retry", "[--sink NAME] [ORDER_ID]", "send dead (or backing-off) deliveries again now",
         "Moves dead, retrying and waiting deliveries back to pending (all of them, or one\n"
         "sink's, or one order's), for example after fixing the configuration.\n",
         "s", cli_retry},
        {"reconcile", "[--repair] [--since DATE]",
         "compare Roistat and Bitrix24 with the store, order by order",
         "Reads back the orders changed since DATE and delivered (Roistat's order/list, the\n"
         "site's deals and their rows in Bitrix24) and prints every difference from what\n"
         "orderbridge sent: ORDER SINK FIELD STORE REMOTE, then checked=N drift=M\n"
         "not_delivered=K. Orders not yet delivered are listed apart, not as drift. With\n"
         "--repair, each order that drifted is delivered again; a duplicate deal is left\n"
         "to be merged by hand. Exits 0 without drift, 1 with drift, 2 when a remote or\n"
         "the store could not be read.\n",
         "rSj", cli_reconcile},
        {"migrate", "[--from PATH]", "create or upgrade the store's schema; move a store",
         "Opens the configured store and brings its schema to this version (serve does the\n"
         "same at start; with PostgreSQL, several servers starting at once are safe). With\n"
         "--from PATH, copies the SQLite store at PATH into the configured store (which\n"
         "must hold no order): orders, history, every delivery in its state, attempts,\n"
         "dead letters, links. Stop the server of PATH first. Prints progress, then each\n"
         "sink's queue on both sides; exits 1 unless they match.\n",
         "F", cli_migrate},
};

#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))
#define LIMIT_MAX 10000

static int parse_limit(const char *text, int *ret)
{
        char *end;
        long n;

        errno = 0;
        n = strtol(text, &end, 10);
        if (errno || end == text || *end || n < 1 || n > LIMIT_MAX)
                return -EINVAL;
        *ret = (int)n;
        return 0;
}

static int count_lines(const char *text)
{
        int n = 0;

        for (; text && *text; text++)
                n += *text == '\n';
        return n;
}

/* "unknown sink foo (configured: roistat, bitrix24)", with every kind there is when it
 * is not among the configured ones (a disabled kind may still hold work in the store). */
static void unknown_sink(const struct verb *v, const struct config *cfg, const char *sink)
{
        const char *on[SINK_KINDS_MAX];
        size_t n = sink_registry_enabled(cfg, on, SINK_KINDS_MAX);
        char all[256];

        fprintf(stderr, "orderbridge %s: unknown sink %s (configured: ", v->name, sink);
        for (size_t i = 0; i < n; i++)
                fprintf(stderr, "%s%s", i ? ", " : "", on[i]);
        sink_registry_names(all, sizeof(all));
        fprintf(stderr, "%s; every kind: %s)\n", n ? "" : "none", all);
}

static void usage(FILE *f)
{
        fprintf(f, "usage: orderbridge VERB -c FILE [ARGS]\n\n"
                   "orderbridge takes 1C-Bitrix orders (signed JSON snapshots) and keeps Roistat\n"
                   "(and Bitrix24) in step with them.\n\nverbs:\n");
        for (size_t i = 0; i < N_VERBS; i++)
                fprintf(f, "  %-9s %-26s %s\n", verbs[i].name, verbs[i].args, verbs[i].summary);
        fprintf(f, "\noptions:\n  -c, --config FILE   the configuration (INI)\n"
                   "  -h, --help          this text; `orderbridge VERB --help` for a verb\n"
                   "  --keys              list every configuration key with its default\n"
                   "  --version           print the version (also `orderbridge version`)\n");
}

static void verb_usage(const struct verb *v, FILE *f)
{
        fprintf(f, "usage: orderbridge %s -c FILE %s\n\n%s\n%s", v->name, v->args, v->summary,
                v->help);
        fprintf(f, "\noptions:\n  -c, --config FILE   the configuration (INI)\n");
        for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
                if (strchr(v->takes, options[i].letter))
                        fputs(options[i].help, f);
        fprintf(f, "  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"sink", required_argument, NULL, 's'},
                                             {"repair", no_argument, NULL, 'r'},
                                             {"since", required_argument, NULL, 'S'},
                                             {"dead", no_argument, NULL, 'd'},
                                             {"limit", required_argument, NULL, 'l'},
                                             {"from", required_argument, NULL, 'F'},
                                             {NULL, 0, NULL, 0}};
        struct cli_opts vo = {0};
        const struct verb *v = NULL;
        const char *conf = NULL;
        struct config *cfg = NULL;
        char *errors = NULL;
        enum log_level lvl;
        int c, r;

        json_alloc_init(); /* jansson aborts on OOM like every other allocation */
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                printf("orderbridge %s\n", ORDERBRIDGE_VERSION);
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
                if (c != 'c' && c != 'h' && c != '?' && c != ':' && !strchr(v->takes, c)) {
                        const char *name = "?";
                        for (size_t i = 0; opts[i].name; i++)
                                if (opts[i].val == c)
                                        name = opts[i].name;
                        fprintf(stderr, "orderbridge %s: --%s is not an option of %s\n\n",
                                v->name, name, v->name);
                        verb_usage(v, stderr);
                        return 2;
                }
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
                case 'r':
                        vo.repair = 1;
                        break;
                case 'S':
                        vo.since = optarg;
                        break;
                case 'd':
                        vo.dead = 1;
                        break;
                case 'F':
                        vo.from = optarg;
                        break;
                case 'l':
                        if (parse_limit(optarg, &vo.limit) < 0) {
                                fprintf(stderr, "orderbridge %s: --limit %s: must be an integer "
                                        "from 1 to %d\n", v->name, optarg, LIMIT_MAX);
                                return 2;
                        }
                        break;
                default:
                        verb_usage(v, stderr);
                        return 2;
                }
        }
        if (vo.limit && !vo.dead) {
                fprintf(stderr, "orderbridge %s: --limit goes with --dead\n", v->name);
                return 2;
        }
        if (!conf) {
                fprintf(stderr, "orderbridge %s: -c FILE is required\n", v->name);
                return 2;
        }
        r = config_load(conf, &cfg, &errors);
        if (r < 0) {
                fputs(errors ? errors : "configuration error\n", stderr);
                if (v->run == cli_check)
                        fprintf(stderr, "%s: not ok (%d problem%s, above)\n", conf,
                                count_lines(errors), count_lines(errors) == 1 ? "" : "s");
                free(errors);
                return 1;
        }
        /* before the store is opened: a typo must not touch it */
        if (vo.sink && !sink_registry_find(vo.sink)) {
                unknown_sink(v, cfg, vo.sink);
                config_free(cfg);
                return 2;
        }
        if (log_level_parse(cfg->log_level, &lvl) == 0)
                log_set_level(lvl);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = v->run(cfg, &vo, argc - optind, argv + optind);
        curl_global_cleanup();
        config_free(cfg);
        return r;
}
