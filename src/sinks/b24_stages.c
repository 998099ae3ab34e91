/*
 * The Bitrix24 portal's deal pipelines and their stages, for the operator:
 * `orderbridge stages` lists them (crm.category.list, then crm.status.list per pipeline in
 * one batch call), and `orderbridge check` verifies that every [bitrix24.map] stage exists
 * in the configured pipeline, so that a typo is found at set-up, not as dead letters.
 * For the sink, b24_pipeline_fetch reads one pipeline's stages with their SORT: a
 * configured @paid moves only the deals whose stage sorts before it.
 */
#include "sinks/b24_stages.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/xalloc.h"
#include "sinks/bitrix24_conf.h"

/* crm.status.list's parameters for the stages of pipeline `id`, in stage order: they are
 * the entity DEAL_STAGE for the default pipeline, DEAL_STAGE_<id> for another. */
static json_t *stage_list_params(long long id)
{
        char entity[48];

        if (id == 0)
                snprintf(entity, sizeof(entity), "DEAL_STAGE");
        else
                snprintf(entity, sizeof(entity), "DEAL_STAGE_%lld", id);
        return json_pack("{s:{s:s}, s:{s:s}}", "filter", "ENTITY_ID", entity, "order", "SORT",
                         "ASC");
}

/* Fetches every deal pipeline and its stages: {"<category id>": {"name":…, "stages":
 * {"STAGE_ID": "name", …}}, …}. Returns 0 or a b24_call code. Every text packed here is
 * a constant or came from the portal's parsed (so UTF-8) answer: jansson cannot refuse
 * it, and its allocations abort on OOM. */
static int fetch_stages(struct b24_client *c, json_t **ret, struct b24_error *err)
{
        json_t *doc = NULL, *cats, *cat, *out = json_object(), *cmd = json_object(), *v;
        const char *key;
        size_t i;
        int r;

        r = b24_call(c, "crm.category.list", json_pack("{s:i}", "entityTypeId", 2), &doc, err);
        if (r != 0) {
                json_decref(out);
                json_decref(cmd);
                return r;
        }
        cats = json_object_get(json_object_get(doc, "result"), "categories");
        json_array_foreach(cats, i, cat)
        {
                json_t *idv = json_object_get(cat, "id");
                long long id = json_is_integer(idv) ? json_integer_value(idv)
                               : json_is_string(idv) ? strtoll(json_string_value(idv), NULL, 10)
                                                     : -1;
                char k[32];
                json_t *params;
                char *q;
                if (id < 0)
                        continue;
                snprintf(k, sizeof(k), "%lld", id);
                json_object_set_new(out, k, json_pack("{s:s, s:o}", "name",
                                                      json_is_string(json_object_get(cat, "name"))
                                                              ? json_string_value(
                                                                        json_object_get(cat, "name"))
                                                              : "",
                                                      "stages", json_object()));
                params = stage_list_params(id);
                q = b24_query_string("crm.status.list", params);
                json_decref(params);
                json_object_set_new(cmd, k, json_string(q));
                free(q);
        }
        if (!json_object_get(out, "0")) /* the default pipeline is always there */
                json_object_set_new(out, "0", json_pack("{s:s, s:o}", "name", "General", "stages",
                                                        json_object()));
        if (!json_object_get(cmd, "0"))
                json_object_set_new(cmd, "0", json_string("crm.status.list?filter[ENTITY_ID]="
                                                          "DEAL_STAGE&order[SORT]=ASC"));
        json_decref(doc);
        doc = NULL;
        r = b24_call(c, "batch", json_pack("{s:i, s:o}", "halt", 0, "cmd", cmd), &doc, err);
        if (r == 0) {
                json_t *res = json_object_get(json_object_get(doc, "result"), "result");
                json_object_foreach(res, key, v)
                {
                        json_t *stages = json_object_get(json_object_get(out, key), "stages");
                        json_t *row;
                        json_array_foreach(v, i, row)
                        {
                                const char *sid =
                                        json_string_value(json_object_get(row, "STATUS_ID"));
                                const char *name = json_string_value(json_object_get(row, "NAME"));
                                if (sid && stages)
                                        json_object_set_new(stages, sid,
                                                            json_string(name ? name : ""));
                        }
                }
        }
        json_decref(doc);
        if (r != 0) {
                json_decref(out);
                return r;
        }
        *ret = out;
        return 0;
}

int b24_print_stages(const struct config *cfg)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct b24_client *c = b24_client_new(conf);
        struct b24_error err;
        json_t *all = NULL, *cat, *v;
        const char *key, *sid;
        int r;

        if (!c)
                return 1;
        r = fetch_stages(c, &all, &err);
        b24_client_free(c);
        if (r != 0) {
                fprintf(stderr, "orderbridge stages: the portal answered %s: %s\n", err.code,
                        err.description);
                return 1;
        }
        json_object_foreach(all, key, cat)
        {
                printf("pipeline %s \"%s\"%s\n", key,
                       json_string_value(json_object_get(cat, "name")),
                       strtoll(key, NULL, 10) == conf->category_id ? " (configured)" : "");
                json_object_foreach(json_object_get(cat, "stages"), sid, v)
                        printf("  %-28s %s\n", sid, json_string_value(v));
        }
        json_decref(all);
        return 0;
}

