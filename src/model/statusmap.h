/*
 * A status map: the site's order state (its status code, or the flags "@canceled" and
 * "@paid") to a remote's status or stage id. Each sink that mirrors the order's status
 * keeps one, filled from its defaults and then from its [SINK.map] lines. Keys are
 * unique: setting a key again replaces its value.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct status_map_entry {
        char *key;   /* a site status code, or "@canceled" / "@paid" */
        char *value; /* the remote's status or stage id */
        int line;    /* where it was set, 0 for a default */
};

struct status_map {
        struct status_map_entry *entries;
        size_t n;
};

/* Sets `key` to `value` (copies both), replacing an earlier value of the same key. */
void status_map_set(struct status_map *m, const char *key, const char *value, int line);

/* Frees the entries; the map is empty afterwards and may be filled again. */
void status_map_clear(struct status_map *m);

/* Looks a snapshot's state up: canceled first, then paid, then the status code.
 * Returns the mapped value or NULL when nothing matches. */
const char *status_map_lookup(const struct status_map *m, const char *status, bool canceled,
                              bool paid);
