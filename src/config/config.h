/*
 * The configuration: one INI file read with inih, checked against one table of typed keys
 * (section, key, type, default, limits). Every problem is reported as
 * "FILE:LINE: [section] key: what is wrong", all of them at once. Secrets are read from
 * the files the configuration names (or the environment) and kept only here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http/signature.h"

struct map_entry {
        char *key;   /* a site status code, or "@canceled" / "@paid" */
        char *value; /* the remote's status or stage id */
        int line;    /* where it was set, 0 for a default */
};

struct status_map {
        struct map_entry *entries;
        size_t n;
};

struct roistat_status {
        char *id, *type, *name;
};

struct config {
        char *path;

        /* [server] */
        char *listen;              /* host:port */
        char *listen_host;
        uint16_t listen_port;
        char *signing_secret_file;
        struct signature_key signing_key;
        bool has_signing_key;
        int64_t max_body_bytes;
        int64_t max_connections;
        int64_t connection_timeout_s;
        int64_t threads;
        char *admin_token_file;
        char *admin_token;         /* secret */

        /* [store] */
        char *store_path;

        /* [site] */
        char *site_id;

        /* [log] */
        char *log_level;

        /* [delivery] */
        int64_t backoff_min_ms, backoff_max_ms, lifetime_s, visit_wait_s, visit_wait_max;
        int64_t poll_interval_ms;
        int64_t confirm_after_s;

        /* [roistat] */
        bool roistat_enabled;
        char *roistat_url;
        char *roistat_project;
        char *roistat_api_key_file;
        char *roistat_api_key;     /* secret */
        int64_t roistat_batch_size;
        int64_t roistat_timeout_ms;
        int64_t roistat_rate;
        bool roistat_canceled_zero;
        struct roistat_status *roistat_statuses;
        size_t n_roistat_statuses;
        struct status_map roistat_map;

        /* [bitrix24] */
        bool b24_enabled;
        char *b24_webhook_url_file;
        char *b24_webhook_url;     /* secret: https://portal/rest/USER/CODE/ */
        int64_t b24_category_id;
        char *b24_roistat_field;
        int64_t b24_rate, b24_burst;
        int64_t b24_timeout_ms;
        int64_t b24_orders_per_batch;
        char *b24_deal_title_prefix;
        char *b24_country_code;
        struct status_map b24_map;
};

/* Loads and checks `path`. On failure returns -EINVAL (or -errno when the file cannot be
 * read) and *ret_errors holds every problem, one per line (caller frees). */
int config_load(const char *path, struct config **ret, char **ret_errors);

/* A configuration built only from defaults, with `overrides` ("section.key=value" lines),
 * used by tests and the demo. Same checks as config_load. */
int config_load_string(const char *text, const char *name, struct config **ret,
                       char **ret_errors);

struct config *config_free(struct config *c);

/* Looks a snapshot's state up in a map: canceled first, then paid, then the status code.
 * Returns the mapped value or NULL when nothing matches. */
const char *status_map_lookup(const struct status_map *m, const char *status, bool canceled,
                              bool paid);

/* The Bitrix24 stage for a snapshot: the [bitrix24.map] value, prefixed with
 * "C<category>:" for a pipeline other than the default when the value has no prefix.
 * Returns 0, or -ENOENT when nothing maps. */
int config_b24_stage(const struct config *c, const char *status, bool canceled, bool paid,
                     char *buf, size_t size);

/* The names of the enabled sinks ("roistat", "bitrix24"); returns how many (≤ 2). */
size_t config_sinks(const struct config *c, const char *ret_names[2]);

/* The roistat status by id, or NULL. */
const struct roistat_status *config_roistat_status(const struct config *c, const char *id);

/* Writes the documented keys, their defaults and limits (for --help and docs). */
void config_print_keys(FILE *f);
