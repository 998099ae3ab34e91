/*
 * The configuration engine: it knows no key by name. The sections it reads are the core
 * ones (config/core.c) and then each sink kind's (sinks/registry.c), so a sink's keys,
 * defaults and checks live with the sink. The sections' key tables are the single source
 * of truth for names, types, defaults and limits; `orderbridge check` and `--keys` read
 * them too. inih does the INI syntax; we wrap its reader to know the current line number
 * (Debian's build does not pass it to handlers) and to refuse over-long lines instead of
 * splitting them. The sections' checks run even when some lines were refused, so that
 * `orderbridge check` reports every problem in one pass; only a section with a refused
 * value of its own is not checked (its check would see the default, not what the operator
 * wrote), and nothing is checked after a syntax error or an over-long line.
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

#include <curl/curl.h>
#include <ini.h>
#include <jansson.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "config/core.h"
#include "model/statusmap.h"
#include "sinks/registry.h"
#include "sources/registry.h"

#define LINE_MAX_BYTES 1024
#define SECRET_MAX 4096
#define STRING_MAX 1000
#define ERRORS_MAX 50
/* one message: room for a key file's name twice (the file, then the chmod to run) */
#define MSG_MAX (2 * STRING_MAX + 512)
/* a file name longer than this is shown by its end: "…/etc/orderbridge.conf:3: " */
#define NAME_SHOWN 200

struct config_part {
        const struct config_section *section;
        void *conf;   /* the module's struct, or the struct config for a core section */
        bool enabled;
        int *key_line; /* once loaded: per key, where it was set (0 = default) */
};

struct config_parse {
        struct config *c;
        const char *name;  /* file name for messages */
        FILE *f;           /* when reading a file */
        const char *text;  /* when reading a string */
        int line;
        bool line_too_long;
        char raw[LINE_MAX_BYTES + 2]; /* the current line as the reader gave it to inih */
        int *header_line;  /* per part: line of its [section] header, 0 = absent */
        int **key_line;    /* per part, per key: where it was set, 0 = default */
        bool *refused;     /* per part: one of its values (or subsection lines) was refused */
        struct buf errors; /* every problem, a line each (at most ERRORS_MAX) */
        int n_errors;
};

/* --- the sections ----------------------------------------------------------------------- */

/* The i-th row of the core's, then the sinks', then the sources' tables. */
static const struct config_section *row_at(size_t i)
{
        if (i < config_core_n_sections)
                return &config_core_sections[i];
        i -= config_core_n_sections;
        if (i < sink_registry_count())
                return sink_registry_get(i)->section;
        return source_registry_get(i - sink_registry_count())->section;
}

static size_t n_rows(void)
{
        return config_core_n_sections + sink_registry_count() + source_registry_count();
}

/* Whether row i names a section that an earlier row named already: a source may read
 * its sink's section (the Bitrix24 poller reads [bitrix24]), which is still one section. */
static bool row_repeats(size_t i)
{
        for (size_t j = 0; j < i; j++)
                if (row_at(j) == row_at(i))
                        return true;
        return false;
}

static size_t n_sections(void)
{
        size_t n = 0;

        for (size_t i = 0; i < n_rows(); i++)
                n += !row_repeats(i);
        return n;
}

/* The i-th distinct section, in the tables' order. */
static const struct config_section *section_at(size_t i)
{
        for (size_t r = 0; r < n_rows(); r++)
                if (!row_repeats(r) && i-- == 0)
                        return row_at(r);
        return NULL;
}

static struct config_part *part_find(const struct config *c, const char *name, size_t *ret_i)
{
        for (size_t i = 0; i < c->n_parts; i++)
                if (strcmp(c->parts[i].section->name, name) == 0) {
                        if (ret_i)
                                *ret_i = i;
                        return &c->parts[i];
                }
        return NULL;
}

static const struct config_key *key_find(const struct config_section *s, const char *name,
                                         size_t *ret_i)
{
        for (size_t i = 0; i < s->n_keys; i++)
                if (strcmp(s->keys[i].name, name) == 0) {
                        if (ret_i)
                                *ret_i = i;
                        return &s->keys[i];
                }
        return NULL;
}

