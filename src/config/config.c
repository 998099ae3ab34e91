/*
 * Configuration: the key table below is the single source of truth for names, types,
 * defaults and limits; `orderbridge check` and `--help` read it too. inih does the INI
 * syntax; we wrap its reader to know the current line number (Debian's build does not
 * pass it to handlers) and to refuse over-long lines instead of splitting them.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base/log.h"
#include "base/xalloc.h"

enum key_type { KEY_STRING, KEY_INT, KEY_BOOL };

struct key {
        const char *section, *name;
        enum key_type type;
        size_t offset;
        const char *def;
        int64_t min, max;
        const char *help;
};

#define S(f) offsetof(struct config, f)
static const struct key keys[] = {
        {"server", "listen", KEY_STRING, S(listen), "127.0.0.1:8088", 0, 0,
         "address:port to accept orders on (loopback unless a proxy fronts it)"},
        {"server", "signing_secret_file", KEY_STRING, S(signing_secret_file), NULL, 0, 0,
         "file holding the shared signing secret, whsec_<base64> (env ORDERBRIDGE_SIGNING_SECRET)"},
        {"server", "max_body_bytes", KEY_INT, S(max_body_bytes), "1048576", 1024, 67108864,
         "largest accepted request body"},
        {"server", "max_connections", KEY_INT, S(max_connections), "512", 4, 65536,
         "concurrent client connections"},
        {"server", "connection_timeout_s", KEY_INT, S(connection_timeout_s), "15", 1, 3600,
         "an idle or slow client is dropped after this many seconds"},
        {"server", "threads", KEY_INT, S(threads), "2", 1, 64, "HTTP worker threads"},
        {"server", "admin_token_file", KEY_STRING, S(admin_token_file), NULL, 0, 0,
         "file holding the bearer token for GET /v1/orders/{id} (env ORDERBRIDGE_ADMIN_TOKEN)"},
        {"store", "path", KEY_STRING, S(store_path), "var/orderbridge.db", 0, 0,
         "SQLite database file (created if missing)"},
        {"site", "id", KEY_STRING, S(site_id), NULL, 0, 0,
         "the shop's id (its host name); snapshots from another site are refused"},
        {"log", "level", KEY_STRING, S(log_level), "info", 0, 0, "debug, info, warn or error"},
        {"delivery", "backoff_min_ms", KEY_INT, S(backoff_min_ms), "1000", 10, 3600000,
         "first retry delay"},
        {"delivery", "backoff_max_ms", KEY_INT, S(backoff_max_ms), "600000", 10, 86400000,
         "longest retry delay"},
        {"delivery", "lifetime_s", KEY_INT, S(lifetime_s), "432000", 1, 31536000,
         "a delivery still failing after this long goes to dead letters (5 days)"},
        {"delivery", "visit_wait_s", KEY_INT, S(visit_wait_s), "600", 1, 86400,
         "re-send delay when Roistat has not seen the visit yet"},
        {"delivery", "visit_wait_max", KEY_INT, S(visit_wait_max), "6", 0, 100,
         "how many times to re-send for an unseen visit"},
        {"delivery", "poll_interval_ms", KEY_INT, S(poll_interval_ms), "1000", 10, 60000,
         "how often the queue is looked at when nothing wakes it"},
        {"delivery", "confirm_after_s", KEY_INT, S(confirm_after_s), "60", 0, 3600,
         "after an attempt whose outcome is unknown, send the latest state once more this "
         "long after, in case the lost request is applied late (0 = never)"},
        {"roistat", "enabled", KEY_BOOL, S(roistat_enabled), "yes", 0, 0,
         "send orders to Roistat (the sink is off when the section is absent)"},
        {"roistat", "url", KEY_STRING, S(roistat_url), "https://cloud.roistat.com/api/v1", 0, 0,
         "API base URL; https unless the host is loopback"},
        {"roistat", "project", KEY_STRING, S(roistat_project), NULL, 0, 0, "project number"},
        {"roistat", "api_key_file", KEY_STRING, S(roistat_api_key_file), NULL, 0, 0,
         "file holding the API key (env ORDERBRIDGE_ROISTAT_API_KEY)"},
        {"roistat", "batch_size", KEY_INT, S(roistat_batch_size), "100", 1, 1000,
         "orders per add-orders request"},
        {"roistat", "timeout_ms", KEY_INT, S(roistat_timeout_ms), "15000", 100, 300000,
         "whole-request timeout"},
        {"roistat", "rate", KEY_INT, S(roistat_rate), "10", 1, 1000,
         "requests per second (Roistat allows 10 per project)"},
        {"roistat", "canceled_price_zero", KEY_BOOL, S(roistat_canceled_zero), "yes", 0, 0,
         "send price 0 for a cancelled order"},
        {"bitrix24", "enabled", KEY_BOOL, S(b24_enabled), "yes", 0, 0,
         "create and update Bitrix24 deals (the sink is off when the section is absent)"},
        {"bitrix24", "webhook_url_file", KEY_STRING, S(b24_webhook_url_file), NULL, 0, 0,
         "file holding the incoming webhook URL https://PORTAL/rest/USER/CODE/ "
         "(env ORDERBRIDGE_BITRIX24_WEBHOOK_URL)"},
        {"bitrix24", "category_id", KEY_INT, S(b24_category_id), "0", 0, 1000000,
         "pipeline (deal category) for new deals; 0 is the default pipeline"},
        {"bitrix24", "roistat_field", KEY_STRING, S(b24_roistat_field), "UF_CRM_ROISTAT", 0, 0,
         "deal field that carries the Roistat visit (empty = none)"},
        {"bitrix24", "rate", KEY_INT, S(b24_rate), "2", 1, 100,
         "requests per second (2 on ordinary plans, 5 on Enterprise)"},
        {"bitrix24", "burst", KEY_INT, S(b24_burst), "50", 1, 1000,
         "requests that may go at once (50; 250 on Enterprise)"},
        {"bitrix24", "timeout_ms", KEY_INT, S(b24_timeout_ms), "30000", 100, 600000,
         "whole-request timeout"},
        {"bitrix24", "orders_per_batch", KEY_INT, S(b24_orders_per_batch), "48", 1, 500,
         "orders handled together (their commands go out in batch calls of at most 50)"},
        {"bitrix24", "deal_title_prefix", KEY_STRING, S(b24_deal_title_prefix), "Order ", 0, 0,
         "deal title = prefix + the order's account number"},
        {"bitrix24", "country_code", KEY_STRING, S(b24_country_code), "7", 0, 0,
         "country code for phones written without one (for matching repeat customers)"},
};
#undef S

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))
#define LINE_MAX_BYTES 1024
#define SECRET_MAX 4096

static const char *const default_statuses[][3] = {
        {"new", "progress", "New"},
        {"confirmed", "paid", "Confirmed"},
        {"canceled", "canceled", "Canceled"},
};

static const char *const default_b24_map[][2] = {
        {"@canceled", "LOSE"}, {"@paid", "EXECUTING"},  {"N", "NEW"},  {"P", "PREPARATION"},
        {"A", "EXECUTING"},    {"D", "FINAL_INVOICE"}, {"F", "WON"}, {"C", "LOSE"},
};

static const char *const default_roistat_map[][2] = {
        {"@canceled", "canceled"}, {"@paid", "confirmed"}, {"N", "new"},      {"P", "new"},
        {"A", "confirmed"},        {"D", "confirmed"},     {"F", "confirmed"}, {"C", "canceled"},
};

struct parse_state {
        struct config *c;
        const char *name;       /* file name for messages */
        FILE *f;                /* when reading a file */
        const char *text;       /* when reading a string */
        int line;
        bool line_too_long;
        int set_line[N_KEYS];   /* where each key was set, 0 = default */
        int roistat_line;       /* line of [roistat], 0 = absent */
        int b24_line;           /* line of [bitrix24], 0 = absent */
        bool statuses_seen;
        char *errors;
        size_t errors_len;
        int n_errors;
};

