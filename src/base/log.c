/*
 * One line per event, in logfmt (the format is described in log.h). The whole line is
 * built in a local buffer and written with a single write(2), so lines from different
 * threads never interleave.
 *
 * Values come from outside (order ids, webhook ids, remote error texts), and callers pass
 * them as they are. So log_event walks the printf format itself instead of handing it to
 * vsnprintf: literal text is copied, each conversion is formatted alone with its own spec
 * and the right va_arg type, and every string value goes through the one escaping rule
 * (escape_value): inside a quoted value `\` and `"` and control characters are escaped;
 * a bare value that would not survive a logfmt parser (empty, or with a space, `"`, `=`,
 * `\` or a control character) is quoted and escaped. A hostile value can then neither
 * forge a field nor a second line. A conversion the walker does not know ends the line
 * with a marker rather than guessing an argument's type.
 *
 * Under systemd, stderr is a stream to the journal, which reads a leading "<N>" as the
 * line's priority (sd-daemon(3)); without one every line would be "info" and `journalctl
 * -p warning` would find nothing. The prefix is written only when stderr is that stream
 * ($JOURNAL_STREAM names stderr's device and inode, sd_journal_stream_fd(3)): a terminal,
 * a file or a pipe keeps the plain line. The level may change at run time (SIGHUP, from
 * serve's thread while others log): it is an atomic.
 */
#include "base/log.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define LOG_LINE_MAX 2048
/* kept free at the end of the line for a closing quote and the newline */
#define LOG_LINE_RESERVE 2

static _Atomic int min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* the journal's priorities for our levels (sd-daemon.h: debug 7, info 6, warning 4, err 3) */
static const char *const level_prefixes[] = {SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR};
static _Atomic bool to_journal;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

void log_set_level(enum log_level level)
{
        atomic_store(&min_level, (int)level);
}

enum log_level log_get_level(void)
{
        return (enum log_level)atomic_load(&min_level);
}

bool log_detect_journal(void)
{
        const char *env = getenv("JOURNAL_STREAM");
        uintmax_t dev, ino;
        struct stat st;
        char tail;
        bool yes = false;

        /* "DEVICE:INODE" in decimal; anything else (or another file on stderr, as when a
         * child of the service redirected it) is not the journal */
        if (env && strlen(env) < 64 &&
            sscanf(env, "%" SCNuMAX ":%" SCNuMAX "%c", &dev, &ino, &tail) == 2 &&
            fstat(STDERR_FILENO, &st) == 0)
                yes = (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
        atomic_store(&to_journal, yes);
        return yes;
}

static void detect_once(void)
{
        (void)log_detect_journal();
}

int log_level_parse(const char *text, enum log_level *ret_level)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (strcmp(text, level_names[i]) == 0) {
                        *ret_level = (enum log_level)i;
                        return 0;
                }
        return -1;
}

struct line {
        char buf[LOG_LINE_MAX];
        size_t n;
        size_t field;   /* where the last field of the format's text began */
        bool full;      /* something did not fit: the rest of the event is dropped */
        bool in_quotes; /* an opening quote was written and its closing one not yet */
};

/* Appends all of `p` or nothing, so that an escape is never cut in half. */
static bool put(struct line *l, const char *p, size_t k)
{
        if (l->full || k > LOG_LINE_MAX - LOG_LINE_RESERVE - l->n) {
                l->full = true;
                return false;
        }
        memcpy(l->buf + l->n, p, k);
        l->n += k;
        return true;
}

/* Appends as much of `p` as fits: for the plain bytes of a string value, which are the
 * one thing worth keeping in part (an escape, a number or a key is all or nothing). */
static void put_run(struct line *l, const char *p, size_t k)
{
        size_t room = l->full ? 0 : LOG_LINE_MAX - LOG_LINE_RESERVE - l->n;

        if (k > room) {
                k = room;
                l->full = true;
        }
        memcpy(l->buf + l->n, p, k);
        l->n += k;
}

