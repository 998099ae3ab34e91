/*
 * Mapping rules for deals (issue #13): who is responsible (ASSIGNED_BY_ID), the source
 * (SOURCE_ID), the pipeline (CATEGORY_ID), the UTM fields, the order comment, and order
 * data into deal fields ([bitrix24.fields]: FIELD = template). Per storefront and per
 * person type: [bitrix24.site LID] and [bitrix24.person_type ID] override [bitrix24]'s
 * assigned_by_id, source_id and category_id, a person type over a site (a person type
 * belongs to one site in Bitrix, so it is the narrower rule). The rules' fields are
 * owned fields: sent on create and, when they change, on update (level-triggered); the
 * pipeline only on create (crm.deal.update ignores CATEGORY_ID: crm-deal-update.md).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"

struct snapshot;
struct b24_conf;

struct b24_scope {
        bool person_type;       /* [bitrix24.person_type ID], else [bitrix24.site LID] */
        char *match;            /* the LID or the person type id */
        int64_t category_id;    /* -1: not set here */
        int64_t assigned_by_id; /* -1: not set here */
        char *source_id;        /* NULL: not set here */
        int line_category, line_assigned, line_source;
};

struct b24_field_rule {
        char *field; /* deal field code, e.g. UF_CRM_DELIVERY_ADDR */
        char *tpl;   /* order template (model/order_template.h) */
        int line;
};

struct b24_rules {
        struct b24_scope *scopes;
        size_t n_scopes;
        struct b24_field_rule *fields;
        size_t n_fields;
};

/* What the rules give one order. */
struct b24_order_rules {
        int64_t category_id;
        int64_t assigned_by_id; /* 0: not sent (the portal's default, the webhook's user) */
        const char *source_id;  /* "": not sent */
};

void b24_rules_resolve(const struct b24_conf *conf, const struct snapshot *s,
                       struct b24_order_rules *ret);

/* Adds the rules' owned fields of `s` to `f` (ASSIGNED_BY_ID, SOURCE_ID, UTM_*, COMMENTS,
 * [bitrix24.fields]). false when a text is not UTF-8. */
bool b24_rules_owned_fields(const struct b24_conf *conf, const struct snapshot *s, json_t *f);

/* The config entry handlers of [bitrix24.fields], [bitrix24.site LID] and
 * [bitrix24.person_type ID]. */
void b24_rules_field_entry(struct config_parse *p, struct b24_rules *r, const char *subsection,
                           const char *key, const char *value, int line);
void b24_rules_scope_entry(struct config_parse *p, struct b24_rules *r, const char *subsection,
                           const char *key, const char *value, int line);

/* Fields the sink sets itself, which [bitrix24.fields] may not name. */
bool b24_rules_field_reserved(const struct b24_conf *conf, const char *field);

void b24_rules_clear(struct b24_rules *r);

/* `orderbridge check`: every deal field the rules write exists in the portal
 * (crm.deal.fields), is writable and takes text; each problem on stderr as
 * "FILE:LINE: [section] key: why". 0, 1 when one is wrong, 2 when the portal could not
 * be asked. */
int b24_rules_check_fields(const struct config *cfg);