/* "[name]", or "[name ARG]" for a family ("name *", config.h): ARG is one word. */
static bool subsection_matches(const struct config_subsection *sub, const char *section)
{
        size_t n = strlen(sub->name);

        if (n < 2 || strcmp(sub->name + n - 2, " *") != 0)
                return strcmp(sub->name, section) == 0;
        n -= 1; /* "name " */
        return strncmp(sub->name, section, n) == 0 && section[n] && !strchr(section + n, ' ');
}

static const struct config_subsection *subsection_find(const struct config *c, const char *name,
                                                       struct config_part **ret_owner)
{
        for (size_t i = 0; i < c->n_parts; i++) {
                const struct config_section *s = c->parts[i].section;
                for (size_t j = 0; j < s->n_subsections; j++)
                        if (subsection_matches(&s->subsections[j], name)) {
                                *ret_owner = &c->parts[i];
                                return &s->subsections[j];
                        }
        }
        return NULL;
}

static bool section_known(const struct config *c, const char *name)
{
        struct config_part *owner;

        return part_find(c, name, NULL) || subsection_find(c, name, &owner);
}

const void *config_section_data(const struct config *cfg, const char *name)
{
        struct config_part *p = part_find(cfg, name, NULL);

        return p ? p->conf : NULL;
}

const void *config_section(const struct config *cfg, const char *name)
{
        struct config_part *p = part_find(cfg, name, NULL);

        return p && p->enabled ? p->conf : NULL;
}

/* --- reporting -------------------------------------------------------------------------- */

/* The end of a long file name, where the part that tells files apart usually is; never
 * starting inside a UTF-8 sequence. */
static const char *name_tail(const char *name, const char **ret_ellipsis)
{
        size_t n = strlen(name);

        *ret_ellipsis = "";
        if (n <= NAME_SHOWN)
                return name;
        name += n - NAME_SHOWN;
        for (int i = 0; i < 3 && ((unsigned char)*name & 0xC0) == 0x80; i++)
                name++; /* a UTF-8 character has at most 3 continuation bytes */
        *ret_ellipsis = "…";
        return name;
}

void config_error(struct config_parse *p, int line, const char *fmt, ...)
{
        char msg[MSG_MAX];
        const char *ellipsis, *name = name_tail(p->name, &ellipsis);
        int n;
        va_list ap;

        if (p->n_errors++ >= ERRORS_MAX)
                return;
        n = line > 0 ? snprintf(msg, sizeof(msg), "%s%s:%d: ", ellipsis, name, line)
                     : snprintf(msg, sizeof(msg), "%s%s: ", ellipsis, name);
        /* snprintf returns the length it wanted, not what it wrote: never an offset
         * unchecked (a 4,000-byte -c path once sent the text past the end of msg) */
        if (n < 0)
                n = 0;
        if ((size_t)n >= sizeof(msg))
                n = (int)sizeof(msg) - 1;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
        va_end(ap);
        buf_printf(&p->errors, "%s\n", msg); /* bounded: ERRORS_MAX lines of msg's size */
}

int config_key_line(const struct config_parse *p, const char *section, const char *key)
{
        size_t pi, ki;

        if (!part_find(p->c, section, &pi) || !key_find(p->c->parts[pi].section, key, &ki))
                return 0;
        return p->key_line[pi][ki];
}

int config_line(const struct config *cfg, const char *section, const char *key)
{
        size_t pi, ki;

        if (!part_find(cfg, section, &pi) || !key_find(cfg->parts[pi].section, key, &ki) ||
            !cfg->parts[pi].key_line)
                return 0;
        return cfg->parts[pi].key_line[ki];
}

int config_section_line(const struct config_parse *p, const char *section)
{
        size_t pi;

        return part_find(p->c, section, &pi) ? p->header_line[pi] : 0;
}

/* --- reading ---------------------------------------------------------------------------- */