static bool put_quote(struct line *l)
{
        if (!put(l, "\"", 1))
                return false;
        l->in_quotes = !l->in_quotes;
        return true;
}

static bool is_control(unsigned char c)
{
        return c < 0x20 || c == 0x7f;
}

static bool needs_escape(unsigned char c)
{
        return c == '\\' || c == '"' || is_control(c);
}

/* One byte that needs an escape inside a quoted value. */
static bool put_escaped(struct line *l, unsigned char c)
{
        static const char hex[] = "0123456789abcdef";
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        switch (c) {
        case '\\':
                return put(l, "\\\\", 2);
        case '"':
                return put(l, "\\\"", 2);
        case '\n':
                return put(l, "\\n", 2);
        case '\t':
                return put(l, "\\t", 2);
        case '\r':
                return put(l, "\\r", 2);
        }
        return put(l, u, sizeof(u));
}

/* Whether a value may be written bare: a logfmt parser reads it back unchanged. */
static bool bare_ok(const char *s, size_t len, size_t pad)
{
        if (len == 0 || pad > 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == ' ' || c == '=' || needs_escape(c))
                        return false;
        }
        return true;
}

/* THE escaping rule: a string value, `len` bytes of `s`, with `pad` spaces before or
 * after it (a printf width), inside a quoted value of the format or bare. */
static void escape_value(struct line *l, const char *s, size_t len, size_t pad, bool pad_left)
{
        bool wrap = !l->in_quotes && !bare_ok(s, len, pad);

        if (wrap && !put_quote(l))
                return;
        for (size_t i = 0; pad_left && i < pad; i++)
                if (!put(l, " ", 1))
                        return;
        for (size_t i = 0, run; i < len; i = run + 1) {
                for (run = i; run < len && !needs_escape((unsigned char)s[run]); run++)
                        ;
                put_run(l, s + i, run - i);
                if (run < len && !put_escaped(l, (unsigned char)s[run]))
                        return;
        }
        if (l->full)
                return;
        for (size_t i = 0; !pad_left && i < pad; i++)
                if (!put(l, " ", 1))
                        return;
        if (wrap)
                put_quote(l);
}

/* A conversion spec as the caller wrote it, with `*` width and precision resolved. */
struct spec {
        char text[48]; /* "%-10.3lld": flags, width, precision, length, conversion */
        bool left;     /* the '-' flag */
        int width;     /* -1 when none */
        int precision; /* -1 when none */
        char length[3];
        char conv;
};

/* Reads the spec at `*pp` (just after its '%'), taking `*` arguments from `ap`. Returns
 * false for anything outside the C11 conversions the walker formats. */