static void error_at(struct parse_state *ps, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void error_at(struct parse_state *ps, int line, const char *fmt, ...)
{
        char msg[512];
        int n;
        va_list ap;

        if (ps->n_errors++ >= 50)
                return;
        n = line > 0 ? snprintf(msg, sizeof(msg), "%s:%d: ", ps->name, line)
                     : snprintf(msg, sizeof(msg), "%s: ", ps->name);
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
        va_end(ap);
        n = (int)strlen(msg);
        ps->errors = xrealloc(ps->errors, ps->errors_len + (size_t)n + 2);
        memcpy(ps->errors + ps->errors_len, msg, (size_t)n);
        ps->errors_len += (size_t)n;
        ps->errors[ps->errors_len++] = '\n';
        ps->errors[ps->errors_len] = '\0';
}

static bool section_known(const char *name)
{
        for (size_t i = 0; i < N_KEYS; i++)
                if (strcmp(keys[i].section, name) == 0)
                        return true;
        return strcmp(name, "roistat.statuses") == 0 || strcmp(name, "roistat.map") == 0 ||
               strcmp(name, "bitrix24.map") == 0;
}

/* inih calls the handler only for keys, so a section with no keys would pass unseen:
 * notice headers here, so that an empty [roistat] still enables the sink (and asks for
 * its keys) and an empty unknown section is still an error. */
static void note_section(struct parse_state *ps, const char *line)
{
        const char *p = line + strspn(line, " \t");
        size_t n;
        char name[64];

        if (*p != '[')
                return;
        n = strcspn(p + 1, "]");
        if (p[1 + n] != ']' || n == 0 || n >= sizeof(name))
                return; /* inih reports the syntax error */
        memcpy(name, p + 1, n);
        name[n] = '\0';
        if (strcmp(name, "roistat") == 0 && !ps->roistat_line)
                ps->roistat_line = ps->line;
        if (strcmp(name, "bitrix24") == 0 && !ps->b24_line)
                ps->b24_line = ps->line;
        if (!section_known(name))
                error_at(ps, ps->line, "[%s]: unknown section", name);
}

/* inih reader: one line at a time, counting lines and refusing over-long ones. */
static char *reader(char *buf, int size, void *stream)
{
        struct parse_state *ps = stream;
        size_t len;

        if (ps->f) {
                if (!fgets(buf, size, ps->f))
                        return NULL;
        } else {
                const char *nl;
                if (!*ps->text)
                        return NULL;
                nl = strchr(ps->text, '\n');
                len = nl ? (size_t)(nl - ps->text + 1) : strlen(ps->text);
                if (len > (size_t)size - 1)
                        len = (size_t)size - 1;
                memcpy(buf, ps->text, len);
                buf[len] = '\0';
                ps->text += len;
        }
        len = strlen(buf);
        ps->line++;
        note_section(ps, buf);
        if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
                /* swallow the rest of the line; it is reported, not split */
                ps->line_too_long = true;
                error_at(ps, ps->line, "line is longer than %d bytes", LINE_MAX_BYTES);
                if (ps->f) {
                        int ch;
                        while ((ch = fgetc(ps->f)) != EOF && ch != '\n')
                                ;
                } else {
                        const char *nl = strchr(ps->text, '\n');
                        ps->text = nl ? nl + 1 : ps->text + strlen(ps->text);
                }
                buf[0] = ';'; /* hand inih a comment instead */
                buf[1] = '\0';
        }
        return buf;
}

