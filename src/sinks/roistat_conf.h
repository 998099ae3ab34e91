/*
 * The Roistat sink's configuration: [roistat], the status dictionary [roistat.statuses]
 * and the map [roistat.map] from the site's order state to a status id. The engine
 * (config/config.c) reads them through roistat_conf_section; the sink reads them with
 * roistat_conf_get(), which is NULL when the sink is disabled.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/statusmap.h"

struct roistat_status {
        char *id, *type, *name;
};

struct roistat_conf {
        bool enabled;
        char *url;
        char *project;
        char *api_key_file;
        char *api_key;                   /* secret */
        int64_t batch_size;
        int64_t timeout_ms;
        int64_t rate;
        bool canceled_price_zero;
        struct roistat_status *statuses; /* sent with set-statuses, in this order */
        size_t n_statuses;
        bool statuses_configured;        /* the file has [roistat.statuses] lines */
        struct status_map map;
};

extern const struct config_section roistat_conf_section;

/* The [roistat] settings of `cfg`, or NULL when the sink is disabled. */
const struct roistat_conf *roistat_conf_get(const struct config *cfg);

/* The status with this id, or NULL. */
const struct roistat_status *roistat_conf_status(const struct roistat_conf *conf,
                                                 const char *id);

/* `orderbridge check`: prints what the enabled [roistat] amounts to. Returns 0. */
int roistat_conf_report(const struct config *cfg);
