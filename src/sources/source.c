/*
 * The source wrapper: one place that calls a source's ops in the right order (start
 * once, stop before free), so that the daemon's table of sources and `orderbridge import`
 * handle every source alike.
 */
#include "sources/source.h"

#include <errno.h>
#include <stdlib.h>

#include "base/xalloc.h"

struct source *source_new(const struct source_ops *ops, void *ctx)
{
        struct source *s = xcalloc(1, sizeof(*s));

        s->ops = ops;
        s->ctx = ctx;
        return s;
}

int source_start(struct source *s, struct intake *in)
{
        int r;

        if (s->started)
                return -EALREADY;
        r = s->ops->start(s->ctx, in);
        if (r == 0)
                s->started = true;
        return r;
}

void source_stop(struct source *s)
{
        if (!s || !s->started)
                return;
        s->ops->stop(s->ctx);
        s->started = false;
}

int source_notify(struct source *s, const char *what)
{
        if (!s->started)
                return -ESRCH;
        if (!s->ops->notify)
                return -ENOTSUP;
        return s->ops->notify(s->ctx, what);
}

struct source *source_free(struct source *s)
{
        if (!s)
                return NULL;
        source_stop(s);
        s->ops->free(s->ctx);
        free(s);
        return NULL;
}