static int parse_bool(const char *v, bool *ret)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};

        for (size_t i = 0; i < 4; i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_int(const char *v, int64_t *ret)
{
        char *end;
        long long n;

        errno = 0;
        if (!*v || (*v != '-' && (*v < '0' || *v > '9')))
                return -EINVAL;
        n = strtoll(v, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = n;
        return 0;
}

static int set_value(struct config *c, const struct key *k, const char *v, char *why,
                     size_t why_size)
{
        void *field = (char *)c + k->offset;
        int64_t n;
        bool b;

        switch (k->type) {
        case KEY_STRING:
                if (strlen(v) > 1000) {
                        snprintf(why, why_size, "is longer than 1000 bytes");
                        return -EINVAL;
                }
                free(*(char **)field);
                *(char **)field = xstrdup(v);
                return 0;
        case KEY_INT:
                if (parse_int(v, &n) < 0) {
                        snprintf(why, why_size, "must be an integer");
                        return -EINVAL;
                }
                if (n < k->min || n > k->max) {
                        snprintf(why, why_size, "must be between %lld and %lld", (long long)k->min,
                                 (long long)k->max);
                        return -EINVAL;
                }
                *(int64_t *)field = n;
                return 0;
        case KEY_BOOL:
                if (parse_bool(v, &b) < 0) {
                        snprintf(why, why_size, "must be yes/no, true/false, on/off or 1/0");
                        return -EINVAL;
                }
                *(bool *)field = b;
                return 0;
        }
        return -EINVAL;
}

static bool id_like(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
                      (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' || *s == ':' ||
                      *s == '@'))
                        return false;
        return true;
}

static void map_set(struct status_map *m, const char *key, const char *value, int line)
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

static void map_clear(struct status_map *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->entries[i].key);
                free(m->entries[i].value);
        }
        free(m->entries);
        m->entries = NULL;
        m->n = 0;
}

