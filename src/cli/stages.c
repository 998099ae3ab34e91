/* `orderbridge stages`: the deal pipelines and stage ids of each enabled sink that has
 * them (Bitrix24), to write its map. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sinks/registry.h"

int cli_stages(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        char wanted[256] = "";
        size_t len = 0;
        int ran = 0, r = 0;

        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                if (!k->stages)
                        continue;
                if (sink_kind_enabled(k, cfg)) {
                        ran = 1;
                        if (k->stages(cfg) != 0)
                                r = 1;
                } else if (len < sizeof(wanted)) {
                        len += (size_t)snprintf(wanted + len, sizeof(wanted) - len, "%s[%s]",
                                                len ? " or " : "", k->section->name);
                }
        }
        if (!ran) {
                fprintf(stderr, "orderbridge stages: %s is not configured\n",
                        wanted[0] ? wanted : "no sink with pipeline stages");
                return 1;
        }
        return r;
}
