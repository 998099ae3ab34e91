/*
 * The core sections' keys and checks. Their fields are members of struct config (offsets
 * below are into it), because the HTTP front, the store, ingest and the dispatcher all
 * read them. The signing secret is parsed here into its key; neither it nor the admin
 * token is ever printed.
 */
#include "config/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "sinks/site_map.h"
#include "store/store_backend.h"

#define S(f) offsetof(struct config, f)
#define N(keys) (sizeof(keys) / sizeof(keys[0]))

static const struct config_key server_keys[] = {
        {"listen", CONFIG_STRING, S(listen), "127.0.0.1:8088", 0, 0,
         "address:port to accept orders on (loopback unless a proxy fronts it)"},
        {"signing_secret_file", CONFIG_STRING, S(signing_secret_file), NULL, 0, 0,
         "file holding the shared signing secret, whsec_<base64> (env ORDERBRIDGE_SIGNING_SECRET)"},
        {"max_body_bytes", CONFIG_INT, S(max_body_bytes), "1048576", 1024, 67108864,
         "largest accepted request body"},
        {"max_connections", CONFIG_INT, S(max_connections), "512", 4, 65536,
         "concurrent client connections"},
        {"connection_timeout_s", CONFIG_INT, S(connection_timeout_s), "15", 1, 3600,
         "an idle or slow client is dropped after this many seconds"},
        {"threads", CONFIG_INT, S(threads), "2", 1, 64, "HTTP worker threads"},
        {"unverified_body_bytes", CONFIG_INT, S(unverified_body_bytes), "16777216", 65536,
         1073741824,
         "request bodies being received and not yet verified hold at most this much memory "
         "together (each counts its Content-Length, or max_body_bytes when chunked); past "
         "it a request is answered 503 busy with Retry-After before its body is read, the "
         "last eighth being kept for bodies of at most 64 KiB"},
        {"admin_token_file", CONFIG_STRING, S(admin_token_file), NULL, 0, 0,
         "file holding the bearer token for the status page (GET /), /metrics from other than "
         "loopback and GET /v1/orders/{id} (env ORDERBRIDGE_ADMIN_TOKEN)"},
};

static const struct config_key store_keys[] = {
        {"path", CONFIG_STRING, S(store_path), "var/orderbridge.db", 0, 0,
         "SQLite database file (created if missing): the store of one server"},
        {"url", CONFIG_STRING, S(store_url), NULL, 0, 0,
         "postgresql://USER@HOST[:PORT]/DB[?sslmode=...]: a PostgreSQL store that several "
         "servers share (instead of path); no password here, see password_file"},
        {"password_file", CONFIG_STRING, S(store_password_file), NULL, 0, 0,
         "file holding the PostgreSQL password (env ORDERBRIDGE_STORE_PASSWORD; else libpq's "
         "PGPASSWORD or ~/.pgpass)"},
        {"claim_ttl_s", CONFIG_INT, S(claim_ttl_s), "15", 3, 600,
         "with a shared store: a role one server plays (a sink's deliveries, the Bitrix24 "
         "poll, the scheduled reconcile) passes to another server this long after its "
         "server stopped renewing it (died, or lost the database)"},
        {"retain_days", CONFIG_INT, S(retain_days), "90", 0, 3650,
         "snapshot history and attempts older than this many days are pruned (each order's "
         "latest snapshot, its deliveries, links and dead letters stay); 0 = keep forever"},
};

static const struct config_key site_keys[] = {
        {"id", CONFIG_STRING, S(site_id), NULL, 0, 0,
         "the shop's id (its host name); snapshots from another site are refused"},
        {"status_url", CONFIG_STRING, S(site_status_url), NULL, 0, 0,
         "the module's status endpoint (https://shop/bitrix/tools/orderbridge/status.php): "
         "when set, Bitrix24 deal stages move site orders back, and the site learns each "
         "order's deal"},
        {"status_secret_file", CONFIG_STRING, S(site_status_secret_file), NULL, 0, 0,
         "file holding the secret that signs calls to status_url, whsec_<base64> (env "
         "ORDERBRIDGE_SITE_STATUS_SECRET; default: [server] signing_secret_file's)"},
};

