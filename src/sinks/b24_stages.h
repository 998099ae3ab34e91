/* The portal's deal pipelines and stages, for `stages` and `check`; see b24_stages.c. */
#pragma once

#include "config/config.h"

/* `orderbridge stages`: print pipelines and stages; returns an exit status. */
int b24_print_stages(const struct config *cfg);

/* `orderbridge check`: every [bitrix24.map] stage exists in the configured pipeline.
 * Returns 0, 1 when a stage is missing (each one reported on stderr), or 2 when the
 * portal could not be asked. */
int b24_check_stages(const struct config *cfg);