static void statuses_clear(struct config *c)
{
        for (size_t i = 0; i < c->n_roistat_statuses; i++) {
                free(c->roistat_statuses[i].id);
                free(c->roistat_statuses[i].type);
                free(c->roistat_statuses[i].name);
        }
        free(c->roistat_statuses);
        c->roistat_statuses = NULL;
        c->n_roistat_statuses = 0;
}

static void status_add(struct config *c, const char *id, const char *type, const char *name)
{
        c->roistat_statuses = xrealloc(c->roistat_statuses,
                                       (c->n_roistat_statuses + 1) * sizeof(*c->roistat_statuses));
        c->roistat_statuses[c->n_roistat_statuses++] = (struct roistat_status){
                xstrdup(id), xstrdup(type), xstrdup(name)};
}

/* "status_id = type, name" in [roistat.statuses] */
static void handle_status(struct parse_state *ps, const char *id, const char *value)
{
        struct config *c = ps->c;
        const char *comma = strchr(value, ',');
        char type[32];
        const char *name;
        size_t tlen;

        if (!ps->statuses_seen) {
                /* set-statuses replaces Roistat's whole list, so a configured list replaces
                 * the defaults rather than merging with them */
                statuses_clear(c);
                ps->statuses_seen = true;
        }
        if (!id_like(id, 64)) {
                error_at(ps, ps->line, "[roistat.statuses] %s: a status id may contain only "
                         "letters, digits, '-' and '_'", id);
                return;
        }
        tlen = comma ? (size_t)(comma - value) : strlen(value);
        while (tlen > 0 && value[tlen - 1] == ' ')
                tlen--;
        if (tlen >= sizeof(type))
                tlen = sizeof(type) - 1;
        memcpy(type, value, tlen);
        type[tlen] = '\0';
        if (strcmp(type, "progress") && strcmp(type, "paid") && strcmp(type, "canceled") &&
            strcmp(type, "unused")) {
                error_at(ps, ps->line,
                         "[roistat.statuses] %s: type must be progress, paid, canceled or "
                         "unused (as in \"%s = progress, New\")", id, id);
                return;
        }
        name = comma ? comma + 1 : id;
        while (*name == ' ')
                name++;
        if (!*name || strlen(name) > 128) {
                error_at(ps, ps->line, "[roistat.statuses] %s: the name must be 1-128 bytes", id);
                return;
        }
        if (config_roistat_status(c, id)) {
                error_at(ps, ps->line, "[roistat.statuses] %s: defined twice", id);
                return;
        }
        status_add(c, id, type, name);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
        struct parse_state *ps = user;
        char why[160];

        if (strcmp(section, "roistat.statuses") == 0) {
                handle_status(ps, name, value);
                return 1;
        }
        if (strcmp(section, "roistat.map") == 0 || strcmp(section, "bitrix24.map") == 0) {
                struct status_map *m = section[0] == 'r' ? &ps->c->roistat_map : &ps->c->b24_map;
                if (!id_like(name, 16) || (name[0] == '@' && strcmp(name, "@canceled") &&
                                           strcmp(name, "@paid")))
                        error_at(ps, ps->line,
                                 "[%s] %s: the key must be a site status code, "
                                 "@canceled or @paid", section, name);
                else if (!id_like(value, 64))
                        error_at(ps, ps->line, "[%s] %s: \"%s\" is not a status or stage id",
                                 section, name, value);
                else
                        map_set(m, name, value, ps->line);
                return 1;
        }
        for (size_t i = 0; i < N_KEYS; i++) {
                if (strcmp(keys[i].section, section) || strcmp(keys[i].name, name))
                        continue;
                if (set_value(ps->c, &keys[i], value, why, sizeof(why)) < 0)
                        error_at(ps, ps->line, "[%s] %s = %s: %s", section, name,
                                 keys[i].type == KEY_STRING ? "…" : value, why);
                ps->set_line[i] = ps->line;
                return 1;
        }
        if (!section[0])
                error_at(ps, ps->line, "%s: a key outside any [section]", name);
        else if (section_known(section))
                error_at(ps, ps->line, "[%s] %s: unknown key", section, name);
        /* an unknown section was reported once, at its header */
        return 1;
}

static int line_of(const struct parse_state *ps, const char *section, const char *name)
{
        for (size_t i = 0; i < N_KEYS; i++)
                if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
                        return ps->set_line[i];
        return 0;
}

