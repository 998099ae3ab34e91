/* `orderbridge stages`: the portal's deal pipelines and their stage ids. */
#include <stdio.h>

#include "cli/cli.h"
#include "sinks/sink_bitrix24.h"

int cli_stages(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        if (!cfg->b24_enabled) {
                fprintf(stderr, "orderbridge stages: [bitrix24] is not configured\n");
                return 1;
        }
        return b24_print_stages(cfg);
}
