/*
 * Roistat's configuration: [roistat], the status dictionary [roistat.statuses], the map
 * [roistat.map] from the site's order state to a status id and the map
 * [roistat.stage_map] from a Bitrix24 deal's stage to one. The engine (config/config.c)
 * reads them through roistat_conf_section; the sink and the pull export
 * (http/route_roistat_export.c) read them with roistat_conf_get(), which is NULL when
 * [roistat] is disabled. `push = no` keeps the section on for the export and only turns
 * the add-orders sink off (roistat_conf_pushes, the registry's `enabled` hook).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/statusmap.h"

struct snapshot;

struct roistat_status {
        char *id, *type, *name;
};

/* [roistat.fields] NAME = template, or a storefront's override in [roistat.site LID]. */
struct roistat_field_rule {
        char *site;  /* NULL: every order; else the order's lid */
        char *name;  /* the custom field's name in Roistat ("Менеджер") */
        char *tpl;   /* order template (model/order_template.h) */
        int line;
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
        bool push;                       /* send with add-orders (the sink is on) */
        char *export_login;              /* the pull export's `user` */
        char *export_password_file;
        char *export_password;           /* secret: token = md5(login . password) */
        struct roistat_status *statuses; /* sent with set-statuses, in this order */
        size_t n_statuses;
        bool statuses_configured;        /* the file has [roistat.statuses] lines */
        struct status_map map;
        struct status_map stage_map;     /* [roistat.stage_map]: Bitrix24 stage → status id,
                                          * for deals that did not come from the site */
        char *name_template;             /* a site order's name */
        struct roistat_field_rule *rules; /* [roistat.fields] and [roistat.site …] */
        size_t n_rules;
};

/* The name template for order `s`: its storefront's ([roistat.site LID] name_template),
 * else [roistat] name_template. */
const char *roistat_conf_name_template(const struct roistat_conf *conf,
                                       const struct snapshot *s);

extern const struct config_section roistat_conf_section;

/* The [roistat] settings of `cfg`, or NULL when [roistat] is disabled. */
const struct roistat_conf *roistat_conf_get(const struct config *cfg);

/* Whether the add-orders sink runs: [roistat] is enabled and `push` is on. */
bool roistat_conf_pushes(const struct config *cfg);

/* The status with this id, or NULL. */
const struct roistat_status *roistat_conf_status(const struct roistat_conf *conf,
                                                 const char *id);

struct snapshot;

/* The Roistat status id of an order, or NULL when nothing maps. A site order: [roistat.map]
 * (canceled first, then paid, then the status code). A deal read from Bitrix24
 * (snapshot.deal_id): [roistat.stage_map] for its stage (its `status`), else its stage's
 * semantics: failure (canceled) → the dictionary's first status of type canceled,
 * success (paid) → the first of type paid, anything else → the first of type progress. */
const char *roistat_conf_status_for(const struct roistat_conf *conf, const struct snapshot *s);

/* The status type a deal's stage semantics ask for when [roistat.stage_map] does not map
 * its stage: "canceled" (failure), "paid" (success) or "progress". */
const char *roistat_conf_deal_type(const struct snapshot *s);

/* `orderbridge check`: prints what the enabled [roistat] amounts to. Returns 0. */
int roistat_conf_report(const struct config *cfg);