/* inih calls the handler only for keys, so a section with no keys would pass unseen:
 * notice headers here, so that an empty [roistat] still enables the sink (and asks for
 * its keys) and an empty unknown section is still an error. */
static void note_section(struct config_parse *p, const char *line)
{
        const char *s = line + strspn(line, " \t");
        size_t n, pi;
        char name[64];

        if (*s != '[')
                return;
        n = strcspn(s + 1, "]");
        if (s[1 + n] != ']' || n == 0 || n >= sizeof(name))
                return; /* inih reports the syntax error */
        memcpy(name, s + 1, n);
        name[n] = '\0';
        if (part_find(p->c, name, &pi)) {
                if (!p->header_line[pi])
                        p->header_line[pi] = p->line;
        } else if (!section_known(p->c, name)) {
                config_error(p, p->line, "[%s]: unknown section", name);
        }
}

/* inih reader: one line at a time, counting lines and refusing over-long ones. */
static char *reader(char *buf, int size, void *stream)
{
        struct config_parse *p = stream;
        size_t len;

        if (p->f) {
                if (!fgets(buf, size, p->f))
                        return NULL;
        } else {
                const char *nl;
                if (!*p->text)
                        return NULL;
                nl = strchr(p->text, '\n');
                len = nl ? (size_t)(nl - p->text + 1) : strlen(p->text);
                if (len > (size_t)size - 1)
                        len = (size_t)size - 1;
                memcpy(buf, p->text, len);
                buf[len] = '\0';
                p->text += len;
        }
        len = strlen(buf);
        p->line++;
        note_section(p, buf);
        snprintf(p->raw, sizeof(p->raw), "%s", buf);
        if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
                /* swallow the rest of the line; it is reported, not split */
                p->line_too_long = true;
                config_error(p, p->line, "line is longer than %d bytes", LINE_MAX_BYTES);
                if (p->f) {
                        int ch;
                        while ((ch = fgetc(p->f)) != EOF && ch != '\n')
                                ;
                } else {
                        const char *nl = strchr(p->text, '\n');
                        p->text = nl ? nl + 1 : p->text + strlen(p->text);
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

static int set_value(void *conf, const struct config_key *k, const char *v, char *why,
                     size_t why_size)
{
        void *field = (char *)conf + k->offset;
        int64_t n;
        bool b;

        switch (k->type) {
        case CONFIG_STRING:
                if (strlen(v) > STRING_MAX) {
                        snprintf(why, why_size, "is longer than %d bytes", STRING_MAX);
                        return -EINVAL;
                }
                free(*(char **)field);
                *(char **)field = xstrdup(v);
                return 0;
        case CONFIG_INT:
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
        case CONFIG_BOOL:
                if (parse_bool(v, &b) < 0) {
                        snprintf(why, why_size, "must be yes/no, true/false, on/off or 1/0");
                        return -EINVAL;
                }
                *(bool *)field = b;
                return 0;
        }
        return -EINVAL;
}

/* Whether `s` is UTF-8 text, as jansson (which every value ends up in) requires. */
static bool utf8_text(const char *s)
{
        json_t *j = json_string(s);

        json_decref(j);
        return j != NULL;
}

/* inih splits a line at its first '=' or ':' (both are its delimiters, fixed when it is
 * built), so "C1:WON = won" comes as the name "C1" and the value "WON = won". A
 * subsection's keys may be Bitrix24 stage ids, which hold ':' ([roistat.stage_map]): when
 * the raw line shows that inih split at a ':', the key is the raw text up to the first '='
 * and the value what follows that '=' in inih's value (which inih has already stripped of
 * blanks and inline comments). 0 with *name and *value set (`key` holds the name), or -1
 * after reporting a line without '='. */
static int subsection_key(struct config_parse *p, const char *section, const char **name,
                          const char **value, char *key, size_t key_size)
{
        const char *s = p->raw + strspn(p->raw, " \t");
        size_t n = strlen(*name), klen;
        const char *eq;

        if (strncmp(s, *name, n) != 0 || s[n + strspn(s + n, " \t")] != ':')
                return 0; /* split at '=' (or a continuation line): as inih gave it */
        eq = strchr(*value, '=');
        if (!eq || !strchr(s, '=')) {
                config_error(p, p->line, "[%s] %s: expected KEY = VALUE (the key ends at the "
                             "first '=')", section, *name);
                return -1;
        }
        klen = (size_t)(strchr(s, '=') - s);
        while (klen > 0 && (s[klen - 1] == ' ' || s[klen - 1] == '\t'))
                klen--;
        if (klen >= key_size)
                klen = key_size - 1;
        memcpy(key, s, klen);
        key[klen] = '\0';
        *name = key;
        *value = eq + 1 + strspn(eq + 1, " \t");
        return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
        struct config_parse *p = user;
        const struct config_subsection *sub;
        const struct config_key *k;
        struct config_part *part;
        char why[160];
        size_t pi, ki;

        /* names, titles and status names go to the remotes as JSON: a file saved in
         * another encoding (cp1251 by a Windows editor) is refused here, at its line, not
         * at the first delivery; the value is not echoed (it may be a secret's path) */
        if (!utf8_text(section) || !utf8_text(name) || !utf8_text(value)) {
                config_error(p, p->line, "[%s] %s: not UTF-8 text (save the file as UTF-8)",
                             utf8_text(section) ? section : "?",
                             utf8_text(name) ? name : "?");
                return 1;
        }
        part = part_find(p->c, section, &pi);
        if (part) {
                k = key_find(part->section, name, &ki);
                if (!k) {
                        config_error(p, p->line, "[%s] %s: unknown key", section, name);
                        return 1;
                }
                /* a string may be a path or a misplaced secret: never echo it */
                if (set_value(part->conf, k, value, why, sizeof(why)) < 0) {
                        config_error(p, p->line, "[%s] %s = %s: %s", section, name,
                                     k->type == CONFIG_STRING ? "…" : value, why);
                        p->refused[pi] = true;
                }
                p->key_line[pi][ki] = p->line;
                return 1;
        }
        sub = subsection_find(p->c, section, &part);
        if (sub) {
                char key[LINE_MAX_BYTES + 2];
                int before = p->n_errors;

                if (subsection_key(p, section, &name, &value, key, sizeof(key)) == 0)
                        sub->entry(p, part->conf, section, name, value, p->line);
                if (p->n_errors > before)
                        p->refused[part - p->c->parts] = true;
                return 1;
        }
        if (!section[0])
                config_error(p, p->line, "%s: a key outside any [section]", name);
        /* an unknown section was reported once, at its header */
        return 1;
}

/* --- helpers for the sections' checks --------------------------------------------------- */

/* The secret in the file at `path` (`what` names it in messages: the path, or the
 * credential): 1 and *ret, a negative errno after reporting, or 0 when `missing_ok` and
 * there is no such file. */
static int read_secret_file(struct config_parse *p, int line, const char *section,
                            const char *key, const char *path, const char *what,
                            bool missing_ok, char **ret)
{
        char buf[SECRET_MAX + 2];
        struct stat st;
        ssize_t n;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int e = errno;
                if (e == ENOENT && missing_ok)
                        return 0;
                config_error(p, line, "[%s] %s: cannot open %s: %s", section, key, what,
                             strerror(e));
                return -e;
        }
        /* a key others can read is a key others have; one they can write is theirs to
         * choose (a signing secret they set lets them sign orders): refused, not warned
         * about, with the command that fixes it */
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                config_error(p, line, "[%s] %s: cannot stat %s: %s", section, key, what,
                             strerror(e));
                return -e;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                config_error(p, line, "[%s] %s: %s is not a regular file", section, key, what);
                return -EINVAL;
        }
        if (st.st_mode & S_IRWXO) {
                close(fd);
                config_error(p, line,
                             "[%s] %s: %s is open to other users (mode %04o); run: "
                             "chmod 600 %s",
                             section, key, what, (unsigned)(st.st_mode & 07777), path);
                return -EACCES;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n < 0 || n > SECRET_MAX) {
                config_error(p, line, "[%s] %s: %s is unreadable or longer than %d bytes",
                             section, key, what, SECRET_MAX);
                explicit_bzero(buf, sizeof(buf));
                return -EINVAL;
        }
        buf[n] = '\0';
        n = (ssize_t)strcspn(buf, "\r\n"); /* the first line only */
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                n--;
        buf[n] = '\0';
        if (!buf[0]) {
                config_error(p, line, "[%s] %s: %s is empty", section, key, what);
                return -EINVAL;
        }
        *ret = xstrdup(buf);
        explicit_bzero(buf, sizeof(buf));
        return 1;
}

