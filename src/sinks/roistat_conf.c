/*
 * [roistat], [roistat.statuses], [roistat.map] and [roistat.stage_map]: keys, defaults
 * (design.md's table) and checks. A configured status list replaces the defaults, because
 * set-statuses replaces Roistat's whole list; map lines merge over the default map; the
 * stage map has no defaults (a deal's stage semantics decide). Every map value must be a
 * status of the dictionary. Pushing needs the project and API key; the pull export needs
 * its login and password, both or neither, and `push = no` needs the export.
 */
#include "sinks/roistat_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "model/order_template.h"
#include "model/snapshot.h"

#define R(f) offsetof(struct roistat_conf, f)
#define N(a) (sizeof(a) / sizeof(a[0]))

static const struct config_key keys[] = {
        {"enabled", CONFIG_BOOL, R(enabled), "yes", 0, 0,
         "use Roistat: push orders and/or answer its pull export (off when the section is "
         "absent)"},
        {"url", CONFIG_STRING, R(url), "https://cloud.roistat.com/api/v1", 0, 0,
         "API base URL; https unless the host is loopback"},
        {"project", CONFIG_STRING, R(project), NULL, 0, 0, "project number"},
        {"api_key_file", CONFIG_STRING, R(api_key_file), NULL, 0, 0,
         "file holding the API key (env ORDERBRIDGE_ROISTAT_API_KEY)"},
        {"batch_size", CONFIG_INT, R(batch_size), "100", 1, 1000,
         "orders per add-orders request"},
        {"timeout_ms", CONFIG_INT, R(timeout_ms), "15000", 100, 300000, "whole-request timeout"},
        {"rate", CONFIG_INT, R(rate), "10", 1, 1000,
         "requests per second (Roistat allows 10 per project)"},
        {"canceled_price_zero", CONFIG_BOOL, R(canceled_price_zero), "yes", 0, 0,
         "send price 0 for a cancelled order"},
        {"push", CONFIG_BOOL, R(push), "yes", 0, 0,
         "send orders with add-orders (no: only answer the pull export)"},
        {"export_login", CONFIG_STRING, R(export_login), NULL, 0, 0,
         "login of Roistat's CMS integration (its `user`) for GET /v1/roistat/export"},
        {"export_password_file", CONFIG_STRING, R(export_password_file), NULL, 0, 0,
         "file holding that integration's password (env ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD)"},
        {"name_template", CONFIG_STRING, R(name_template), "Order {account_number}", 0, 0,
         "a site order's name in Roistat, an order template ([bitrix24.fields] lists the "
         "placeholders; an unknown one is refused); [roistat.site LID] may override it"},
};

#undef R

static const char *const default_statuses[][3] = {
        {"new", "progress", "New"},
        {"confirmed", "paid", "Confirmed"},
        {"canceled", "canceled", "Canceled"},
};

static const char *const default_map[][2] = {
        {"@canceled", "canceled"}, {"@paid", "confirmed"}, {"N", "new"},      {"P", "new"},
        {"A", "confirmed"},        {"D", "confirmed"},     {"F", "confirmed"}, {"C", "canceled"},
};

static void statuses_clear(struct roistat_conf *rc)
{
        for (size_t i = 0; i < rc->n_statuses; i++) {
                free(rc->statuses[i].id);
                free(rc->statuses[i].type);
                free(rc->statuses[i].name);
        }
        free(rc->statuses);
        rc->statuses = NULL;
        rc->n_statuses = 0;
}

static void status_add(struct roistat_conf *rc, const char *id, const char *type,
                       const char *name)
{
        rc->statuses = xrealloc(rc->statuses, (rc->n_statuses + 1) * sizeof(*rc->statuses));
        rc->statuses[rc->n_statuses++] =
                (struct roistat_status){xstrdup(id), xstrdup(type), xstrdup(name)};
}

const struct roistat_status *roistat_conf_status(const struct roistat_conf *conf,
                                                 const char *id)
{
        for (size_t i = 0; i < conf->n_statuses; i++)
                if (strcmp(conf->statuses[i].id, id) == 0)
                        return &conf->statuses[i];
        return NULL;
}

static const char *first_of_type(const struct roistat_conf *conf, const char *type)
{
        for (size_t i = 0; i < conf->n_statuses; i++)
                if (strcmp(conf->statuses[i].type, type) == 0)
                        return conf->statuses[i].id;
        return NULL;
}

const char *roistat_conf_deal_type(const struct snapshot *s)
{
        return s->canceled ? "canceled" : s->paid ? "paid" : "progress";
}

const char *roistat_conf_status_for(const struct roistat_conf *conf, const struct snapshot *s)
{
        const char *status;

        if (!s->deal_id)
                return status_map_lookup(&conf->map, s->status, s->canceled, s->paid);
        status = status_map_lookup(&conf->stage_map, s->status, false, false);
        if (status)
                return status;
        return first_of_type(conf, roistat_conf_deal_type(s));
}

