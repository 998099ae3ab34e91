/*
 * The status map: a short list searched in order. Cancellation and payment are flags in
 * Bitrix, not statuses, so a lookup tries "@canceled", then "@paid", then the code: a
 * cancelled order is cancelled whatever its code says.
 */
#include "model/statusmap.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

void status_map_set(struct status_map *m, const char *key, const char *value, int line)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->entries[i].key, key) == 0) {
                        free(m->entries[i].value);
                        m->entries[i].value = xstrdup(value);
                        m->entries[i].line = line;
                        return;
                }
        m->entries = xrealloc(m->entries, (m->n + 1) * sizeof(*m->entries));
        m->entries[m->n].key = xstrdup(key);
        m->entries[m->n].value = xstrdup(value);
        m->entries[m->n].line = line;
        m->n++;
}

void status_map_clear(struct status_map *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->entries[i].key);
                free(m->entries[i].value);
        }
        free(m->entries);
        m->entries = NULL;
        m->n = 0;
}

const char *status_map_lookup(const struct status_map *m, const char *status, bool canceled,
                              bool paid)
{
        for (int pass = 0; pass < 3; pass++) {
                const char *key = pass == 0 ? (canceled ? "@canceled" : NULL)
                                  : pass == 1 ? (paid ? "@paid" : NULL)
                                              : status;
                if (!key)
                        continue;
                for (size_t i = 0; i < m->n; i++)
                        if (strcmp(m->entries[i].key, key) == 0)
                                return m->entries[i].value;
        }
        return NULL;
}
