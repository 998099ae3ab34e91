/*
 * HTML escaping over base/buf (html.h). One character at a time into a small stack
 * chunk, so a long text costs a few appends, not one per byte.
 */
#include "http/html.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xalloc.h"

int html_raw(struct buf *b, const char *markup)
{
        return buf_append(b, markup, strlen(markup));
}

/* The entity for `c`, or NULL when it stands for itself. */
static const char *entity(unsigned char c)
{
        switch (c) {
        case '&':
                return "&amp;";
        case '<':
                return "&lt;";
        case '>':
                return "&gt;";
        case '"':
                return "&quot;";
        case '\'':
                return "&#39;";
        case '\t':
        case '\n':
                return NULL;
        default:
                return c < 0x20 || c == 0x7f ? "\xef\xbf\xbd" : NULL; /* U+FFFD */
        }
}

int html_text(struct buf *b, const char *text)
{
        char chunk[256];
        size_t n = 0;
        int r = 0;

        if (!text)
                return 0;
        for (const unsigned char *p = (const unsigned char *)text; *p && r == 0; p++) {
                const char *e = entity(*p);
                size_t len = e ? strlen(e) : 1;

                if (n + len > sizeof(chunk)) {
                        r = buf_append(b, chunk, n);
                        n = 0;
                }
                if (e)
                        memcpy(chunk + n, e, len);
                else
                        chunk[n] = (char)*p;
                n += len;
        }
        if (r == 0 && n > 0)
                r = buf_append(b, chunk, n);
        return r;
}

int html_textf(struct buf *b, const char *fmt, ...)
{
        char small[256], *text;
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = buf_vformat(small, sizeof(small), &text, fmt, ap);
        va_end(ap);
        if (n < 0)
                return n;
        r = html_text(b, text);
        if (text != small)
                free(text);
        return r;
}

int html_time(struct buf *b, int64_t ms)
{
        char text[40];
        time_t t;
        struct tm tm;

        if (ms <= 0)
                return html_raw(b, "-");
        t = (time_t)(ms / 1000);
        if (!gmtime_r(&t, &tm) || strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                return html_raw(b, "-");
        return html_text(b, text);
}

int html_duration(struct buf *b, int64_t ms)
{
        int64_t s = ms < 0 ? 0 : ms / 1000;

        if (s < 60)
                return html_textf(b, "%lld s", (long long)s);
        if (s < 3600)
                return html_textf(b, "%lld min %lld s", (long long)(s / 60), (long long)(s % 60));
        if (s < 86400)
                return html_textf(b, "%lld h %lld min", (long long)(s / 3600),
                                  (long long)(s % 3600 / 60));
        return html_textf(b, "%lld d %lld h", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}