static void defaults(void *conf)
{
        struct roistat_conf *rc = conf;

        for (size_t i = 0; i < N(default_statuses); i++)
                status_add(rc, default_statuses[i][0], default_statuses[i][1],
                           default_statuses[i][2]);
        for (size_t i = 0; i < N(default_map); i++)
                status_map_set(&rc->map, default_map[i][0], default_map[i][1], 0);
}

/* "status_id = type, name" in [roistat.statuses] */
static void status_entry(struct config_parse *p, void *conf, const char *subsection,
                         const char *id, const char *value, int line)
{
        struct roistat_conf *rc = conf;
        const char *comma = strchr(value, ',');
        char type[32];
        const char *name;
        size_t tlen;

        if (!rc->statuses_configured) {
                /* set-statuses replaces Roistat's whole list, so a configured list replaces
                 * the defaults rather than merging with them */
                statuses_clear(rc);
                rc->statuses_configured = true;
        }
        if (!config_id_like(id, 64)) {
                config_error(p, line, "[%s] %s: a status id may contain only letters, digits, "
                             "'-' and '_'", subsection, id);
                return;
        }
        tlen = comma ? (size_t)(comma - value) : strlen(value);
        while (tlen > 0 && value[tlen - 1] == ' ')
                tlen--;
        if (tlen >= sizeof(type))
                tlen = sizeof(type) - 1;
        memcpy(type, value, tlen);
        type[tlen] = '\0';
        if (strcmp(type, "progress") && strcmp(type, "paid") && strcmp(type, "canceled") &&
            strcmp(type, "unused")) {
                config_error(p, line,
                             "[%s] %s: type must be progress, paid, canceled or unused (as in "
                             "\"%s = progress, New\")", subsection, id, id);
                return;
        }
        name = comma ? comma + 1 : id;
        while (*name == ' ')
                name++;
        if (!*name || strlen(name) > 128) {
                config_error(p, line, "[%s] %s: the name must be 1-128 bytes", subsection, id);
                return;
        }
        if (roistat_conf_status(rc, id)) {
                config_error(p, line, "[%s] %s: defined twice", subsection, id);
                return;
        }
        status_add(rc, id, type, name);
}

static void map_entry(struct config_parse *p, void *conf, const char *subsection,
                      const char *key, const char *value, int line)
{
        struct roistat_conf *rc = conf;

        config_map_entry(p, &rc->map, subsection, key, value, line);
}

/* "STAGE_ID = status_id" in [roistat.stage_map]: a Bitrix24 stage id (with its pipeline's
 * "C<id>:" prefix, as `orderbridge stages` lists them) to a status of the dictionary. */
static void stage_entry(struct config_parse *p, void *conf, const char *subsection,
                        const char *key, const char *value, int line)
{
        struct roistat_conf *rc = conf;

        /* 50: the longest stage id a deal snapshot carries (snapshot.c, order.status) */
        if (!config_id_like(key, 50) || strchr(key, '@'))
                config_error(p, line,
                             "[%s] %s: the key must be a Bitrix24 stage id, as NEW or C1:WON "
                             "(`orderbridge stages` lists them)",
                             subsection, key);
        else if (!config_id_like(value, 64))
                config_error(p, line, "[%s] %s: \"%s\" is not a status id", subsection, key,
                             value);
        else if (status_map_lookup(&rc->stage_map, key, false, false))
                config_error(p, line, "[%s] %s: mapped twice", subsection, key);
        else
                status_map_set(&rc->stage_map, key, value, line);
}

/* Each value of `m` is a status of the dictionary; an error at the line of each that is
 * not. */
static void check_map(struct config_parse *p, const struct roistat_conf *rc,
                      const struct status_map *m, const char *subsection)
{
        for (size_t i = 0; i < m->n; i++)
                if (!roistat_conf_status(rc, m->entries[i].value))
                        config_error(p, m->entries[i].line,
                                     "[%s] %s = %s: no such status in [roistat.statuses]",
                                     subsection, m->entries[i].key, m->entries[i].value);
}

/* The login Roistat sends as `user`: it is compared as it comes, so no control
 * characters, and bounded. */
static bool login_ok(const char *login)
{
        size_t n = strlen(login);

        if (n == 0 || n > 128)
                return false;
        for (; *login; login++)
                if ((unsigned char)*login < 0x20 || *login == 0x7f)
                        return false;
        return true;
}