/* Reads a secret: the first line of a file, without its line end, at most SECRET_MAX. */
static int read_secret(struct parse_state *ps, const char *key_desc, int line, const char *path,
                       const char *env, char **ret)
{
        char buf[SECRET_MAX + 2];
        struct stat st;
        ssize_t n;
        int fd;

        if (!path) {
                const char *e = env ? getenv(env) : NULL;
                if (!e || !*e)
                        return 0;
                if (strlen(e) > SECRET_MAX) {
                        error_at(ps, 0, "environment %s is longer than %d bytes", env, SECRET_MAX);
                        return -EINVAL;
                }
                *ret = xstrdup(e);
                return 1;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                error_at(ps, line, "%s: cannot open %s: %s", key_desc, path, strerror(errno));
                return -errno;
        }
        if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH))
                log_warn("config.secret_readable", "file=%s hint=\"chmod o-r\"", path);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n < 0 || n > SECRET_MAX) {
                error_at(ps, line, "%s: %s is unreadable or longer than %d bytes", key_desc, path,
                         SECRET_MAX);
                return -EINVAL;
        }
        buf[n] = '\0';
        n = (ssize_t)strcspn(buf, "\r\n"); /* the first line only */
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                n--;
        buf[n] = '\0';
        if (!buf[0]) {
                error_at(ps, line, "%s: %s is empty", key_desc, path);
                return -EINVAL;
        }
        *ret = xstrdup(buf);
        explicit_bzero(buf, sizeof(buf));
        return 1;
}

