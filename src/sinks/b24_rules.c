/*
 * The deal mapping rules (b24_rules.h): read from [bitrix24.fields], [bitrix24.site LID]
 * and [bitrix24.person_type ID], applied per order, and checked against the portal's
 * crm.deal.fields by `orderbridge check`. Templates are checked when the file is loaded,
 * so an order never meets an unknown placeholder.
 */
#include "sinks/b24_rules.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "model/order_template.h"
#include "model/snapshot.h"
#include "sinks/b24_client.h"
#include "sinks/bitrix24_conf.h"

#define FIELD_CODE_MAX 64
#define SCOPES_MAX 200
#define FIELDS_MAX 100

static const char *const utm_fields[SNAPSHOT_UTM_N] = {"UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN",
                                                       "UTM_CONTENT", "UTM_TERM"};

/* What the sink writes on its own account: the mapping may not take them over. */
static const char *const reserved[] = {"ID",
                                       "TITLE",
                                       "STAGE_ID",
                                       "CATEGORY_ID",
                                       "OPPORTUNITY",
                                       "CURRENCY_ID",
                                       "IS_MANUAL_OPPORTUNITY",
                                       "ORIGINATOR_ID",
                                       "ORIGIN_ID",
                                       "CONTACT_ID",
                                       "CONTACT_IDS",
                                       "COMPANY_ID",
                                       "ASSIGNED_BY_ID",
                                       "SOURCE_ID",
                                       "UTM_SOURCE",
                                       "UTM_MEDIUM",
                                       "UTM_CAMPAIGN",
                                       "UTM_CONTENT",
                                       "UTM_TERM",
                                       NULL};

bool b24_rules_field_reserved(const struct b24_conf *conf, const char *field)
{
        for (size_t i = 0; reserved[i]; i++)
                if (strcmp(reserved[i], field) == 0)
                        return true;
        if (conf->comment_to_deal && strcmp(field, "COMMENTS") == 0)
                return true;
        return conf->roistat_field && conf->roistat_field[0] &&
               strcmp(conf->roistat_field, field) == 0;
}

static bool field_code_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > FIELD_CODE_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

void b24_rules_field_entry(struct config_parse *p, struct b24_rules *r, const char *subsection,
                           const char *key, const char *value, int line)
{
        char why[600];

        if (!field_code_ok(key)) {
                config_error(p, line,
                             "[%s] %s: a deal field code is 1-%d capital letters, "
                             "digits and '_' (UF_CRM_…, or a standard field such as "
                             "SOURCE_DESCRIPTION)",
                             subsection, key, FIELD_CODE_MAX);
                return;
        }
        if (order_template_check(value, why, sizeof(why)) < 0) {
                config_error(p, line, "[%s] %s: %s", subsection, key, why);
                return;
        }
        for (size_t i = 0; i < r->n_fields; i++)
                if (strcmp(r->fields[i].field, key) == 0) {
                        config_error(p, line, "[%s] %s: set twice (first at line %d)", subsection,
                                     key, r->fields[i].line);
                        return;
                }
        if (r->n_fields >= FIELDS_MAX) {
                config_error(p, line, "[%s]: at most %d fields", subsection, FIELDS_MAX);
                return;
        }
        r->fields = xrealloc(r->fields, (r->n_fields + 1) * sizeof(*r->fields));
        r->fields[r->n_fields++] = (struct b24_field_rule){xstrdup(key), xstrdup(value), line};
}

/* The scope a "[bitrix24.site s2]" line belongs to, made on its first line. */
static struct b24_scope *scope_of(struct config_parse *p, struct b24_rules *r,
                                  const char *subsection, int line)
{
        const char *arg = strchr(subsection, ' ');
        bool person = strncmp(subsection, "bitrix24.person_type ", 21) == 0;

        arg = arg ? arg + 1 : "";
        if (!arg[0] || strlen(arg) > SNAPSHOT_CODE_MAX || !snapshot_id_chars(arg)) {
                config_error(p, line, "[%s]: %s must be 1-%d letters, digits, '-' or '_'",
                             subsection, person ? "the person type id" : "the site id (LID)",
                             SNAPSHOT_CODE_MAX);
                return NULL;
        }
        for (size_t i = 0; i < r->n_scopes; i++)
                if (r->scopes[i].person_type == person && strcmp(r->scopes[i].match, arg) == 0)
                        return &r->scopes[i];
        if (r->n_scopes >= SCOPES_MAX) {
                config_error(p, line, "[%s]: at most %d site and person type sections", subsection,
                             SCOPES_MAX);
                return NULL;
        }
        r->scopes = xrealloc(r->scopes, (r->n_scopes + 1) * sizeof(*r->scopes));
        r->scopes[r->n_scopes] = (struct b24_scope){
            .person_type = person, .match = xstrdup(arg), .category_id = -1, .assigned_by_id = -1};
        return &r->scopes[r->n_scopes++];
}

static int read_id(const char *v, int64_t max, int64_t *ret)
{
        char *end;
        long long n;

        if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 12)
                return -EINVAL;
        n = strtoll(v, &end, 10);
        if (n > max)
                return -EINVAL;
        *ret = n;
        return 0;
}