static const struct config_key log_keys[] = {
        {"level", CONFIG_STRING, S(log_level), "info", 0, 0, "debug, info, warn or error"},
};

static const struct config_key delivery_keys[] = {
        {"backoff_min_ms", CONFIG_INT, S(backoff_min_ms), "1000", 10, 3600000,
         "first retry delay"},
        {"backoff_max_ms", CONFIG_INT, S(backoff_max_ms), "600000", 10, 86400000,
         "longest retry delay"},
        {"lifetime_s", CONFIG_INT, S(lifetime_s), "432000", 1, 31536000,
         "a delivery still failing after this long goes to dead letters (5 days)"},
        {"visit_wait_s", CONFIG_INT, S(visit_wait_s), "600", 1, 86400,
         "re-send delay when Roistat has not seen the visit yet"},
        {"visit_wait_max", CONFIG_INT, S(visit_wait_max), "6", 0, 100,
         "how many times to re-send for an unseen visit"},
        {"poll_interval_ms", CONFIG_INT, S(poll_interval_ms), "1000", 10, 60000,
         "how often the queue is looked at when nothing wakes it"},
        {"confirm_after_s", CONFIG_INT, S(confirm_after_s), "60", 0, 3600,
         "after an attempt whose outcome is unknown, send the latest state once more this "
         "long after, in case the lost request is applied late (0 = never)"},
        {"reconcile_interval", CONFIG_INT, S(reconcile_interval_s), "3600", 0, 604800,
         "seconds between the daemon's light reconciles (Roistat and Bitrix24 read back for "
         "the orders changed since the last one; the count of differences in `status`); "
         "0 = off"},
        {"stuck_after_s", CONFIG_INT, S(stuck_after_s), "3600", 1, 2592000,
         "a sink that has owed an order this long (pending, in flight or retrying) makes "
         "/healthz answer 503 and names it"},
};

#undef S

/* Splits listen into host and port; the host must be numeric (no resolver at start-up). */
static void check_listen(struct config_parse *p, struct config *c)
{
        int line = config_key_line(p, "server", "listen");
        const char *colon = strrchr(c->listen, ':');
        const char *port_text = colon ? colon + 1 : "";
        struct in_addr a4;
        struct in6_addr a6;
        long long port = -1;
        char *end = NULL;
        size_t hlen;

        errno = 0;
        if (*port_text >= '0' && *port_text <= '9')
                port = strtoll(port_text, &end, 10);
        if (port < 0 || errno || *end || port > 65535) {
                config_error(p, line,
                             "[server] listen = %s: must be address:port, e.g. 127.0.0.1:8088",
                             c->listen);
                return;
        }
        hlen = (size_t)(colon - c->listen);
        if (hlen >= 2 && c->listen[0] == '[' && c->listen[hlen - 1] == ']') {
                c->listen_host = xstrndup(c->listen + 1, hlen - 2);
        } else if (memchr(c->listen, ':', hlen)) {
                config_error(p, line,
                             "[server] listen = %s: write an IPv6 address in brackets, e.g. "
                             "[::1]:8088",
                             c->listen);
                return;
        } else {
                c->listen_host = xstrndup(c->listen, hlen);
        }
        c->listen_port = (uint16_t)port;
        if (inet_pton(AF_INET, c->listen_host, &a4) != 1 &&
            inet_pton(AF_INET6, c->listen_host, &a6) != 1)
                config_error(p, line,
                             "[server] listen = %s: the address must be numeric IPv4 or [IPv6]",
                             c->listen);
}

/* A whsec_ signing key from its file (or env): 1 read (*ret_has set when it parsed), 0
 * none given, <0 could not be read. Errors are reported to `p`. */
