/*
 * [bitrix24] and [bitrix24.map]: keys, defaults (design.md's table) and checks. The
 * webhook URL is a secret (its path holds the access code), and so is the outgoing
 * webhook's application token (whoever has it can make orderbridge fetch deals and
 * move orders): both come from a file or the environment and no message ever repeats
 * them. Deals carry [site] id as ORIGINATOR_ID, so an enabled section needs it.
 */
#include "sinks/bitrix24_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "model/phone.h"
#include "model/snapshot.h"
#include "sinks/b24_rules.h"
#include "sinks/b24_stages.h"
#include "sinks/sink_bitrix24.h"

#define B(f) offsetof(struct b24_conf, f)
#define N(a) (sizeof(a) / sizeof(a[0]))

static const struct config_key keys[] = {
        {"enabled", CONFIG_BOOL, B(enabled), "yes", 0, 0,
         "create and update Bitrix24 deals (the sink is off when the section is absent)"},
        {"webhook_url_file", CONFIG_STRING, B(webhook_url_file), NULL, 0, 0,
         "file holding the incoming webhook URL https://PORTAL/rest/USER/CODE/ "
         "(env ORDERBRIDGE_BITRIX24_WEBHOOK_URL)"},
        {"category_id", CONFIG_INT, B(category_id), "0", 0, 1000000,
         "pipeline (deal category) for new deals; 0 is the default pipeline"},
        {"roistat_field", CONFIG_STRING, B(roistat_field), "UF_CRM_ROISTAT", 0, 0,
         "deal field that carries the Roistat visit (empty = none)"},
        {"rate", CONFIG_INT, B(rate), "2", 1, 100,
         "requests per second (2 on ordinary plans, 5 on Enterprise)"},
        {"burst", CONFIG_INT, B(burst), "50", 1, 1000,
         "requests that may go at once (50; 250 on Enterprise)"},
        {"timeout_ms", CONFIG_INT, B(timeout_ms), "30000", 100, 600000, "whole-request timeout"},
        {"orders_per_batch", CONFIG_INT, B(orders_per_batch), "250", 1, 1000,
         "orders handled together (their commands go out in batch calls of at most 50)"},
        {"deal_title_prefix", CONFIG_STRING, B(deal_title_prefix), "Order ", 0, 0,
         "deal title = prefix + the order's account number"},
        {"country_code", CONFIG_STRING, B(country_code), "7", 0, 0,
         "country code for phones written without one (for matching repeat customers)"},
        {"application_token_file", CONFIG_STRING, B(application_token_file), NULL, 0, 0,
         "file holding the outgoing webhook's application token, which Bitrix24 shows when "
         "the webhook is created; POST /v1/bitrix24/events is refused without it "
         "(env ORDERBRIDGE_B24_APPLICATION_TOKEN)"},
        {"poll_interval", CONFIG_INT, B(poll_interval_s), "60", 0, 86400,
         "seconds between two reads of the deals changed since the last one (crm.deal.list), "
         "which find what a lost outgoing webhook missed; 0 = no poll"},
        {"assigned_by_id", CONFIG_INT, B(assigned_by_id), "0", 0, 2147483647,
         "deal ASSIGNED_BY_ID (the responsible user); 0 = not sent (the portal makes the "
         "webhook's user responsible); [bitrix24.site LID] and [bitrix24.person_type ID] "
         "override it"},
        {"source_id", CONFIG_STRING, B(source_id), "", 0, 0,
         "deal SOURCE_ID, e.g. STORE (crm.status SOURCE); empty = not sent"},
        {"utm", CONFIG_BOOL, B(utm), "yes", 0, 0,
         "send the order's utm as the deal's UTM_SOURCE, UTM_MEDIUM, UTM_CAMPAIGN, UTM_CONTENT, "
         "UTM_TERM"},
        {"comment_to_deal", CONFIG_BOOL, B(comment_to_deal), "yes", 0, 0,
         "send the buyer's comment as the deal's COMMENTS"},
        {"delivery_row_name", CONFIG_STRING, B(delivery_row_name), "Delivery", 0, 0,
         "PRODUCT_NAME of the product row that carries the delivery price (a row only when "
         "the price is above 0)"},
};

#undef B

/* No @paid: a paid order's deal follows its status code (issue #9: with @paid = EXECUTING
 * a paid order at D or F went back to EXECUTING). Roistat keeps its @paid. */
static const char *const default_map[][2] = {
        {"@canceled", "LOSE"}, {"N", "NEW"}, {"P", "PREPARATION"}, {"A", "EXECUTING"},
        {"D", "FINAL_INVOICE"}, {"F", "WON"}, {"C", "LOSE"},
};