/* Where systemd put the credential for [section] key (LoadCredential=NAME:PATH, or
 * SetCredential=): NAME is the section and the key without its "_file", joined by '_'
 * ([roistat] api_key_file: roistat_api_key). 1 with the path and the name in `what`, 0
 * without $CREDENTIALS_DIRECTORY, or -EINVAL after reporting a directory that is not an
 * absolute path that fits. */
static int credential_path(struct config_parse *p, const char *section, const char *key,
                           char *path, size_t path_size, char *what, size_t what_size)
{
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        size_t klen = strlen(key);
        int n;

        if (!dir || !*dir)
                return 0;
        if (klen > 5 && strcmp(key + klen - 5, "_file") == 0)
                klen -= 5;
        n = snprintf(path, path_size, "%s/%s_%.*s", dir, section, (int)klen, key);
        if (dir[0] != '/' || n < 0 || (size_t)n >= path_size) {
                config_error(p, 0, "environment CREDENTIALS_DIRECTORY: must be an absolute path "
                                   "(and the credential's path at most %zu bytes)",
                             path_size - 1);
                return -EINVAL;
        }
        snprintf(what, what_size, "credential %s_%.*s (in $CREDENTIALS_DIRECTORY)", section,
                 (int)klen, key);
        return 1;
}