/* The pull export: login and password, both or neither; `push = no` needs them. */
static void check_export(struct config_parse *p, struct roistat_conf *rc, int header)
{
        int login_line = config_key_line(p, "roistat", "export_login");
        int r = config_read_secret(p, "roistat", "export_password_file",
                                   rc->export_password_file,
                                   "ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD", &rc->export_password);

        if (rc->export_login && !login_ok(rc->export_login))
                config_error(p, login_line, "[roistat] export_login: must be 1-128 bytes "
                             "without control characters");
        if (rc->export_login && r == 0)
                config_error(p, login_line,
                             "[roistat] export_password_file: required with export_login (or "
                             "set ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD)");
        if (!rc->export_login && r > 0)
                config_error(p, header,
                             "[roistat] export_login: required when the export's password is "
                             "set (export_password_file or ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD)");
        if (!rc->push && !rc->export_login)
                config_error(p, config_key_line(p, "roistat", "push"),
                             "[roistat] push = no: nothing is left on without the pull export "
                             "(set export_login and export_password_file, or enabled = no)");
}

static void check(struct config_parse *p, const struct config *cfg, void *conf)
{
        struct roistat_conf *rc = conf;
        int header = config_section_line(p, "roistat");
        char why[600];
        int r;

        if (order_template_check(rc->name_template, why, sizeof(why)) < 0)
                config_error(p, config_key_line(p, "roistat", "name_template"),
                             "[roistat] name_template: %s", why);

        config_check_url(p, "roistat", "url", rc->url);
        check_export(p, rc, header);
        if (rc->n_statuses == 0)
                config_error(p, header, "[roistat.statuses]: at least one status is required");
        check_map(p, rc, &rc->map, "roistat.map");
        check_map(p, rc, &rc->stage_map, "roistat.stage_map");
        if (!rc->push)
                return; /* export only: no project, no API key */
        if (!rc->project)
                config_error(p, header, "[roistat] project: required when Roistat is enabled");
        else if (strspn(rc->project, "0123456789") != strlen(rc->project) ||
                 strlen(rc->project) > 12)
                config_error(p, config_key_line(p, "roistat", "project"),
                             "[roistat] project: must be the project number");
        r = config_read_secret(p, "roistat", "api_key_file", rc->api_key_file,
                               "ORDERBRIDGE_ROISTAT_API_KEY", &rc->api_key);
        if (r == 0)
                config_error(p, header, "[roistat] api_key_file: required when Roistat is "
                             "enabled (or set ORDERBRIDGE_ROISTAT_API_KEY)");
        else if (r > 0 && strpbrk(rc->api_key, " \t\r\n"))
                config_error(p, config_key_line(p, "roistat", "api_key_file"),
                             "[roistat] api_key_file: the key must not contain spaces");
}

static void conf_free(void *conf)
{
        struct roistat_conf *rc = conf;

        if (rc->api_key)
                explicit_bzero(rc->api_key, strlen(rc->api_key));
        free(rc->api_key);
        if (rc->export_password)
                explicit_bzero(rc->export_password, strlen(rc->export_password));
        free(rc->export_password);
        statuses_clear(rc);
        status_map_clear(&rc->map);
        status_map_clear(&rc->stage_map);
        for (size_t i = 0; i < rc->n_rules; i++) {
                free(rc->rules[i].site);
                free(rc->rules[i].name);
                free(rc->rules[i].tpl);
        }
        free(rc->rules);
}

#define ROISTAT_RULES_MAX 500
#define ROISTAT_FIELD_NAME_MAX 100

/* A field rule, or a storefront's name template (name NULL). */
static void rule_add(struct config_parse *p, struct roistat_conf *rc, const char *subsection,
                     const char *site, const char *name, const char *tpl, int line)
{
        char why[600];

        if (order_template_check(tpl, why, sizeof(why)) < 0) {
                config_error(p, line, "[%s] %s: %s", subsection, name ? name : "name_template",
                             why);
                return;
        }
        if (name && (!name[0] || strlen(name) > ROISTAT_FIELD_NAME_MAX)) {
                config_error(p, line, "[%s] %s: a field name is 1-%d bytes", subsection, name,
                             ROISTAT_FIELD_NAME_MAX);
                return;
        }
        for (size_t i = 0; i < rc->n_rules; i++) {
                const struct roistat_field_rule *r = &rc->rules[i];
                if ((r->site == NULL) == (site == NULL) && (!site || strcmp(r->site, site) == 0) &&
                    (r->name == NULL) == (name == NULL) && (!name || strcmp(r->name, name) == 0)) {
                        config_error(p, line, "[%s] %s: set twice (first at line %d)",
                                     subsection, name ? name : "name_template", r->line);
                        return;
                }
        }
        if (rc->n_rules >= ROISTAT_RULES_MAX) {
                config_error(p, line, "[%s]: at most %d fields in all", subsection,
                             ROISTAT_RULES_MAX);
                return;
        }
        rc->rules = xrealloc(rc->rules, (rc->n_rules + 1) * sizeof(*rc->rules));
        rc->rules[rc->n_rules++] = (struct roistat_field_rule){
                site ? xstrdup(site) : NULL, name ? xstrdup(name) : NULL, xstrdup(tpl), line};
}