/* "FILE:LINE" where the problem was written, or "FILE" for a default, as config errors. */
static void where(const struct config *cfg, int line, char *buf, size_t size)
{
        if (line > 0)
                snprintf(buf, size, "%s:%d", cfg->path, line);
        else
                snprintf(buf, size, "%s", cfg->path);
}

/* Whether pipeline `category` exists and has every [bitrix24.map] stage; each problem on
 * stderr. `line` and `key` say where the pipeline was configured. 0 or 1. */
static int check_pipeline(const struct config *cfg, json_t *all, int64_t category,
                          const char *key, int line)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        char k[32], stage[96], at[PATH_MAX + 16];
        json_t *stages;
        int bad = 0;

        snprintf(k, sizeof(k), "%lld", (long long)category);
        stages = json_object_get(json_object_get(all, k), "stages");
        if (!stages) {
                where(cfg, line, at, sizeof(at));
                fprintf(stderr, "%s: %s = %s: the portal has no such deal pipeline "
                        "(`orderbridge stages` lists them)\n", at, key, k);
                return 1;
        }
        for (size_t i = 0; i < conf->map.n; i++) {
                const struct status_map_entry *e = &conf->map.entries[i];
                if (b24_conf_stage_in(conf, category, NULL, e->key[0] == '@' ? "" : e->key,
                                      strcmp(e->key, "@canceled") == 0,
                                      strcmp(e->key, "@paid") == 0, stage, sizeof(stage)) < 0)
                        continue;
                if (!json_object_get(stages, stage)) {
                        /* a default's line is 0: the file is named alone */
                        where(cfg, e->line, at, sizeof(at));
                        fprintf(stderr, "%s: [bitrix24.map] %s = %s: pipeline %s has no stage "
                                "%s (`orderbridge stages` lists them)\n", at, e->key,
                                e->value, k, stage);
                        bad = 1;
                }
        }
        return bad;
}

int b24_check_stages(const struct config *cfg)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct b24_client *c = b24_client_new(conf);
        struct b24_error err;
        json_t *all = NULL;
        int r, bad;

        if (!c)
                return 2;
        r = fetch_stages(c, &all, &err);
        b24_client_free(c);
        if (r != 0) {
                fprintf(stderr, "%s: could not ask the portal for its stages (%s: %s); the "
                        "[bitrix24.map] stages are not verified\n", cfg->path, err.code,
                        err.description);
                return 2;
        }
        bad = check_pipeline(cfg, all, conf->category_id, "[bitrix24] category_id",
                             config_line(cfg, "bitrix24", "category_id"));
        /* each storefront's and person type's pipeline (b24_rules.h) */
        for (size_t i = 0; i < conf->rules.n_scopes; i++) {
                const struct b24_scope *sc = &conf->rules.scopes[i];
                char key[96];
                if (sc->category_id < 0)
                        continue;
                snprintf(key, sizeof(key), "[bitrix24.%s %s] category_id",
                         sc->person_type ? "person_type" : "site", sc->match);
                bad |= check_pipeline(cfg, all, sc->category_id, key, sc->line_category);
        }
        json_decref(all);
        return bad;
}

/* A SORT as the portal sends it ("10", or 10): -1 unless it reads as a number >= 0. */
static int64_t sort_value(json_t *v)
{
        const char *t = json_string_value(v);
        char *end;
        long long n;

        if (json_is_integer(v))
                return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
        if (!t || *t < '0' || *t > '9')
                return -1;
        errno = 0;
        n = strtoll(t, &end, 10);
        return errno == 0 && *end == '\0' ? n : -1;
}

int b24_pipeline_fetch(struct b24_client *c, int64_t category_id, struct b24_pipeline *ret,
                       struct b24_error *err)
{
        json_t *doc = NULL, *rows, *row;
        struct b24_pipeline p = {.category_id = category_id};
        size_t i;
        int r;

        r = b24_call(c, "crm.status.list", stage_list_params(category_id), &doc, err);
        if (r != 0)
                return r;
        rows = json_object_get(doc, "result");
        if (!json_is_array(rows)) {
                json_decref(doc);
                snprintf(err->code, sizeof(err->code), "answer");
                snprintf(err->description, sizeof(err->description),
                         "crm.status.list answered without a list of stages");
                err->retry_after_ms = 0;
                return -EAGAIN;
        }
        p.stages = xcalloc(json_array_size(rows) + 1, sizeof(*p.stages));
        json_array_foreach(rows, i, row)
        {
                const char *sid = json_string_value(json_object_get(row, "STATUS_ID"));
                if (!sid)
                        continue;
                p.stages[p.n].id = xstrdup(sid);
                p.stages[p.n].sort = sort_value(json_object_get(row, "SORT"));
                p.n++;
        }
        json_decref(doc);
        *ret = p;
        return 0;
}

void b24_pipeline_clear(struct b24_pipeline *p)
{
        for (size_t i = 0; i < p->n; i++)
                free(p->stages[i].id);
        free(p->stages);
        p->stages = NULL;
        p->n = 0;
}

int64_t b24_pipeline_sort(const struct b24_pipeline *p, const char *stage_id)
{
        if (!p || !stage_id)
                return -1;
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->stages[i].id, stage_id) == 0)
                        return p->stages[i].sort;
        return -1;
}