void b24_rules_scope_entry(struct config_parse *p, struct b24_rules *r, const char *subsection,
                           const char *key, const char *value, int line)
{
        struct b24_scope *sc = scope_of(p, r, subsection, line);

        if (!sc)
                return;
        if (strcmp(key, "category_id") == 0) {
                if (read_id(value, 1000000, &sc->category_id) < 0)
                        config_error(p, line,
                                     "[%s] category_id = %s: must be a pipeline id, "
                                     "0..1000000",
                                     subsection, value);
                sc->line_category = line;
        } else if (strcmp(key, "assigned_by_id") == 0) {
                if (read_id(value, INT32_MAX, &sc->assigned_by_id) < 0 || sc->assigned_by_id == 0)
                        config_error(p, line,
                                     "[%s] assigned_by_id = %s: must be a Bitrix24 "
                                     "user id (1 or more)",
                                     subsection, value);
                sc->line_assigned = line;
        } else if (strcmp(key, "source_id") == 0) {
                if (!config_id_like(value, 50))
                        config_error(p, line,
                                     "[%s] source_id: must be a source id such as "
                                     "STORE (crm.status SOURCE)",
                                     subsection);
                free(sc->source_id);
                sc->source_id = xstrdup(value);
                sc->line_source = line;
        } else {
                config_error(p, line,
                             "[%s] %s: unknown key (category_id, assigned_by_id, "
                             "source_id)",
                             subsection, key);
        }
}

void b24_rules_resolve(const struct b24_conf *conf, const struct snapshot *s,
                       struct b24_order_rules *ret)
{
        ret->category_id = conf->category_id;
        ret->assigned_by_id = conf->assigned_by_id;
        ret->source_id = conf->source_id ? conf->source_id : "";
        /* sites first, then person types: the narrower rule is applied last */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < conf->rules.n_scopes; i++) {
                        const struct b24_scope *sc = &conf->rules.scopes[i];
                        const char *have = sc->person_type ? s->person_type : s->lid;
                        if (sc->person_type != (pass == 1) || !have || strcmp(have, sc->match) != 0)
                                continue;
                        if (sc->category_id >= 0)
                                ret->category_id = sc->category_id;
                        if (sc->assigned_by_id > 0)
                                ret->assigned_by_id = sc->assigned_by_id;
                        if (sc->source_id)
                                ret->source_id = sc->source_id;
                }
}

static bool put(json_t *obj, const char *key, json_t *v)
{
        return v && json_object_set_new(obj, key, v) == 0;
}

bool b24_rules_owned_fields(const struct b24_conf *conf, const struct snapshot *s, json_t *f)
{
        struct b24_order_rules r;
        bool ok = true;

        b24_rules_resolve(conf, s, &r);
        if (r.assigned_by_id > 0)
                ok = put(f, "ASSIGNED_BY_ID", json_integer(r.assigned_by_id)) && ok;
        if (r.source_id[0])
                ok = put(f, "SOURCE_ID", json_string(r.source_id)) && ok;
        for (size_t i = 0; conf->utm && i < SNAPSHOT_UTM_N; i++)
                if (s->utm[i])
                        ok = put(f, utm_fields[i], json_string(s->utm[i])) && ok;
        if (conf->comment_to_deal && s->comment)
                ok = put(f, "COMMENTS", json_string(s->comment)) && ok;
        for (size_t i = 0; i < conf->rules.n_fields; i++) {
                char *v = order_template_expand(conf->rules.fields[i].tpl, s);
                ok = put(f, conf->rules.fields[i].field, json_string(v)) && ok;
                free(v);
        }
        return ok;
}

void b24_rules_clear(struct b24_rules *r)
{
        for (size_t i = 0; i < r->n_scopes; i++) {
                free(r->scopes[i].match);
                free(r->scopes[i].source_id);
        }
        free(r->scopes);
        for (size_t i = 0; i < r->n_fields; i++) {
                free(r->fields[i].field);
                free(r->fields[i].tpl);
        }
        free(r->fields);
        memset(r, 0, sizeof(*r));
}

/* Why the portal's description of `field` (crm.deal.fields) does not take a text, or
 * NULL. Only "string" takes any text: a url, an address, a list or a number would refuse
 * or garble some of them (crm-deal-fields.md; user field types:
 * crm-deal-user-defined-field-types.md). */
static const char *unfit(json_t *desc, char *buf, size_t size)
{
        const char *type = json_string_value(json_object_get(desc, "type"));

        if (json_is_true(json_object_get(desc, "isReadOnly")))
                return "the portal's field is read-only";
        if (json_is_true(json_object_get(desc, "isMultiple")))
                return "the portal's field is multiple (a list); a template gives one text";
        if (!type || strcmp(type, "string") != 0) {
                snprintf(buf, size, "the portal's field is of type %s, not string",
                         type ? type : "(none)");
                return buf;
        }
        return NULL;
}

int b24_rules_check_fields(const struct config *cfg)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct b24_client *c;
        struct b24_error err;
        json_t *doc = NULL, *all;
        char why[160];
        int r, bad = 0;

        if (conf->rules.n_fields == 0)
                return 0;
        c = b24_client_new(conf);
        if (!c)
                return 2;
        r = b24_call(c, "crm.deal.fields", json_object(), &doc, &err);
        b24_client_free(c);
        all = json_object_get(doc, "result");
        if (r != 0 || !json_is_object(all)) {
                fprintf(stderr,
                        "%s: could not ask the portal for its deal fields (%s: %s); "
                        "[bitrix24.fields] is not verified\n",
                        cfg->path, r != 0 ? err.code : "crm.deal.fields",
                        r != 0 ? err.description : "no result");
                json_decref(doc);
                return 2;
        }
        for (size_t i = 0; i < conf->rules.n_fields; i++) {
                const struct b24_field_rule *f = &conf->rules.fields[i];
                json_t *desc = json_object_get(all, f->field);
                const char *no = desc ? unfit(desc, why, sizeof(why))
                                      : "the portal has no such deal field (crm.deal.fields)";
                if (!no)
                        continue;
                fprintf(stderr, "%s:%d: [bitrix24.fields] %s: %s\n", cfg->path, f->line, f->field,
                        no);
                bad = 1;
        }
        json_decref(doc);
        return bad;
}
