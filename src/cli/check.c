/*
 * `orderbridge check`: the configuration was loaded (every problem would have been
 * reported by then); say what it amounts to, and ask the Bitrix24 portal whether the
 * mapped stages exist.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "sinks/sink_bitrix24.h"

int cli_check(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
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
