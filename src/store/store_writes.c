/*
 * The side writes of a sink's pass (links, cached look-ups): a small list kept in memory
 * beside the verdicts until store_record writes both in one transaction. A sink reads its
 * own pending writes before the store, so that a fact learned early in a pass is seen by
 * the rest of it.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

static void writes_add(struct store_writes *w, enum store_write_kind kind, const char *order_id,
                       const char *key, const char *value)
{
        if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 16;
                w->items = xrealloc(w->items, w->cap * sizeof(*w->items));
        }
        w->items[w->n++] = (struct store_write){kind, order_id ? xstrdup(order_id) : NULL,
                                                xstrdup(key), xstrdup(value)};
}

void store_writes_link(struct store_writes *w, const char *order_id, const char *kind,
                       const char *remote)
{
        writes_add(w, STORE_WRITE_LINK, order_id, kind, remote);
}

void store_writes_meta(struct store_writes *w, const char *key, const char *value,
                       bool only_if_absent)
{
        writes_add(w, only_if_absent ? STORE_WRITE_META_IF_ABSENT : STORE_WRITE_META, NULL, key,
                   value);
}

void store_writes_request(struct store_writes *w, const char *order_id, const char *sink)
{
        writes_add(w, STORE_WRITE_REQUEST, order_id, sink, "");
}

const char *store_writes_find_meta(const struct store_writes *w, const char *key)
{
        const char *v = NULL;

        /* in order, as they will be applied: a set replaces, an if-absent only fills */
        for (size_t i = 0; i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                if ((x->kind != STORE_WRITE_META && x->kind != STORE_WRITE_META_IF_ABSENT) ||
                    strcmp(x->key, key) != 0)
                        continue;
                if (x->kind == STORE_WRITE_META || !v)
                        v = x->value;
        }
        return v;
}

const char *store_writes_find_link(const struct store_writes *w, const char *order_id,
                                   const char *kind)
{
        const char *v = NULL;

        for (size_t i = 0; i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                if (x->kind == STORE_WRITE_LINK && strcmp(x->order_id, order_id) == 0 &&
                    strcmp(x->key, kind) == 0)
                        v = x->value;
        }
        return v;
}

void store_writes_clear(struct store_writes *w)
{
        for (size_t i = 0; i < w->n; i++) {
                free(w->items[i].order_id);
                free(w->items[i].key);
                free(w->items[i].value);
        }
        free(w->items);
        memset(w, 0, sizeof(*w));
}