static int read_key(struct config_parse *p, const char *section, const char *key,
                    const char *path, const char *env, struct signature_key *ret, bool *ret_has)
{
        char *secret = NULL;
        int r = config_read_secret(p, section, key, path, env, &secret);

        if (r <= 0)
                return r;
        if (signature_key_parse(secret, ret) < 0)
                config_error(p, config_key_line(p, section, key),
                             "[%s] %s: the secret must be whsec_ followed by base64 of %d-%d "
                             "random bytes", section, key, SIGNATURE_KEY_MIN, SIGNATURE_KEY_MAX);
        else
                *ret_has = true;
        explicit_bzero(secret, strlen(secret));
        free(secret);
        return 1;
}

static void server_check(struct config_parse *p, const struct config *cfg, void *conf)
{
        struct config *c = conf;

        check_listen(p, c);
        read_key(p, "server", "signing_secret_file", c->signing_secret_file,
                 "ORDERBRIDGE_SIGNING_SECRET", &c->signing_key, &c->has_signing_key);
        config_read_secret(p, "server", "admin_token_file", c->admin_token_file,
                           "ORDERBRIDGE_ADMIN_TOKEN", &c->admin_token);
        if (c->admin_token && strlen(c->admin_token) < 16)
                config_error(p, config_key_line(p, "server", "admin_token_file"),
                             "[server] admin_token_file: the token must be at least 16 bytes");
}

static void server_free(void *conf)
{
        struct config *c = conf;

        if (c->admin_token)
                explicit_bzero(c->admin_token, strlen(c->admin_token));
        free(c->admin_token);
        free(c->listen_host);
        explicit_bzero(&c->signing_key, sizeof(c->signing_key));
}

/* Why a [store] url may not be used, or NULL. libpq reads a password from the URL's user
 * part or a password= parameter: one there would sit in the config, ps and our logs. */
static const char *store_url_problem(const char *url)
{
        const char *rest, *at;

        if (strlen(url) > 1024)
                return "longer than 1024 bytes";
        if (strncmp(url, "postgresql://", 13) == 0)
                rest = url + 13;
        else if (strncmp(url, "postgres://", 11) == 0)
                rest = url + 11;
        else
                return "must start with postgresql:// (for an SQLite file, use path)";
        for (const char *c = url; *c; c++)
                if ((unsigned char)*c <= ' ' || *c == 0x7f)
                        return "holds a space or a control character";
        at = strchr(rest, '@');
        if ((at && memchr(rest, ':', (size_t)(at - rest))) || strstr(url, "password="))
                return "holds a password: put it in [store] password_file (or "
                       "ORDERBRIDGE_STORE_PASSWORD) instead";
        return NULL;
}

static void store_check(struct config_parse *p, const struct config *cfg, void *conf)
{
        struct config *c = conf;
        char *password = NULL;
        const char *why;

        (void)cfg;
        if (!c->store_url) {
                if (c->store_password_file)
                        config_error(p, config_key_line(p, "store", "password_file"),
                                     "[store] password_file: goes with url (PostgreSQL)");
                return;
        }
        if ((why = store_url_problem(c->store_url))) {
                config_error(p, config_key_line(p, "store", "url"), "[store] url: %s", why);
                return;
        }
        if (config_key_line(p, "store", "path") > 0)
                config_error(p, config_key_line(p, "store", "url"),
                             "[store] url: set path (SQLite) or url (PostgreSQL), not both");
        free(c->store_path);
        c->store_path = xstrdup(c->store_url); /* the location every part opens */
        if (config_read_secret(p, "store", "password_file", c->store_password_file,
                               "ORDERBRIDGE_STORE_PASSWORD", &password) > 0) {
                store_pg_set_password(password);
                explicit_bzero(password, strlen(password));
                free(password);
        }
}

