/*
 * The configuration: one INI file read with inih and checked against the sections that
 * the modules own. A section (struct config_section) is a table of typed keys (name,
 * type, default, limits, help) plus its module's defaults, checks and subsections such
 * as [roistat.map]. The core sections — [server], [store], [site], [log], [delivery]
 * (config/core.c) — keep their fields in struct config; every other section has a struct
 * of its own, which its module reads with config_section() (each sink's is named in
 * sinks/registry.c, the one table of sink kinds). Every problem is reported as
 * "FILE:LINE: [section] key: what is wrong", all of them at once. Secrets are read from
 * the files the configuration names (or the environment) and never printed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http/signature.h"
#include "model/statusmap.h"

struct config_part; /* one section's settings inside a loaded configuration */

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
        int64_t unverified_body_bytes;
        char *admin_token_file;
        char *admin_token;         /* secret */

        /* [store] */
        char *store_path;          /* the store's location: [store] path, or url when set */
        char *store_url;
        char *store_password_file;
        int64_t claim_ttl_s;       /* a shared store's roles lapse this long after their
                                    * server stops renewing them */
        int64_t retain_days;       /* history and attempts older than this are pruned; 0 never */

        /* [site] */
        char *site_id;
        char *site_status_url;          /* the module's status endpoint: the site sink */
        char *site_status_secret_file;
        struct signature_key site_status_key; /* that file's, else the signing key */
        bool has_site_status_key;
        struct status_map site_map;     /* [site.map]: deal stage → site status */

        /* [log] */
        char *log_level;

        /* [delivery] */
        int64_t backoff_min_ms, backoff_max_ms, lifetime_s, visit_wait_s, visit_wait_max;
        int64_t poll_interval_ms;
        int64_t confirm_after_s;
        int64_t reconcile_interval_s;
        int64_t stuck_after_s;     /* a sink owing an order this long is unhealthy */

        /* every section's settings, core ones first (those point back at this struct) */
        struct config_part *parts;
        size_t n_parts;
};

/* --- sections: what a module registers ------------------------------------------------ */

enum config_key_type {
        CONFIG_STRING, /* char *, NULL when unset and without default */
        CONFIG_INT,    /* int64_t within [min, max] */
        CONFIG_BOOL,   /* bool: yes/no, true/false, on/off, 1/0 */
};

struct config_key {
        const char *name;
        enum config_key_type type;
        size_t offset;   /* of the field in the section's struct (struct config for core) */
        const char *def; /* the default as it would be written in the file, or NULL */
        int64_t min, max;
        const char *help;
};

struct config_parse; /* a load in progress: checks and entry handlers report to it */

/* A subsection that a section owns, such as [roistat.map]: free-form "key = value" lines,
 * each handed to `entry` with the section's struct. */
struct config_subsection {
        const char *name;
        void (*entry)(struct config_parse *p, void *conf, const char *subsection,
                      const char *key, const char *value, int line);
        const char *help; /* for --keys: "\n[name]\n  what its lines look like\n" */
};

/* A subsection whose name ends in " *" ("bitrix24.site *") is a family: it matches
 * "[bitrix24.site ARG]" for any one-word ARG (one section per storefront), and its
 * `entry` gets the whole "bitrix24.site ARG" and reads ARG itself. */

struct config_section {
        const char *name;
        const struct config_key *keys;
        size_t n_keys;
        /* sizeof the module's struct, allocated and zeroed by the engine; 0 for a core
         * section, whose keys are fields of struct config */
        size_t size;
        /* a sink's: an absent section means disabled, and so does its "enabled" key (a
         * CONFIG_BOOL of that name, when the table has one) set to no */
        bool optional;
        const struct config_subsection *subsections;
        size_t n_subsections;
        /* after the keys' defaults are set: lists and maps that have defaults */
        void (*defaults)(void *conf);
        /* once the file is read without errors, for an enabled section: reads its secrets
         * and reports what is wrong with config_error() */
        void (*check)(struct config_parse *p, const struct config *cfg, void *conf);
        /* frees what the module allocated beyond its string keys (the engine frees those
         * and the struct); wipes secrets */
        void (*free)(void *conf);
};

/* --- loading --------------------------------------------------------------------------- */

/* Loads and checks `path`. On failure returns -EINVAL (or -errno when the file cannot be
 * read) and *ret_errors holds every problem, one per line (caller frees). */
int config_load(const char *path, struct config **ret, char **ret_errors);

/* The same from a string (tests, fuzzing); `name` stands for the file name in messages. */
int config_load_string(const char *text, const char *name, struct config **ret,
                       char **ret_errors);

struct config *config_free(struct config *c);

/* The settings of section `name` (the module's struct; struct config itself for a core
 * section), or NULL when the section is disabled or unknown. */
const void *config_section(const struct config *cfg, const char *name);

/* The same whether the section is enabled or not (its defaults when it is absent);
 * NULL only for an unknown name. */
const void *config_section_data(const struct config *cfg, const char *name);

/* Writes every key of every section with its default and limits, then what each
 * subsection's lines look like (`orderbridge --keys`). */
void config_print_keys(FILE *f);

/* --- for a section's check and entry handlers ----------------------------------------- */

/* Reports one problem: "FILE:LINE: " (or "FILE: " when line is 0) and the text. */
void config_error(struct config_parse *p, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Where [section] key was set, or 0 when it has its default. */
int config_key_line(const struct config_parse *p, const char *section, const char *key);

/* The same after loading, for a verb that reports on a loaded configuration (`check`
 * against the remote): where [section] key was set, or 0. */
int config_line(const struct config *cfg, const char *section, const char *key);

/* The line of the [section] header, or 0 when the file has none. */
int config_section_line(const struct config_parse *p, const char *section);

/* Reads a secret: the first line of the file at `path`, without its line end and trailing
 * blanks, at most 4096 bytes; or when `path` is NULL, the systemd credential named after
 * the key (the section, '_', the key without "_file": [roistat] api_key_file reads
 * $CREDENTIALS_DIRECTORY/roistat_api_key, from LoadCredential=), the same way; or else
 * the environment variable `env`. Returns 1 and sets *ret (caller frees), 0 when none is
 * there, or a negative errno after reporting "[section] key: …" (never the secret
 * itself). */
int config_read_secret(struct config_parse *p, const char *section, const char *key,
                       const char *path, const char *env, char **ret);

/* Checks a remote URL: https://host[:port]/path, or http:// to a loopback host. Returns 0,
 * or -EINVAL after reporting "[section] key: …" without repeating the URL. */
int config_check_url(struct config_parse *p, const char *section, const char *key,
                     const char *url);

/* An id: 1..max bytes of letters, digits, '-', '_', ':' and '@'. */
bool config_id_like(const char *s, size_t max);

/* The entry handler of a status map subsection such as [roistat.map]: checks that `key`
 * is a site status code, @canceled or @paid and `value` an id, then sets it in `m`. */
void config_map_entry(struct config_parse *p, struct status_map *m, const char *subsection,
                      const char *key, const char *value, int line);