static bool spec_read(const char **pp, va_list *ap, struct spec *sp)
{
        const char *p = *pp;
        char flags[8];
        size_t nf = 0;
        bool star = false;
        int n;

        sp->left = false;
        sp->width = sp->precision = -1;
        for (; *p && strchr("-+ #0", *p); p++) {
                if (nf == sizeof(flags) - 1)
                        return false;
                flags[nf++] = *p;
                sp->left |= *p == '-';
        }
        flags[nf] = '\0';
        if (*p == '*') {
                sp->width = va_arg(*ap, int);
                star = true;
                p++;
                if (sp->width < 0) { /* C11 7.21.6.1p5: a '-' flag and a positive width */
                        sp->left = true;
                        sp->width = sp->width == INT_MIN ? INT_MAX : -sp->width;
                }
                if (sp->width > 4096) /* wider than any line */
                        sp->width = 4096;
        } else if (*p >= '0' && *p <= '9') {
                for (sp->width = 0; *p >= '0' && *p <= '9'; p++)
                        if ((sp->width = sp->width * 10 + (*p - '0')) > 4096)
                                return false;
        }
        if (*p == '.') {
                p++;
                if (*p == '*') {
                        sp->precision = va_arg(*ap, int); /* negative: as if none */
                        star = true;
                        p++;
                } else {
                        for (sp->precision = 0; *p >= '0' && *p <= '9'; p++)
                                if ((sp->precision = sp->precision * 10 + (*p - '0')) > 4096)
                                        return false;
                }
        }
        sp->length[0] = sp->length[1] = sp->length[2] = '\0';
        if ((p[0] == 'h' && p[1] == 'h') || (p[0] == 'l' && p[1] == 'l')) {
                memcpy(sp->length, p, 2);
                p += 2;
        } else if (*p && strchr("hlzjtL", *p)) {
                sp->length[0] = *p++;
        }
        if (!*p || !strchr("diouxXcspfFeEgGaA", *p))
                return false;
        sp->conv = *p++;
        /* wide characters and strings, and long double with an integer, are not used */
        if ((sp->conv == 'c' || sp->conv == 's' || sp->conv == 'p') && sp->length[0])
                return false;
        if (strchr("fFeEgGaA", sp->conv)
                ? (sp->length[0] && strcmp(sp->length, "l") != 0 && strcmp(sp->length, "L") != 0)
                : strcmp(sp->length, "L") == 0)
                return false;
        if (sp->conv == 's' || sp->conv == 'c') {
                *pp = p; /* escape_value pads and cuts them: no spec text needed */
                return true;
        }
        if (!star) { /* the spec as the caller wrote it */
                size_t k = (size_t)(p - *pp) + 1;
                if (k >= sizeof(sp->text))
                        return false;
                memcpy(sp->text, *pp - 1, k);
                sp->text[k] = '\0';
                *pp = p;
                return true;
        }
        if (sp->left && !strchr(flags, '-') && nf < sizeof(flags) - 1) {
                flags[nf++] = '-';
                flags[nf] = '\0';
        }
        if (sp->width >= 0 && sp->precision >= 0)
                n = snprintf(sp->text, sizeof(sp->text), "%%%s%d.%d%s%c", flags, sp->width,
                             sp->precision, sp->length, sp->conv);
        else if (sp->width >= 0)
                n = snprintf(sp->text, sizeof(sp->text), "%%%s%d%s%c", flags, sp->width, sp->length,
                             sp->conv);
        else if (sp->precision >= 0)
                n = snprintf(sp->text, sizeof(sp->text), "%%%s.%d%s%c", flags, sp->precision,
                             sp->length, sp->conv);
        else
                n = snprintf(sp->text, sizeof(sp->text), "%%%s%s%c", flags, sp->length, sp->conv);
        if (n < 0 || (size_t)n >= sizeof(sp->text))
                return false;
        *pp = p;
        return true;
}

/* The spec text is built from a format the compiler has checked at the call site
 * (format(printf) on log_event), with the argument of the type that spec names. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* A number or pointer: formatted in place, needing no escape. One that does not fit takes
 * its whole field with it (` n=` and no digits, or a cut number, would mislead). */
static void put_number(struct line *l, const struct spec *sp, va_list *ap)
{
        size_t room = l->full ? 0 : LOG_LINE_MAX - LOG_LINE_RESERVE - l->n;
        char *at = l->buf + l->n;
        const char *len = sp->length;
        bool sign = sp->conv == 'd' || sp->conv == 'i';
        int n;

        if (strchr("fFeEgGaA", sp->conv))
                n = len[0] == 'L' ? snprintf(at, room + 1, sp->text, va_arg(*ap, long double))
                                  : snprintf(at, room + 1, sp->text, va_arg(*ap, double));
        else if (sp->conv == 'p')
                n = snprintf(at, room + 1, sp->text, va_arg(*ap, void *));
        else if (strcmp(len, "l") == 0)
                n = sign ? snprintf(at, room + 1, sp->text, va_arg(*ap, long))
                         : snprintf(at, room + 1, sp->text, va_arg(*ap, unsigned long));
        else if (strcmp(len, "ll") == 0)
                n = sign ? snprintf(at, room + 1, sp->text, va_arg(*ap, long long))
                         : snprintf(at, room + 1, sp->text, va_arg(*ap, unsigned long long));
        else if (strcmp(len, "z") == 0)
                n = sign ? snprintf(at, room + 1, sp->text, va_arg(*ap, ssize_t))
                         : snprintf(at, room + 1, sp->text, va_arg(*ap, size_t));
        else if (strcmp(len, "j") == 0)
                n = sign ? snprintf(at, room + 1, sp->text, va_arg(*ap, intmax_t))
                         : snprintf(at, room + 1, sp->text, va_arg(*ap, uintmax_t));
        else if (strcmp(len, "t") == 0)
                n = snprintf(at, room + 1, sp->text, va_arg(*ap, ptrdiff_t));
        else /* int, and hh and h, which arrive promoted to int */
                n = sign ? snprintf(at, room + 1, sp->text, va_arg(*ap, int))
                         : snprintf(at, room + 1, sp->text, va_arg(*ap, unsigned int));
        if (n < 0 || (size_t)n > room) {
                l->n = l->field;
                l->in_quotes = false;
                l->full = true;
                return;
        }
        l->n += (size_t)n;
}

