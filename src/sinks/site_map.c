/*
 * Deal stage → site order state (site_map.h). Stage ids are compared in full: the
 * [bitrix24.map] side goes through b24_conf_stage_in (which adds "C<id>:" outside the
 * default pipeline, as the Bitrix24 sink does), the [site.map] side has its prefix added
 * here the same way. A stage is read in its own pipeline when orders' deals may be there:
 * [bitrix24] category_id's, or a storefront's or person type's (b24_rules.h); another
 * pipeline's stage maps to nothing.
 */
#include "sinks/site_map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/snapshot.h"
#include "sinks/bitrix24_conf.h"

int64_t site_change_time(const struct snapshot *s, int64_t received_ms)
{
        return s->has_updated_at ? s->updated_at : received_ms / 1000;
}

bool site_state_shown(const struct site_state *st, const struct snapshot *s)
{
        return st->cancel ? s->canceled : !s->canceled && strcmp(st->status, s->status) == 0;
}

static void set_state(struct site_state *ret, const char *value)
{
        ret->cancel = strcmp(value, "@canceled") == 0;
        snprintf(ret->status, sizeof(ret->status), "%s", ret->cancel ? "" : value);
}

/* The pipeline a stage id belongs to: N for "C<N>:…", else the default pipeline, 0. */
static int64_t stage_category(const char *stage)
{
        char *end;
        long long n;

        if (stage[0] != 'C' || stage[1] < '0' || stage[1] > '9')
                return 0;
        n = strtoll(stage + 1, &end, 10);
        return *end == ':' ? n : 0;
}

/* Whether site orders' deals may be in pipeline `category`. */
static bool category_used(const struct b24_conf *conf, int64_t category)
{
        if (category == conf->category_id)
                return true;
        for (size_t i = 0; i < conf->rules.n_scopes; i++)
                if (conf->rules.scopes[i].category_id == category)
                        return true;
        return false;
}

/* [site.map]'s entry for `stage`, whose keys carry no pipeline prefix. */
static const char *explicit_entry(const struct config *cfg, int64_t category, const char *stage)
{
        char full[96];

        for (size_t i = 0; i < cfg->site_map.n; i++) {
                const struct status_map_entry *e = &cfg->site_map.entries[i];
                if (category > 0)
                        snprintf(full, sizeof(full), "C%lld:%s", (long long)category, e->key);
                else
                        snprintf(full, sizeof(full), "%s", e->key);
                if (strcmp(full, stage) == 0)
                        return e->value;
        }
        return NULL;
}

/* Whether [bitrix24.map] sends `key` (a status code, or "@canceled") to `stage`. */
static bool maps_to(const struct b24_conf *conf, int64_t category, const char *key,
                    const char *stage)
{
        bool cancel = strcmp(key, "@canceled") == 0;
        char full[96];

        return b24_conf_stage_in(conf, category, NULL, cancel ? "" : key, cancel, false, full,
                                 sizeof(full)) == 0 &&
               strcmp(full, stage) == 0;
}

/* The inverse of [bitrix24.map] at `stage`: 0, -ENOENT or -ENOTUNIQ (see site_map.h); on
 * -ENOTUNIQ two of the status codes in *ret_a and *ret_b. */
static int inverse(const struct b24_conf *conf, int64_t category, const char *stage,
                   struct site_state *ret, const char **ret_a, const char **ret_b)
{
        const char *found = NULL;

        if (maps_to(conf, category, "@canceled", stage)) {
                set_state(ret, "@canceled");
                return 0;
        }
        for (size_t i = 0; i < conf->map.n; i++) {
                const char *key = conf->map.entries[i].key;

                /* @paid moves deals forward; it is no state to go back to */
                if (key[0] == '@' || !maps_to(conf, category, key, stage))
                        continue;
                if (found) {
                        *ret_a = found;
                        *ret_b = key;
                        return -ENOTUNIQ;
                }
                found = key;
        }
        if (!found)
                return -ENOENT;
        set_state(ret, found);
        return 0;
}

int site_map_state(const struct config *cfg, const char *stage, struct site_state *ret)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        const char *value, *a, *b;

        int64_t category;

        if (!conf)
                return -ENOENT;
        category = stage_category(stage);
        if (!category_used(conf, category))
                return -ENOENT; /* another pipeline's stage: nothing the site follows */
        if ((value = explicit_entry(cfg, category, stage)) != NULL) {
                set_state(ret, value);
                return 0;
        }
        return inverse(conf, category, stage, ret, &a, &b);
}

int site_map_check(const struct config *cfg, char *why, size_t size)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct site_state st;
        char stage[96];

        for (size_t i = 0; conf && i < conf->map.n; i++) {
                const char *key = conf->map.entries[i].key, *a = NULL, *b = NULL;
                bool cancel = strcmp(key, "@canceled") == 0;

                /* the same map in every pipeline: ambiguous in one is ambiguous in all */
                if (b24_conf_stage(conf, NULL, cancel ? "" : key, cancel, false, stage,
                                   sizeof(stage)) < 0 ||
                    explicit_entry(cfg, conf->category_id, stage))
                        continue;
                if (inverse(conf, conf->category_id, stage, &st, &a, &b) == -ENOTUNIQ) {
                        snprintf(why, size,
                                 "[bitrix24.map] sends both %s and %s to stage %s: say in "
                                 "[site.map] which status a deal moved to %s gives the order "
                                 "(%s = %s, say)",
                                 a, b, stage, stage, conf->map.entries[i].value, a);
                        return -ENOTUNIQ;
                }
        }
        return 0;
}