static bool host_is_loopback(const char *host)
{
        struct in_addr a4;
        struct in6_addr a6;

        if (strcmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

/* https://host[:port]/path, or http:// when host is loopback. */
static int check_url(struct parse_state *ps, const char *section, const char *key,
                     const char *url)
{
        const char *host, *end;
        char h[256];
        bool https = strncmp(url, "https://", 8) == 0;

        if (!https && strncmp(url, "http://", 7) != 0) {
                error_at(ps, line_of(ps, section, key), "[%s] %s: must start with https://",
                         section, key);
                return -EINVAL;
        }
        host = url + (https ? 8 : 7);
        if (*host == '[') {
                end = strchr(host, ']');
                if (!end) {
                        error_at(ps, line_of(ps, section, key), "[%s] %s: bad IPv6 host",
                                 section, key);
                        return -EINVAL;
                }
                host++;
        } else {
                end = host + strcspn(host, ":/?#");
        }
        if (end == host || (size_t)(end - host) >= sizeof(h) || strpbrk(url, " \t\r\n")) {
                error_at(ps, line_of(ps, section, key), "[%s] %s: has no valid host", section,
                         key);
                return -EINVAL;
        }
        memcpy(h, host, (size_t)(end - host));
        h[end - host] = '\0';
        if (!https && !host_is_loopback(h)) {
                error_at(ps, line_of(ps, section, key),
                         "[%s] %s: must be https:// unless the host is a loopback address",
                         section, key);
                return -EINVAL;
        }
        return 0;
}

static int check_listen(struct parse_state *ps)
{
        struct config *c = ps->c;
        const char *colon = strrchr(c->listen, ':');
        int64_t port;
        size_t hlen;

        if (!colon || parse_int(colon + 1, &port) < 0 || port < 0 || port > 65535) {
                error_at(ps, line_of(ps, "server", "listen"),
                         "[server] listen = %s: must be address:port, e.g. 127.0.0.1:8088",
                         c->listen);
                return -EINVAL;
        }
        hlen = (size_t)(colon - c->listen);
        if (hlen >= 2 && c->listen[0] == '[' && c->listen[hlen - 1] == ']') {
                c->listen_host = xstrndup(c->listen + 1, hlen - 2);
        } else if (memchr(c->listen, ':', hlen)) {
                error_at(ps, line_of(ps, "server", "listen"),
                         "[server] listen = %s: write an IPv6 address in brackets, e.g. "
                         "[::1]:8088", c->listen);
                return -EINVAL;
        } else {
                c->listen_host = xstrndup(c->listen, hlen);
        }
        c->listen_port = (uint16_t)port;
        {
                struct in_addr a4;
                struct in6_addr a6;
                if (inet_pton(AF_INET, c->listen_host, &a4) != 1 &&
                    inet_pton(AF_INET6, c->listen_host, &a6) != 1) {
                        error_at(ps, line_of(ps, "server", "listen"),
                                 "[server] listen = %s: the address must be numeric IPv4 or "
                                 "[IPv6]", c->listen);
                        return -EINVAL;
                }
        }
        return 0;
}

static void check_b24(struct parse_state *ps);

static void check_all(struct parse_state *ps)
{
        struct config *c = ps->c;
        char *secret = NULL;
        enum log_level lvl;
        int r;

        if (log_level_parse(c->log_level, &lvl) < 0)
                error_at(ps, line_of(ps, "log", "level"),
                         "[log] level = %s: must be debug, info, warn or error", c->log_level);
        check_listen(ps);
        if (c->backoff_min_ms > c->backoff_max_ms)
                error_at(ps, line_of(ps, "delivery", "backoff_min_ms"),
                         "[delivery] backoff_min_ms: must not exceed backoff_max_ms");
        if (c->site_id && strlen(c->site_id) > 255)
                error_at(ps, line_of(ps, "site", "id"), "[site] id: longer than 255 bytes");

        r = read_secret(ps, "[server] signing_secret_file", line_of(ps, "server",
                        "signing_secret_file"), c->signing_secret_file,
                        "ORDERBRIDGE_SIGNING_SECRET", &secret);
        if (r > 0) {
                if (signature_key_parse(secret, &c->signing_key) < 0)
                        error_at(ps, line_of(ps, "server", "signing_secret_file"),
                                 "[server] signing_secret_file: the secret must be whsec_ "
                                 "followed by base64 of %d-%d random bytes",
                                 SIGNATURE_KEY_MIN, SIGNATURE_KEY_MAX);
                else
                        c->has_signing_key = true;
                explicit_bzero(secret, strlen(secret));
                free(secret);
        }
        read_secret(ps, "[server] admin_token_file", line_of(ps, "server", "admin_token_file"),
                    c->admin_token_file, "ORDERBRIDGE_ADMIN_TOKEN", &c->admin_token);
        if (c->admin_token && strlen(c->admin_token) < 16)
                error_at(ps, line_of(ps, "server", "admin_token_file"),
                         "[server] admin_token_file: the token must be at least 16 bytes");

        /* a sink whose section is absent is disabled */
        if (!ps->roistat_line)
                c->roistat_enabled = false;
        if (c->roistat_enabled) {
                check_url(ps, "roistat", "url", c->roistat_url);
                if (!c->roistat_project)
                        error_at(ps, ps->roistat_line,
                                 "[roistat] project: required when Roistat is enabled");
                else if (strspn(c->roistat_project, "0123456789") != strlen(c->roistat_project) ||
                         strlen(c->roistat_project) > 12)
                        error_at(ps, line_of(ps, "roistat", "project"),
                                 "[roistat] project: must be the project number");
                r = read_secret(ps, "[roistat] api_key_file", line_of(ps, "roistat",
                                "api_key_file"), c->roistat_api_key_file,
                                "ORDERBRIDGE_ROISTAT_API_KEY", &c->roistat_api_key);
                if (r == 0)
                        error_at(ps, ps->roistat_line,
                                 "[roistat] api_key_file: required when Roistat is enabled "
                                 "(or set ORDERBRIDGE_ROISTAT_API_KEY)");
                else if (r > 0 && strpbrk(c->roistat_api_key, " \t\r\n"))
                        error_at(ps, line_of(ps, "roistat", "api_key_file"),
                                 "[roistat] api_key_file: the key must not contain spaces");
                if (c->n_roistat_statuses == 0)
                        error_at(ps, ps->roistat_line,
                                 "[roistat.statuses]: at least one status is required");
                for (size_t i = 0; i < c->roistat_map.n; i++)
                        if (!config_roistat_status(c, c->roistat_map.entries[i].value))
                                error_at(ps, c->roistat_map.entries[i].line,
                                         "[roistat.map] %s = %s: no such status in "
                                         "[roistat.statuses]",
                                         c->roistat_map.entries[i].key,
                                         c->roistat_map.entries[i].value);
        }
        if (!ps->b24_line)
                c->b24_enabled = false;
        if (c->b24_enabled)
                check_b24(ps);
}

/* https://portal/rest/<user id>/<code>/ (a trailing slash is added when missing) */
static void check_b24(struct parse_state *ps)
{
        struct config *c = ps->c;
        int line = line_of(ps, "bitrix24", "webhook_url_file");
        const char *rest;
        size_t n;
        int r;

        if (!c->site_id)
                error_at(ps, ps->b24_line, "[site] id: required when Bitrix24 is enabled (deals "
                         "carry it as ORIGINATOR_ID)");
        r = read_secret(ps, "[bitrix24] webhook_url_file", line, c->b24_webhook_url_file,
                        "ORDERBRIDGE_BITRIX24_WEBHOOK_URL", &c->b24_webhook_url);
        if (r == 0) {
                error_at(ps, ps->b24_line, "[bitrix24] webhook_url_file: required when Bitrix24 "
                         "is enabled (or set ORDERBRIDGE_BITRIX24_WEBHOOK_URL)");
                return;
        }
        if (r < 0)
                return;
        n = strlen(c->b24_webhook_url);
        if (c->b24_webhook_url[n - 1] != '/') {
                c->b24_webhook_url = xrealloc(c->b24_webhook_url, n + 2);
                memcpy(c->b24_webhook_url + n, "/", 2);
        }
        rest = strstr(c->b24_webhook_url, "/rest/");
        /* the URL itself is a secret: name the file, never print the value */
        if (!rest || strspn(rest + 6, "0123456789") == 0 || rest[6 + strspn(rest + 6,
                                                                        "0123456789")] != '/' ||
            strpbrk(c->b24_webhook_url, " \t\r\n?#")) {
                error_at(ps, line, "[bitrix24] webhook_url_file: the file must hold the "
                         "incoming webhook URL, https://PORTAL/rest/USER_ID/CODE/");
                return;
        }
        check_url(ps, "bitrix24", "webhook_url_file", c->b24_webhook_url);
        if (c->b24_roistat_field[0] && (strncmp(c->b24_roistat_field, "UF_CRM_", 7) != 0 ||
                                         !id_like(c->b24_roistat_field, 64)))
                error_at(ps, line_of(ps, "bitrix24", "roistat_field"),
                         "[bitrix24] roistat_field: must be a deal user field code, UF_CRM_…");
        if (strspn(c->b24_country_code, "0123456789") != strlen(c->b24_country_code) ||
            strlen(c->b24_country_code) < 1 || strlen(c->b24_country_code) > 4)
                error_at(ps, line_of(ps, "bitrix24", "country_code"),
                         "[bitrix24] country_code: 1-4 digits, e.g. 7");
        if (strlen(c->b24_deal_title_prefix) > 100)
                error_at(ps, line_of(ps, "bitrix24", "deal_title_prefix"),
                         "[bitrix24] deal_title_prefix: at most 100 bytes");
}

int config_b24_stage(const struct config *c, const char *status, bool canceled, bool paid,
                     char *buf, size_t size)
{
        const char *v = status_map_lookup(&c->b24_map, status, canceled, paid);

        if (!v)
                return -ENOENT;
        if (c->b24_category_id > 0 && !strchr(v, ':'))
                snprintf(buf, size, "C%lld:%s", (long long)c->b24_category_id, v);
        else
                snprintf(buf, size, "%s", v);
        return 0;
}

static struct config *config_defaults(void)
{
        struct config *c = xcalloc(1, sizeof(*c));
        char why[160];

        for (size_t i = 0; i < N_KEYS; i++)
                if (keys[i].def && set_value(c, &keys[i], keys[i].def, why, sizeof(why)) < 0)
                        abort(); /* a default outside its own limits is a programming error */
        for (size_t i = 0; i < sizeof(default_statuses) / sizeof(default_statuses[0]); i++)
                status_add(c, default_statuses[i][0], default_statuses[i][1],
                           default_statuses[i][2]);
        for (size_t i = 0; i < sizeof(default_roistat_map) / sizeof(default_roistat_map[0]); i++)
                map_set(&c->roistat_map, default_roistat_map[i][0], default_roistat_map[i][1], 0);
        for (size_t i = 0; i < sizeof(default_b24_map) / sizeof(default_b24_map[0]); i++)
                map_set(&c->b24_map, default_b24_map[i][0], default_b24_map[i][1], 0);
        return c;
}

static int finish(struct parse_state *ps, int ini_result, struct config **ret, char **ret_errors)
{
        if (ini_result > 0 && !ps->line_too_long)
                error_at(ps, ini_result, "syntax error (expected [section] or key = value)");
        else if (ini_result < 0)
                error_at(ps, 0, "cannot read the file");
        if (ps->n_errors == 0)
                check_all(ps);
        if (ps->n_errors > 0) {
                *ret_errors = ps->errors;
                config_free(ps->c);
                return -EINVAL;
        }
        free(ps->errors);
        *ret = ps->c;
        *ret_errors = NULL;
        return 0;
}

/* Debian's inih takes its line limit at run time; ours is LINE_MAX_BYTES. */
static void ini_limits(void)
{
        ini_use_stack = false;
        ini_allow_realloc = false;
        ini_max_line = LINE_MAX_BYTES + 2; /* the line, its '\n' and the '\0' */
        ini_initial_alloc = ini_max_line;
}

int config_load(const char *path, struct config **ret, char **ret_errors)
{
        struct parse_state ps = {.name = path};
        char *buf;
        int r;

        ps.f = fopen(path, "re");
        if (!ps.f) {
                r = -errno;
                buf = xmalloc(PATH_MAX + 128);
                snprintf(buf, PATH_MAX + 128, "%s: cannot open: %s\n", path, strerror(errno));
                *ret_errors = buf;
                return r;
        }
        ini_limits();
        ps.c = config_defaults();
        ps.c->path = xstrdup(path);
        r = ini_parse_stream(reader, &ps, handler, &ps);
        fclose(ps.f);
        return finish(&ps, r, ret, ret_errors);
}

int config_load_string(const char *text, const char *name, struct config **ret,
                       char **ret_errors)
{
        struct parse_state ps = {.name = name, .text = text};

        ini_limits();
        ps.c = config_defaults();
        ps.c->path = xstrdup(name);
        return finish(&ps, ini_parse_stream(reader, &ps, handler, &ps), ret, ret_errors);
}

struct config *config_free(struct config *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < N_KEYS; i++)
                if (keys[i].type == KEY_STRING)
                        free(*(char **)((char *)c + keys[i].offset));
        if (c->admin_token)
                explicit_bzero(c->admin_token, strlen(c->admin_token));
        if (c->roistat_api_key)
                explicit_bzero(c->roistat_api_key, strlen(c->roistat_api_key));
        free(c->admin_token);
        free(c->roistat_api_key);
        free(c->listen_host);
        free(c->path);
        statuses_clear(c);
        map_clear(&c->roistat_map);
        map_clear(&c->b24_map);
        if (c->b24_webhook_url)
                explicit_bzero(c->b24_webhook_url, strlen(c->b24_webhook_url));
        free(c->b24_webhook_url);
        explicit_bzero(&c->signing_key, sizeof(c->signing_key));
        free(c);
        return NULL;
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

size_t config_sinks(const struct config *c, const char *ret_names[2])
{
        size_t n = 0;

        if (c->roistat_enabled)
                ret_names[n++] = "roistat";
        if (c->b24_enabled)
                ret_names[n++] = "bitrix24";
        return n;
}

const struct roistat_status *config_roistat_status(const struct config *c, const char *id)
{
        for (size_t i = 0; i < c->n_roistat_statuses; i++)
                if (strcmp(c->roistat_statuses[i].id, id) == 0)
                        return &c->roistat_statuses[i];
        return NULL;
}

void config_print_keys(FILE *f)
{
        const char *section = "";

        for (size_t i = 0; i < N_KEYS; i++) {
                if (strcmp(section, keys[i].section)) {
                        section = keys[i].section;
                        fprintf(f, "\n[%s]\n", section);
                }
                fprintf(f, "  %-22s %s", keys[i].name, keys[i].help);
                if (keys[i].def)
                        fprintf(f, " (default %s)", keys[i].def);
                if (keys[i].type == KEY_INT)
                        fprintf(f, " [%lld..%lld]", (long long)keys[i].min, (long long)keys[i].max);
                fputc('\n', f);
        }
        fputs("\n[roistat.statuses]\n  <status_id> = <progress|paid|canceled|unused>, <name>\n"
              "  (replaces the defaults: new = progress, New; confirmed = paid, Confirmed; "
              "canceled = canceled, Canceled)\n"
              "\n[roistat.map]\n  <site status code | @canceled | @paid> = <status_id>\n"
              "  (merged over the defaults: @canceled=canceled @paid=confirmed N=new P=new "
              "A=confirmed D=confirmed F=confirmed C=canceled)\n"
              "\n[bitrix24.map]\n  <site status code | @canceled | @paid> = <deal stage id>\n"
              "  (merged over the defaults: @canceled=LOSE @paid=EXECUTING N=NEW P=PREPARATION "
              "A=EXECUTING D=FINAL_INVOICE F=WON C=LOSE;\n   \"C<category_id>:\" is prepended "
              "for another pipeline unless the value has a prefix)\n",
              f);
}
