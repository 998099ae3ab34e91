/*
 * Deal stage → site order state (site_map.h). Stage ids are compared in full: the
 * [bitrix24.map] side goes through b24_conf_stage (which adds "C<id>:" outside the
 * default pipeline, as the Bitrix24 sink does), the [site.map] side has its prefix added
 * here the same way.
 */
#include "sinks/site_map.h"

#include <errno.h>
#include <stdio.h>
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

/* [site.map]'s entry for `stage`, whose keys carry no pipeline prefix. */
static const char *explicit_entry(const struct config *cfg, const struct b24_conf *conf,
                                  const char *stage)
{
        char full[96];

        for (size_t i = 0; i < cfg->site_map.n; i++) {
                const struct status_map_entry *e = &cfg->site_map.entries[i];
                if (conf->category_id > 0)
                        snprintf(full, sizeof(full), "C%lld:%s", (long long)conf->category_id,
                                 e->key);
                else
                        snprintf(full, sizeof(full), "%s", e->key);
                if (strcmp(full, stage) == 0)
                        return e->value;
        }
        return NULL;
}

/* Whether [bitrix24.map] sends `key` (a status code, or "@canceled") to `stage`. */
static bool maps_to(const struct b24_conf *conf, const char *key, const char *stage)
{
        bool cancel = strcmp(key, "@canceled") == 0;
        char full[96];

        return b24_conf_stage(conf, NULL, cancel ? "" : key, cancel, false, full, sizeof(full)) ==
                       0 &&
               strcmp(full, stage) == 0;
}

/* The inverse of [bitrix24.map] at `stage`: 0, -ENOENT or -ENOTUNIQ (see site_map.h); on
 * -ENOTUNIQ two of the status codes in *ret_a and *ret_b. */
static int inverse(const struct b24_conf *conf, const char *stage, struct site_state *ret,
                   const char **ret_a, const char **ret_b)
{
        const char *found = NULL;

        if (maps_to(conf, "@canceled", stage)) {
                set_state(ret, "@canceled");
                return 0;
        }
        for (size_t i = 0; i < conf->map.n; i++) {
                const char *key = conf->map.entries[i].key;

                /* @paid moves deals forward; it is no state to go back to */
                if (key[0] == '@' || !maps_to(conf, key, stage))
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

        if (!conf)
                return -ENOENT;
        if ((value = explicit_entry(cfg, conf, stage)) != NULL) {
                set_state(ret, value);
                return 0;
        }
        return inverse(conf, stage, ret, &a, &b);
}

int site_map_check(const struct config *cfg, char *why, size_t size)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct site_state st;
        char stage[96];

        for (size_t i = 0; conf && i < conf->map.n; i++) {
                const char *key = conf->map.entries[i].key, *a = NULL, *b = NULL;
                bool cancel = strcmp(key, "@canceled") == 0;

                if (b24_conf_stage(conf, NULL, cancel ? "" : key, cancel, false, stage,
                                   sizeof(stage)) < 0 ||
                    explicit_entry(cfg, conf, stage))
                        continue;
                if (inverse(conf, stage, &st, &a, &b) == -ENOTUNIQ) {
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