static const char *map_get(const struct status_map *m, const char *key)
{
        for (size_t i = 0; key && i < m->n; i++)
                if (strcmp(m->entries[i].key, key) == 0)
                        return m->entries[i].value;
        return NULL;
}

bool b24_conf_source_active(const struct b24_conf *conf)
{
        return conf->application_token || conf->poll_interval_s > 0;
}

bool b24_conf_needs_pipeline(const struct b24_conf *conf)
{
        return map_get(&conf->map, "@paid") != NULL;
}

/* `value` as a stage id of the configured pipeline: "C<category>:" is prepended outside
 * the default pipeline unless the value has a prefix already. */
static void stage_id(int64_t category_id, const char *value, char *buf, size_t size)
{
        if (category_id > 0 && !strchr(value, ':'))
                snprintf(buf, size, "C%lld:%s", (long long)category_id, value);
        else
                snprintf(buf, size, "%s", value);
}

/* Whether stage `a` comes before stage `b` in the pipeline `p`. False when either SORT is
 * unknown (no pipeline, another pipeline's, a stage it does not have): the caller then
 * keeps the status code's stage rather than guess. */
static bool sorts_before(int64_t category_id, const struct b24_pipeline *p, const char *a,
                         const char *b)
{
        char ida[96], idb[96];
        int64_t sa, sb;

        if (!p || p->category_id != category_id)
                return false;
        stage_id(category_id, a, ida, sizeof(ida));
        stage_id(category_id, b, idb, sizeof(idb));
        sa = b24_pipeline_sort(p, ida);
        sb = b24_pipeline_sort(p, idb);
        return sa >= 0 && sb >= 0 && sa < sb;
}

int b24_conf_stage(const struct b24_conf *conf, const struct b24_pipeline *p, const char *status,
                   bool canceled, bool paid, char *buf, size_t size)
{
        return b24_conf_stage_in(conf, conf->category_id, p, status, canceled, paid, buf, size);
}

int b24_conf_order_stage(const struct b24_conf *conf, const struct b24_pipeline *p,
                         const struct snapshot *s, char *buf, size_t size)
{
        struct b24_order_rules r;

        b24_rules_resolve(conf, s, &r);
        return b24_conf_stage_in(conf, r.category_id, p, s->status, s->canceled, s->paid, buf,
                                 size);
}

int b24_conf_stage_in(const struct b24_conf *conf, int64_t category_id,
                      const struct b24_pipeline *p, const char *status, bool canceled, bool paid,
                      char *buf, size_t size)
{
        const char *canceled_stage = canceled ? map_get(&conf->map, "@canceled") : NULL;
        const char *paid_stage = paid ? map_get(&conf->map, "@paid") : NULL;
        const char *v = map_get(&conf->map, status);

        /* @paid only moves a deal forward: a paid order that has shipped stays shipped */
        if (canceled_stage)
                v = canceled_stage;
        else if (paid_stage && (!v || sorts_before(category_id, p, v, paid_stage)))
                v = paid_stage;
        if (!v)
                return -ENOENT;
        stage_id(category_id, v, buf, size);
        return 0;
}

static void defaults(void *conf)
{
        struct b24_conf *bc = conf;

        for (size_t i = 0; i < N(default_map); i++)
                status_map_set(&bc->map, default_map[i][0], default_map[i][1], 0);
}

static void map_entry(struct config_parse *p, void *conf, const char *subsection,
                      const char *key, const char *value, int line)
{
        struct b24_conf *bc = conf;

        config_map_entry(p, &bc->map, subsection, key, value, line);
}

static void fields_entry(struct config_parse *p, void *conf, const char *subsection,
                         const char *key, const char *value, int line)
{
        struct b24_conf *bc = conf;

        b24_rules_field_entry(p, &bc->rules, subsection, key, value, line);
}

static void scope_entry(struct config_parse *p, void *conf, const char *subsection,
                        const char *key, const char *value, int line)
{
        struct b24_conf *bc = conf;

        b24_rules_scope_entry(p, &bc->rules, subsection, key, value, line);
}

/* https://portal/rest/<user id>/<code>/ (a trailing slash is added when missing). The URL
 * itself is a secret: messages name the file, never the value. */
