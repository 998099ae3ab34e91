/* Allocation wrappers that abort on OOM; see xalloc.h for why that is acceptable. */
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *check(void *p)
{
        if (!p) {
                fputs("orderbridge: out of memory\n", stderr);
                abort();
        }
        return p;
}

void *xmalloc(size_t size)
{
        return check(malloc(size ? size : 1));
}

void *xcalloc(size_t n, size_t size)
{
        return check(calloc(n ? n : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t size)
{
        return check(realloc(p, size ? size : 1));
}

char *xstrdup(const char *s)
{
        return check(strdup(s));
}

char *xstrndup(const char *s, size_t n)
{
        return check(strndup(s, n));
}
