/*
 * The Bitrix24 configuration: [bitrix24] and the map [bitrix24.map] from the site's
 * order state to a deal stage (the status code's stage; @canceled overrides it; @paid,
 * which has no default here, only moves a deal forward). One section for both
 * directions: the sink (orders → deals) and the source (deals → orderbridge: the
 * outgoing webhook's application token and the poll). The engine (config/config.c)
 * reads it through b24_conf_section; the sink and the source read it with
 * b24_conf_get(), which is NULL when the section is disabled.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/statusmap.h"
#include "sinks/b24_rules.h"

struct b24_conf {
        bool enabled;
        char *webhook_url_file;
        char *webhook_url;      /* secret: https://portal/rest/USER/CODE/ */
        int64_t category_id;
        char *roistat_field;
        int64_t rate, burst;
        int64_t timeout_ms;
        int64_t orders_per_batch;
        char *deal_title_prefix;
        char *country_code;
        char *application_token_file;
        char *application_token; /* secret: the outgoing webhook's auth[application_token] */
        int64_t poll_interval_s;  /* 0: no poll */
        int64_t assigned_by_id;   /* 0: not sent */
        char *source_id;          /* "": not sent */
        bool utm;                 /* order.utm → UTM_* */
        bool comment_to_deal;     /* order.comment → COMMENTS */
        char *delivery_row_name;  /* the product row of the delivery */
        struct status_map map;
        struct b24_rules rules;   /* [bitrix24.fields], [bitrix24.site …], [bitrix24.person_type …] */
};

extern const struct config_section b24_conf_section;

/* The [bitrix24] settings of `cfg`, or NULL when the sink is disabled. */
const struct b24_conf *b24_conf_get(const struct config *cfg);

struct b24_pipeline; /* b24_stages.h */

/* Whether the Bitrix24 source has work in this configuration: events (an application
 * token) or a poll. The portal's request rate is split between the sink and the source
 * only then (b24_client.h). */
bool b24_conf_source_active(const struct b24_conf *conf);

/* True when [bitrix24.map] sets @paid: only then does the stage depend on the pipeline's
 * SORT. */
bool b24_conf_needs_pipeline(const struct b24_conf *conf);

/* The deal stage for an order: @canceled when canceled; else the status code's stage;
 * when paid and @paid is set, the @paid stage if the status code's stage sorts before it
 * in `p` (or the status code has no entry). `p` may be NULL when
 * !b24_conf_needs_pipeline(conf); when it is needed and NULL, or a stage's SORT is
 * unknown, the status code's stage is used. A value without a prefix gets "C<category>:"
 * for a pipeline other than the default. Returns 0, or -ENOENT when nothing maps (`buf`
 * untouched). */
int b24_conf_stage(const struct b24_conf *conf, const struct b24_pipeline *p, const char *status,
                   bool canceled, bool paid, char *buf, size_t size);

/* The same in pipeline `category_id` (a storefront's or a person type's, b24_rules.h). */
int b24_conf_stage_in(const struct b24_conf *conf, int64_t category_id,
                      const struct b24_pipeline *p, const char *status, bool canceled, bool paid,
                      char *buf, size_t size);

struct snapshot;

/* The stage of the order `s` in the pipeline its rules give it. */
int b24_conf_order_stage(const struct b24_conf *conf, const struct b24_pipeline *p,
                         const struct snapshot *s, char *buf, size_t size);

/* `orderbridge check`: prints what the enabled [bitrix24] amounts to and asks the portal
 * whether every mapped stage exists. Returns 0, or 1 when a stage is missing (an
 * unreachable portal is said, not failed). */
int b24_conf_report(const struct config *cfg);
