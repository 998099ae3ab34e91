/*
 * The table of the daemon's sources: the only place one is named. `serve` starts every
 * source whose configuration section is present (after the intake, before the HTTP
 * server) and stops them first at SIGTERM; the configuration engine reads their sections
 * from here, as it reads the sinks'. Today's one row is the Bitrix24 source (deals, from
 * the outgoing webhook's ids and the poll); the HTTP ingest is a route
 * (http/route_orders.c), and `import` runs the file source itself. The MySQL b_sale_*
 * poller is one file plus one row here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "sources/source.h"

struct source_kind {
        const char *name;
        const struct config_section *section; /* its settings (required); absent = off */
        int (*create)(const struct config *cfg, struct source **ret);
};

size_t source_registry_count(void);
const struct source_kind *source_registry_get(size_t i);

/* Whether the configuration enables this kind (its section is present and on). */
bool source_kind_enabled(const struct source_kind *k, const struct config *cfg);