int config_read_secret(struct config_parse *p, const char *section, const char *key,
                       const char *path, const char *env, char **ret)
{
        int line = config_key_line(p, section, key);
        char cred[PATH_MAX], what[256];
        const char *e;
        int r;

        if (path)
                return read_secret_file(p, line, section, key, path, path, false, ret);
        /* no file named: systemd's credential, then the environment */
        r = credential_path(p, section, key, cred, sizeof(cred), what, sizeof(what));
        if (r > 0)
                r = read_secret_file(p, 0, section, key, cred, what, true, ret);
        if (r != 0)
                return r;
        e = env ? getenv(env) : NULL;
        if (!e || !*e)
                return 0;
        if (strlen(e) > SECRET_MAX) {
                config_error(p, 0, "environment %s is longer than %d bytes", env, SECRET_MAX);
                return -EINVAL;
        }
        *ret = xstrdup(e);
        return 1;
}

/* `host` as libcurl gives it: "localhost" (any case; libcurl resolves it to loopback
 * itself), an IPv4 address in 127.0.0.0/8 (libcurl has already turned 127.1, 2130706433
 * and 0x7f.1 into dotted quads, and decoded %-escapes), or "[::1]". "localhost." and
 * "*.localhost" go to a resolver, so they are not loopback here. */
