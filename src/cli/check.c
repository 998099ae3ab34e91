/*
 * `orderbridge check`: the configuration was loaded (every problem would have been
 * reported by then); say what it amounts to, and let each enabled sink verify what it
 * can with its remote (the Bitrix24 portal is asked whether the mapped stages exist).
 */
#include <stdio.h>

#include "cli/cli.h"
#include "sinks/registry.h"

int cli_check(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        printf("%s: ok\n", cfg->path);
        printf("  listen %s, store %s, signing secret %s, admin token %s\n", cfg->listen,
               cfg->store_path, cfg->has_signing_key ? "loaded" : "MISSING (ingest will refuse)",
               cfg->admin_token ? "loaded" : "not set (GET /v1/orders/{id} disabled)");
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                if (!sink_kind_enabled(k, cfg))
                        printf("  %s: disabled\n", k->name);
                else if (!k->check)
                        printf("  %s: enabled\n", k->name);
                else if (k->check(cfg) != 0)
                        return 1;
        }
        return 0;
}
