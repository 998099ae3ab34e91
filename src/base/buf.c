/* The capped growable buffer; see buf.h. Allocation failures abort (xalloc), sizes that
 * come from outside are bounded by `max` before any allocation. */
#include "base/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

void buf_init(struct buf *b, size_t max)
{
        memset(b, 0, sizeof(*b));
        b->max = max;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
        size_t want;

        if (b->toobig || n > b->max || b->len > b->max - n) {
                b->toobig = true;
                return -EMSGSIZE;
        }
        want = b->len + n + 1;
        if (want > b->cap) {
                size_t cap = b->cap < 256 ? 256 : b->cap;
                while (cap < want)
                        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
                if (cap > b->max + 1)
                        cap = b->max + 1;
                b->data = xrealloc(b->data, cap);
                b->cap = cap;
        }
        if (n)
                memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buf_vformat(char *small, size_t size, char **ret_text, const char *fmt, va_list ap)
{
        va_list again;
        int n;

        va_copy(again, ap);
        n = vsnprintf(small, size, fmt, ap);
        *ret_text = small;
        if (n >= 0 && (size_t)n >= size) {
                *ret_text = xmalloc((size_t)n + 1);
                vsnprintf(*ret_text, (size_t)n + 1, fmt, again);
        }
        va_end(again);
        return n < 0 ? -EINVAL : n;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
        char small[512], *text;
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = buf_vformat(small, sizeof(small), &text, fmt, ap);
        va_end(ap);
        if (n < 0)
                return n;
        r = buf_append(b, text, (size_t)n);
        if (text != small)
                free(text);
        return r;
}

void buf_reset(struct buf *b)
{
        b->len = 0;
        b->toobig = false;
        if (b->data)
                b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
        b->toobig = false;
}

char *buf_steal(struct buf *b)
{
        char *p = b->data ? b->data : xstrdup("");

        b->data = NULL;
        b->len = b->cap = 0;
        b->toobig = false;
        return p;
}