static bool host_is_loopback(const char *host)
{
        char h[INET6_ADDRSTRLEN];
        struct in_addr a4;
        struct in6_addr a6;
        size_t n = strlen(host);

        if (strcasecmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof(h))
                return false;
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
        return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Why `url` may not be used, or NULL. libcurl's own parser decides, so that what is
 * checked is where libcurl will send the request: "http://localhost:1@192.0.2.2/" is
 * the user "localhost" on 192.0.2.2, not loopback. */
static const char *url_refusal(const char *url)
{
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *part = NULL;
        const char *why = NULL;

        if (!u)
                abort(); /* out of memory: as xmalloc does */
        if (strpbrk(url, " \t\r\n") ||
            curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                why = "is not a URL of the form https://HOST[:PORT]/PATH";
        /* credentials belong in the key files: in a URL they go to whoever it names,
         * in clear text over http, and into every message that quotes it */
        else if (curl_url_get(u, CURLUPART_USER, &part, 0) != CURLUE_NO_USER ||
                 curl_url_get(u, CURLUPART_PASSWORD, &part, 0) != CURLUE_NO_PASSWORD)
                why = "must not hold a user name or password (USER:PASSWORD@ before the "
                      "host); the credentials go in their own key files";
        /* it is a base URL: the sinks append their paths to it */
        else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) != CURLUE_NO_QUERY ||
                 curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) != CURLUE_NO_FRAGMENT)
                why = "must not have a ?query or #fragment";
        else if (strcmp(scheme, "https") != 0 &&
                 (strcmp(scheme, "http") != 0 || !host_is_loopback(host)))
                why = "must be https:// unless the host is a loopback address (127.0.0.0/8, "
                      "[::1] or localhost)";
        curl_free(part); /* only the last one can be set: each refusal ends the chain */
        curl_free(host);
        curl_free(scheme);
        curl_url_cleanup(u);
        return why;
}

int config_check_url(struct config_parse *p, const char *section, const char *key,
                     const char *url)
{
        const char *why = url_refusal(url);

        if (!why)
                return 0;
        /* the URL is never repeated: it may hold a password, or a webhook's code */
        config_error(p, config_key_line(p, section, key), "[%s] %s: %s", section, key, why);
        return -EINVAL;
}

bool config_id_like(const char *s, size_t max)
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

void config_map_entry(struct config_parse *p, struct status_map *m, const char *subsection,
                      const char *key, const char *value, int line)
{
        if (!config_id_like(key, 16) ||
            (key[0] == '@' && strcmp(key, "@canceled") && strcmp(key, "@paid")))
                config_error(p, line,
                             "[%s] %s: the key must be a site status code, @canceled or @paid",
                             subsection, key);
        else if (!config_id_like(value, 64))
                config_error(p, line, "[%s] %s: \"%s\" is not a status or stage id", subsection,
                             key, value);
        else
                status_map_set(m, key, value, line);
}

/* --- loading ---------------------------------------------------------------------------- */

static struct config *config_defaults(void)
{
        struct config *c = xcalloc(1, sizeof(*c));
        char why[160];

        c->n_parts = n_sections();
        c->parts = xcalloc(c->n_parts, sizeof(*c->parts));
        for (size_t i = 0; i < c->n_parts; i++) {
                const struct config_section *s = section_at(i);
                struct config_part *part = &c->parts[i];

                part->section = s;
                part->conf = s->size ? xcalloc(1, s->size) : (void *)c;
                for (size_t k = 0; k < s->n_keys; k++)
                        if (s->keys[k].def &&
                            set_value(part->conf, &s->keys[k], s->keys[k].def, why,
                                      sizeof(why)) < 0)
                                abort(); /* a default outside its own limits is a bug */
                if (s->defaults)
                        s->defaults(part->conf);
        }
        return c;
}

static void parse_init(struct config_parse *p, const char *name)
{
        p->name = name;
        buf_init(&p->errors, (ERRORS_MAX + 1) * (MSG_MAX + 8)); /* ERRORS_MAX lines */
        p->c = config_defaults();
        p->c->path = xstrdup(name);
        p->header_line = xcalloc(p->c->n_parts, sizeof(*p->header_line));
        p->key_line = xcalloc(p->c->n_parts, sizeof(*p->key_line));
        p->refused = xcalloc(p->c->n_parts, sizeof(*p->refused));
        for (size_t i = 0; i < p->c->n_parts; i++)
                p->key_line[i] = xcalloc(p->c->parts[i].section->n_keys + 1,
                                         sizeof(*p->key_line[i]));
}