static void check_webhook(struct config_parse *p, struct b24_conf *bc, int header)
{
        int line = config_key_line(p, "bitrix24", "webhook_url_file");
        const char *rest;
        size_t n, digits;
        int r;

        r = config_read_secret(p, "bitrix24", "webhook_url_file", bc->webhook_url_file,
                               "ORDERBRIDGE_BITRIX24_WEBHOOK_URL", &bc->webhook_url);
        if (r == 0)
                config_error(p, header, "[bitrix24] webhook_url_file: required when Bitrix24 "
                             "is enabled (or set ORDERBRIDGE_BITRIX24_WEBHOOK_URL)");
        /* scheme, host and no USER:PASSWORD@ first, by libcurl's parser; then the path */
        if (r <= 0 || config_check_url(p, "bitrix24", "webhook_url_file", bc->webhook_url) < 0)
                return;
        n = strlen(bc->webhook_url);
        if (bc->webhook_url[n - 1] != '/') {
                bc->webhook_url = xrealloc(bc->webhook_url, n + 2);
                memcpy(bc->webhook_url + n, "/", 2);
        }
        rest = strstr(bc->webhook_url, "/rest/");
        digits = rest ? strspn(rest + 6, "0123456789") : 0;
        if (!rest || digits == 0 || rest[6 + digits] != '/' ||
            strpbrk(bc->webhook_url, " \t\r\n?#"))
                config_error(p, line, "[bitrix24] webhook_url_file: the file must hold the "
                             "incoming webhook URL, https://PORTAL/rest/USER_ID/CODE/");
}

/* Bitrix24 generates a 32-character token of letters and digits; anything printable
 * without blanks is taken, as long as it is not short enough to guess. */
#define APPLICATION_TOKEN_MIN 16

static void check_application_token(struct config_parse *p, struct b24_conf *bc)
{
        const char *t;

        if (config_read_secret(p, "bitrix24", "application_token_file", bc->application_token_file,
                               "ORDERBRIDGE_B24_APPLICATION_TOKEN", &bc->application_token) <= 0)
                return;
        for (t = bc->application_token; *t; t++)
                if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
                        break;
        if (*t || strlen(bc->application_token) < APPLICATION_TOKEN_MIN)
                config_error(p, config_key_line(p, "bitrix24", "application_token_file"),
                             "[bitrix24] application_token_file: the token must be at least %d "
                             "printable ASCII characters without blanks (as Bitrix24 shows it "
                             "on the outgoing webhook's page)", APPLICATION_TOKEN_MIN);
}

static void check(struct config_parse *p, const struct config *cfg, void *conf)
{
        struct b24_conf *bc = conf;
        int header = config_section_line(p, "bitrix24");

        if (!cfg->site_id)
                config_error(p, header, "[site] id: required when Bitrix24 is enabled (deals "
                             "carry it as ORIGINATOR_ID)");
        check_webhook(p, bc, header);
        check_application_token(p, bc);
        if (bc->roistat_field[0] && (strncmp(bc->roistat_field, "UF_CRM_", 7) != 0 ||
                                     !config_id_like(bc->roistat_field, 64)))
                config_error(p, config_key_line(p, "bitrix24", "roistat_field"),
                             "[bitrix24] roistat_field: must be a deal user field code, "
                             "UF_CRM_…");
        if (strspn(bc->country_code, "0123456789") != strlen(bc->country_code) ||
            strlen(bc->country_code) < 1 || strlen(bc->country_code) > 4)
                config_error(p, config_key_line(p, "bitrix24", "country_code"),
                             "[bitrix24] country_code: 1-4 digits, e.g. 7");
        else if (phone_check_country_code(bc->country_code) < 0)
                config_error(p, config_key_line(p, "bitrix24", "country_code"),
                             "[bitrix24] country_code: %s is no country's calling code "
                             "(7 Russia and Kazakhstan, 375 Belarus, 380 Ukraine, 44 UK, ...)",
                             bc->country_code);
        if (strlen(bc->deal_title_prefix) > 100)
                config_error(p, config_key_line(p, "bitrix24", "deal_title_prefix"),
                             "[bitrix24] deal_title_prefix: at most 100 bytes");
        if (bc->source_id[0] && !config_id_like(bc->source_id, 50))
                config_error(p, config_key_line(p, "bitrix24", "source_id"),
                             "[bitrix24] source_id: must be a source id such as STORE "
                             "(crm.status SOURCE)");
        if (!bc->delivery_row_name[0] || strlen(bc->delivery_row_name) > 255)
                config_error(p, config_key_line(p, "bitrix24", "delivery_row_name"),
                             "[bitrix24] delivery_row_name: 1-255 bytes");
        for (size_t i = 0; i < bc->rules.n_fields; i++)
                if (b24_rules_field_reserved(bc, bc->rules.fields[i].field))
                        config_error(p, bc->rules.fields[i].line,
                                     "[bitrix24.fields] %s: orderbridge sets this field itself "
                                     "(see [bitrix24]'s keys)", bc->rules.fields[i].field);
}