/* "Менеджер = {property:MANAGER}" in [roistat.fields] */
static void fields_entry(struct config_parse *p, void *conf, const char *subsection,
                         const char *key, const char *value, int line)
{
        rule_add(p, conf, subsection, NULL, key, value, line);
}

/* [roistat.site s2]: name_template, or a field of that storefront's orders */
static void site_entry(struct config_parse *p, void *conf, const char *subsection,
                       const char *key, const char *value, int line)
{
        const char *lid = strchr(subsection, ' ');

        lid = lid ? lid + 1 : "";
        if (!lid[0] || strlen(lid) > SNAPSHOT_CODE_MAX || !snapshot_id_chars(lid)) {
                config_error(p, line, "[%s]: the site id (LID) must be 1-%d letters, digits, "
                             "'-' or '_'", subsection, SNAPSHOT_CODE_MAX);
                return;
        }
        rule_add(p, conf, subsection, lid, strcmp(key, "name_template") == 0 ? NULL : key, value,
                 line);
}

const char *roistat_conf_name_template(const struct roistat_conf *conf,
                                       const struct snapshot *s)
{
        for (size_t i = 0; s->lid && i < conf->n_rules; i++)
                if (!conf->rules[i].name && strcmp(conf->rules[i].site, s->lid) == 0)
                        return conf->rules[i].tpl;
        return conf->name_template;
}

static const struct config_subsection subsections[] = {
        {"roistat.statuses", status_entry,
         "\n[roistat.statuses]\n  <status_id> = <progress|paid|canceled|unused>, <name>\n"
         "  (replaces the defaults: new = progress, New; confirmed = paid, Confirmed; "
         "canceled = canceled, Canceled)\n"},
        {"roistat.map", map_entry,
         "\n[roistat.map]\n  <site status code | @canceled | @paid> = <status_id>\n"
         "  (merged over the defaults: @canceled=canceled @paid=confirmed N=new P=new "
         "A=confirmed D=confirmed F=confirmed C=canceled)\n"},
        {"roistat.stage_map", stage_entry,
         "\n[roistat.stage_map]\n  <Bitrix24 stage id, as NEW or C1:WON> = <status_id>\n"
         "  (for deals made in Bitrix24, not on the site; an unmapped stage goes by its "
         "semantics:\n  success → the first status of type paid, failure → the first of type "
         "canceled,\n  any other → the first of type progress)\n"},
        {"roistat.fields", fields_entry,
         "\n[roistat.fields]\n  <field name> = <template>\n"
         "  (a custom field of every site order, e.g. Менеджер = {property:MANAGER}, or a "
         "fixed text;\n   the placeholders of [bitrix24.fields]; a value is cut to 1000 "
         "characters, Roistat's limit;\n   a name the order's own fields use (site, "
         "DELIVERY_NAME, …) is replaced)\n"},
        {"roistat.site *", site_entry,
         "\n[roistat.site <LID>]\n  name_template = <template>\n  <field name> = "
         "<template>\n"
         "  (for orders of that storefront (order.lid): its name, and fields over "
         "[roistat.fields])\n"},
};

const struct config_section roistat_conf_section = {
        .name = "roistat",
        .keys = keys,
        .n_keys = N(keys),
        .size = sizeof(struct roistat_conf),
        .optional = true,
        .subsections = subsections,
        .n_subsections = N(subsections),
        .defaults = defaults,
        .check = check,
        .free = conf_free,
};

const struct roistat_conf *roistat_conf_get(const struct config *cfg)
{
        return config_section(cfg, roistat_conf_section.name);
}

bool roistat_conf_pushes(const struct config *cfg)
{
        const struct roistat_conf *rc = roistat_conf_get(cfg);

        return rc && rc->push;
}

int roistat_conf_report(const struct config *cfg)
{
        const struct roistat_conf *rc = roistat_conf_get(cfg);

        printf("  roistat: project %s, batch %lld, %zu statuses, map:", rc->project,
               (long long)rc->batch_size, rc->n_statuses);
        for (size_t i = 0; i < rc->map.n; i++)
                printf(" %s→%s", rc->map.entries[i].key, rc->map.entries[i].value);
        printf(", stage map:%s", rc->stage_map.n ? "" : " none (by stage semantics)");
        for (size_t i = 0; i < rc->stage_map.n; i++)
                printf(" %s→%s", rc->stage_map.entries[i].key, rc->stage_map.entries[i].value);
        printf(", pull export %s\n", rc->export_login ? "on" : "off");
        return 0;
}