/* Which sections are on, then each one's own checks, in the order they are registered. */
static void check_all(struct config_parse *p)
{
        struct config *c = p->c;

        for (size_t i = 0; i < c->n_parts; i++) {
                struct config_part *part = &c->parts[i];
                const struct config_section *s = part->section;
                const struct config_key *k;

                part->enabled = true;
                if (s->optional) {
                        k = key_find(s, "enabled", NULL);
                        if (k && k->type != CONFIG_BOOL)
                                k = NULL;
                        /* a sink whose section is absent is disabled */
                        part->enabled = p->header_line[i] > 0 &&
                                        (!k || *(bool *)((char *)part->conf + k->offset));
                        if (k)
                                *(bool *)((char *)part->conf + k->offset) = part->enabled;
                }
        }
        for (size_t i = 0; i < c->n_parts; i++)
                if (c->parts[i].enabled && c->parts[i].section->check && !p->refused[i])
                        c->parts[i].section->check(p, c, c->parts[i].conf);
}

static int finish(struct config_parse *p, int ini_result, struct config **ret,
                  char **ret_errors)
{
        if (ini_result > 0 && !p->line_too_long)
                config_error(p, ini_result, "syntax error (expected [section] or key = value)");
        else if (ini_result < 0)
                config_error(p, 0, "cannot read the file");
        if (ini_result == 0 && !p->line_too_long)
                check_all(p);
        for (size_t i = 0; i < p->c->n_parts; i++)
                p->c->parts[i].key_line = p->key_line[i]; /* for config_line */
        free(p->key_line);
        free(p->refused);
        free(p->header_line);
        if (p->n_errors > 0) {
                *ret_errors = buf_steal(&p->errors);
                config_free(p->c);
                return -EINVAL;
        }
        buf_free(&p->errors);
        *ret = p->c;
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
        struct config_parse p = {0};
        char *buf;
        int r;

        p.f = fopen(path, "re");
        if (!p.f) {
                r = -errno;
                buf = xmalloc(PATH_MAX + 128);
                snprintf(buf, PATH_MAX + 128, "%s: cannot open: %s\n", path, strerror(-r));
                *ret_errors = buf;
                return r;
        }
        ini_limits();
        parse_init(&p, path);
        r = ini_parse_stream(reader, &p, handler, &p);
        fclose(p.f);
        return finish(&p, r, ret, ret_errors);
}

int config_load_string(const char *text, const char *name, struct config **ret,
                       char **ret_errors)
{
        struct config_parse p = {.text = text};

        ini_limits();
        parse_init(&p, name);
        return finish(&p, ini_parse_stream(reader, &p, handler, &p), ret, ret_errors);
}

struct config *config_free(struct config *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_parts; i++) {
                const struct config_section *s = c->parts[i].section;
                void *conf = c->parts[i].conf;

                for (size_t k = 0; k < s->n_keys; k++)
                        if (s->keys[k].type == CONFIG_STRING)
                                free(*(char **)((char *)conf + s->keys[k].offset));
                if (s->free)
                        s->free(conf);
                if (s->size)
                        free(conf);
                free(c->parts[i].key_line);
        }
        free(c->parts);
        free(c->path);
        free(c);
        return NULL;
}

void config_print_keys(FILE *f)
{
        for (size_t i = 0; i < n_sections(); i++) {
                const struct config_section *s = section_at(i);

                if (s->n_keys > 0)
                        fprintf(f, "\n[%s]\n", s->name);
                for (size_t k = 0; k < s->n_keys; k++) {
                        const struct config_key *key = &s->keys[k];
                        fprintf(f, "  %-22s %s", key->name, key->help);
                        if (key->def)
                                fprintf(f, " (default %s)", key->def);
                        if (key->type == CONFIG_INT)
                                fprintf(f, " [%lld..%lld]", (long long)key->min,
                                        (long long)key->max);
                        fputc('\n', f);
                }
        }
        /* the free-form subsections after every key, as one appendix */
        for (size_t i = 0; i < n_sections(); i++) {
                const struct config_section *s = section_at(i);
                for (size_t j = 0; j < s->n_subsections; j++)
                        if (s->subsections[j].help)
                                fputs(s->subsections[j].help, f);
        }
}