static void conf_free(void *conf)
{
        struct b24_conf *bc = conf;

        if (bc->webhook_url)
                explicit_bzero(bc->webhook_url, strlen(bc->webhook_url));
        free(bc->webhook_url);
        if (bc->application_token)
                explicit_bzero(bc->application_token, strlen(bc->application_token));
        free(bc->application_token);
        status_map_clear(&bc->map);
        b24_rules_clear(&bc->rules);
}

static const struct config_subsection subsections[] = {
        {"bitrix24.map", map_entry,
         "\n[bitrix24.map]\n  <site status code | @canceled | @paid> = <deal stage id>\n"
         "  (merged over the defaults: @canceled=LOSE N=NEW P=PREPARATION A=EXECUTING "
         "D=FINAL_INVOICE F=WON C=LOSE;\n   the stage follows the status code, @canceled "
         "overrides it; @paid has no default: when set, a paid\n   order moves to it only "
         "while its status code's stage sorts before it in the pipeline;\n"
         "   \"C<category_id>:\" is prepended for another pipeline unless the value has a "
         "prefix)\n"},
        {"bitrix24.fields", fields_entry,
         "\n[bitrix24.fields]\n  <deal field code> = <template>\n"
         "  (the deal field gets the template filled from the order, on create and whenever "
         "it changes;\n   e.g. UF_CRM_DELIVERY_ADDR = {property:ADDRESS}; placeholders: "
         "{id} {account_number} {lid}\n   {person_type} {status} {price} {currency} "
         "{comment} {delivery} {delivery_price} {discount}\n   {coupons} {payments} "
         "{sum_paid} {utm_source} {utm_medium} {utm_campaign} {utm_content} {utm_term}\n"
         "   {buyer_name} {buyer_phone} {buyer_email} {company} {inn} {property:CODE}; {{ and "
         "}} are braces;\n   `orderbridge check` verifies each field in crm.deal.fields: it "
         "exists, is writable, of type string)\n"},
        {"bitrix24.site *", scope_entry,
         "\n[bitrix24.site <LID>]\n  category_id = <pipeline>  assigned_by_id = <user id>  "
         "source_id = <source>\n"
         "  (for orders of that storefront (order.lid, e.g. s2); overrides [bitrix24])\n"},
        {"bitrix24.person_type *", scope_entry,
         "\n[bitrix24.person_type <ID>]\n  category_id = <pipeline>  assigned_by_id = <user "
         "id>  source_id = <source>\n"
         "  (for orders of that person type (order.person_type); overrides [bitrix24] and "
         "[bitrix24.site])\n"},
};

const struct config_section b24_conf_section = {
        .name = "bitrix24",
        .keys = keys,
        .n_keys = N(keys),
        .size = sizeof(struct b24_conf),
        .optional = true,
        .subsections = subsections,
        .n_subsections = N(subsections),
        .defaults = defaults,
        .check = check,
        .free = conf_free,
};

const struct b24_conf *b24_conf_get(const struct config *cfg)
{
        return config_section(cfg, b24_conf_section.name);
}

int b24_conf_report(const struct config *cfg)
{
        const struct b24_conf *bc = b24_conf_get(cfg);
        int r, f;

        printf("  bitrix24: pipeline %lld, rate %lld/s burst %lld, map:",
               (long long)bc->category_id, (long long)bc->rate, (long long)bc->burst);
        for (size_t i = 0; i < bc->map.n; i++)
                printf(" %s→%s", bc->map.entries[i].key, bc->map.entries[i].value);
        printf("\n");
        printf("  bitrix24: events %s\n",
               bc->application_token ? "on (POST /v1/bitrix24/events, application token loaded)"
                                     : "OFF (no application_token_file: POST "
                                       "/v1/bitrix24/events answers 503)");
        if (bc->poll_interval_s > 0)
                printf("  bitrix24: polling every %lld s\n", (long long)bc->poll_interval_s);
        else
                printf("  bitrix24: polling OFF (poll_interval = 0): a lost event is not "
                       "repaired\n");
        fflush(stdout);
        r = b24_check_stages(cfg);
        if (r != 1)
                printf(r == 0 ? "  bitrix24: every mapped stage exists in the portal\n"
                              : "  bitrix24: stages NOT verified (portal unreachable)\n");
        fflush(stdout);
        f = b24_rules_check_fields(cfg);
        if (f == 0 && bc->rules.n_fields > 0)
                printf("  bitrix24: every [bitrix24.fields] field exists in the portal and "
                       "takes text\n");
        else if (f == 2)
                printf("  bitrix24: [bitrix24.fields] NOT verified (portal unreachable)\n");
        return r == 1 || f == 1 ? 1 : 0;
}
