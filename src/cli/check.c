/*
 * `orderbridge check`: the configuration was loaded (every problem in the file, each as
 * FILE:LINE: …, would have been reported by then, all at once); say what it amounts to,
 * and let every enabled sink verify what it can with its remote (the Bitrix24 portal is
 * asked whether the mapped stages exist), each reporting its own problems the same way.
 * "FILE: ok" is the last line, and only when nothing at all was wrong: a script or a
 * unit's ExecStartPre reads the exit status, a person reads the end.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "sinks/registry.h"
#include "store/store.h"

/* A PostgreSQL store is a server: reach it, log in, and see that its schema is one this
 * program knows (opening creates or brings the schema forward, as serve would). An SQLite
 * file is made by serve itself, and checked there. */
static int check_store(const struct config *cfg)
{
        struct store *st;

        if (!cfg->store_url)
                return 0;
        if (store_open(cfg->store_path, &st) < 0) {
                fprintf(stderr, "%s:%d: [store] url: %s\n", cfg->path,
                        config_line(cfg, "store", "url"), store_open_error());
                return -1;
        }
        printf("  store: reached, schema up to date\n");
        store_close(st);
        return 0;
}

int cli_check(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        int failed = 0;

        printf("%s: listen %s, store %s, signing secret %s, admin token %s\n", cfg->path,
               cfg->listen, cfg->store_path,
               cfg->has_signing_key ? "loaded" : "MISSING (ingest will refuse)",
               cfg->admin_token ? "loaded" : "not set (GET /v1/orders/{id} disabled)");
        if (check_store(cfg) < 0)
                failed++;
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                if (!sink_kind_enabled(k, cfg))
                        printf("  %s: disabled\n", k->name);
                else if (!k->check)
                        printf("  %s: enabled\n", k->name);
                else if (k->check(cfg) != 0)
                        failed++; /* reported; the other sinks are checked all the same */
        }
        fflush(stdout);
        if (failed) {
                fprintf(stderr, "%s: not ok (%d part%s refused, above)\n", cfg->path, failed,
                        failed == 1 ? "" : "s");
                return 1;
        }
        printf("%s: ok\n", cfg->path);
        return 0;
}
