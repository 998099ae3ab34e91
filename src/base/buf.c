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

int buf_printf(struct buf *b, const char *fmt, ...)
{
        char small[512], *big = NULL;
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n < sizeof(small))
                return buf_append(b, small, (size_t)n);
        if (b->toobig || (size_t)n > b->max) {
                b->toobig = true;
                return -EMSGSIZE;
        }
        big = xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        r = buf_append(b, big, (size_t)n);
        free(big);
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
