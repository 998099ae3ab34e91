/*
 * The sink kinds: the one table that names them (sinks/registry.c). Each row gives the
 * name (as the store, the logs and `--sink` spell it), the configuration section the
 * engine reads for it, the constructor `serve` calls for an enabled one, and optional
 * hooks for the verbs that a kind may take part in. Everything else — serve, ingest,
 * import, status, retry, check, stages and the configuration engine — iterates or looks
 * up this table, so a new sink is one file plus one row.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "sinks/sink.h"

/* The most sink kinds the table may hold; callers size their name arrays with it. */
#define SINK_KINDS_MAX 16

struct sink_kind {
        const char *name;
        const struct config_section *section;
        int (*create)(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);
        /* `orderbridge check`, for an enabled sink: prints one or more "  NAME: …" lines
         * about its settings and verifies what it can with the remote. Returns 0, or 1
         * when the configuration does not fit the remote. NULL: a "configured" line. */
        int (*check)(const struct config *cfg);
        /* `orderbridge stages`, for an enabled sink that has pipeline stages: prints them.
         * Returns an exit status. */
        int (*stages)(const struct config *cfg);
        /* Whether `cfg` enables this kind. NULL: when its section is present and on. A kind
         * that reads a section it does not own (the site sink reads the core's [site]) says
         * it itself. */
        bool (*enabled)(const struct config *cfg);
};

/* How many kinds the table holds, and the i-th (i < count). */
size_t sink_registry_count(void);
const struct sink_kind *sink_registry_get(size_t i);

/* The kind named `name`, or NULL. */
const struct sink_kind *sink_registry_find(const char *name);

/* Whether the configuration enables this kind (its section is present and on). */
bool sink_kind_enabled(const struct sink_kind *k, const struct config *cfg);

/* The names of the enabled kinds, in table order, at most `max`; returns how many. */
size_t sink_registry_enabled(const struct config *cfg, const char **ret_names, size_t max);

/* Every kind's name, ", "-separated, into buf (for "known sinks: …" messages). */
void sink_registry_names(char *buf, size_t size);