static void site_check(struct config_parse *p, const struct config *cfg, void *conf)
{
        struct config *c = conf;
        char why[400];
        int r;

        if (c->site_id && strlen(c->site_id) > 255)
                config_error(p, config_key_line(p, "site", "id"),
                             "[site] id: longer than 255 bytes");
        if (!c->site_status_url)
                return;
        config_check_url(p, "site", "status_url", c->site_status_url);
        if (!c->site_id)
                config_error(p, config_key_line(p, "site", "status_url"),
                             "[site] status_url: needs [site] id (the site's orders are "
                             "known by it)");
        r = read_key(p, "site", "status_secret_file", c->site_status_secret_file,
                     "ORDERBRIDGE_SITE_STATUS_SECRET", &c->site_status_key,
                     &c->has_site_status_key);
        if (r == 0 && c->has_signing_key) {
                c->site_status_key = c->signing_key; /* [server] is checked before [site] */
                c->has_site_status_key = true;
        } else if (r == 0) {
                config_error(p, config_key_line(p, "site", "status_url"),
                             "[site] status_url: calls to the site are signed: set [site] "
                             "status_secret_file or [server] signing_secret_file");
        }
        /* the way back must be one way: the site sink's map reads [bitrix24.map], which
         * the engine has read by now (checks run once every line is in) */
        if (site_map_check(cfg, why, sizeof(why)) < 0)
                config_error(p, config_key_line(p, "site", "status_url"), "[site] status_url: %s",
                             why);
}

/* "STAGE = STATUS" or "STAGE = @canceled" in [site.map]: the site's order state for a
 * deal stage of the [bitrix24] pipeline, written without its "C<id>:" prefix (INI reads
 * ':' as '='). */
static void site_map_entry(struct config_parse *p, void *conf, const char *subsection,
                           const char *key, const char *value, int line)
{
        struct config *c = conf;

        if (!config_id_like(key, 50) || strchr(key, '@'))
                config_error(p, line, "[%s] %s: the key must be a deal stage id such as WON",
                             subsection, key);
        else if (strcmp(value, "@canceled") != 0 &&
                 (!config_id_like(value, 16) || strchr(value, '@') || strchr(value, ':')))
                config_error(p, line,
                             "[%s] %s: \"%s\" must be a site status code (such as F) or "
                             "@canceled", subsection, key, value);
        else
                status_map_set(&c->site_map, key, value, line);
}

static void site_free(void *conf)
{
        struct config *c = conf;

        explicit_bzero(&c->site_status_key, sizeof(c->site_status_key));
        status_map_clear(&c->site_map);
}

static const struct config_subsection site_subsections[] = {
        {"site.map", site_map_entry,
         "\n[site.map]\n  STAGE = STATUS or STAGE = @canceled: the site order's state when "
         "its deal is moved\n  to STAGE in Bitrix24 (stage ids of the [bitrix24] pipeline, "
         "without \"C<id>:\"). Default:\n  the inverse of [bitrix24.map]; a stage that two "
         "status codes map to must be\n  named here; LOSE (the stage of both C and "
         "@canceled) means \"cancel the order\".\n"},
};

static void log_check(struct config_parse *p, const struct config *cfg, void *conf)
{
        enum log_level lvl;

        if (log_level_parse(cfg->log_level, &lvl) < 0)
                config_error(p, config_key_line(p, "log", "level"),
                             "[log] level = %s: must be debug, info, warn or error",
                             cfg->log_level);
}

static void delivery_check(struct config_parse *p, const struct config *cfg, void *conf)
{
        if (cfg->backoff_min_ms > cfg->backoff_max_ms)
                config_error(p, config_key_line(p, "delivery", "backoff_min_ms"),
                             "[delivery] backoff_min_ms: must not exceed backoff_max_ms");
}

const struct config_section config_core_sections[] = {
        [CONFIG_CORE_SERVER] = {.name = "server", .keys = server_keys, .n_keys = N(server_keys),
         .check = server_check, .free = server_free},
        [CONFIG_CORE_STORE] = {.name = "store", .keys = store_keys, .n_keys = N(store_keys),
         .check = store_check},
        [CONFIG_CORE_SITE] = {.name = "site", .keys = site_keys, .n_keys = N(site_keys), .check = site_check,
         .free = site_free, .subsections = site_subsections,
         .n_subsections = N(site_subsections)},
        [CONFIG_CORE_LOG] = {.name = "log", .keys = log_keys, .n_keys = N(log_keys), .check = log_check},
        [CONFIG_CORE_DELIVERY] = {.name = "delivery", .keys = delivery_keys, .n_keys = N(delivery_keys),
         .check = delivery_check},
};

const size_t config_core_n_sections = N(config_core_sections);