#pragma GCC diagnostic pop

static void put_string(struct line *l, const struct spec *sp, const char *s)
{
        size_t len;

        if (!s)
                s = "(null)";
        len = sp->precision >= 0 ? strnlen(s, (size_t)sp->precision) : strlen(s);
        escape_value(l, s, len,
                     sp->width > 0 && (size_t)sp->width > len ? (size_t)sp->width - len : 0,
                     !sp->left);
}

/* The caller's part of the line: literal text copied, each conversion formatted alone. */
static void put_fields(struct line *l, const char *fmt, va_list *ap)
{
        const char *p = fmt;

        while (*p && !l->full) {
                struct spec sp;

                if (*p == '"') {
                        put_quote(l);
                        p++;
                        continue;
                }
                if (*p != '%') {
                        size_t k = strcspn(p, "%\""), at = l->n;
                        if (!put(l, p, k))
                                break;
                        for (; at < l->n; at++) { /* formats are ours; still, one line */
                                if (is_control((unsigned char)l->buf[at]))
                                        l->buf[at] = '?';
                                if (l->buf[at] == ' ' && !l->in_quotes)
                                        l->field = at;
                        }
                        p += k;
                        continue;
                }
                p++;
                if (*p == '%') {
                        put(l, "%", 1);
                        p++;
                        continue;
                }
                if (!spec_read(&p, ap, &sp)) {
                        /* the argument's type is unknown: nothing after it can be read */
                        put(l, "!badformat", 10);
                        return;
                }
                if (sp.conv == 's') {
                        put_string(l, &sp, va_arg(*ap, const char *));
                } else if (sp.conv == 'c') {
                        char c = (char)va_arg(*ap, int);
                        escape_value(l, &c, 1, sp.width > 1 ? (size_t)sp.width - 1 : 0, !sp.left);
                } else {
                        put_number(l, &sp, ap);
                }
        }
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
        struct line l = {.n = 0};
        struct tm tm;
        time_t now;
        va_list ap;

        if ((int)level < atomic_load(&min_level))
                return;
        pthread_once(&journal_once, detect_once);
        if (atomic_load(&to_journal))
                put(&l, level_prefixes[level], 3);
        now = time(NULL);
        gmtime_r(&now, &tm);
        l.n += strftime(l.buf + l.n, sizeof(l.buf) - l.n, "%Y-%m-%dT%H:%M:%SZ ", &tm);
        put(&l, level_names[level], strlen(level_names[level]));
        put(&l, " ", 1);
        escape_value(&l, event, strlen(event), 0, false);
        l.field = l.n;
        put(&l, " ", 1);
        va_start(ap, fmt);
        put_fields(&l, fmt, &ap);
        va_end(ap);
        /* the reserve: a value cut short is still closed, and the line still ends */
        if (l.in_quotes)
                l.buf[l.n++] = '"';
        l.buf[l.n++] = '\n';
        (void)!write(STDERR_FILENO, l.buf, l.n);
}
