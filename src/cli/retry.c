/*
 * `orderbridge retry`: dead (and backing-off) deliveries back to pending now, for all
 * sinks or one, all orders or one — for example after fixing the configuration.
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "store/store.h"

static int retry(const struct config *cfg, const char *sink, const char *order_id)
{
        struct store *st;
        int r;

        r = store_open(cfg->store_path, &st);
        if (r < 0) {
                fprintf(stderr, "orderbridge retry: store %s\n", store_open_error());
                return 1;
        }
        r = store_retry(st, sink, order_id, clock_wall_ms());
        if (r < 0)
                fprintf(stderr, "orderbridge retry: %s\n", store_errmsg(st));
        else
                printf("%d deliveries moved back to pending\n", r);
        store_close(st);
        return r < 0 ? 1 : 0;
}

int cli_retry(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        if (argc > 1) {
                fprintf(stderr, "orderbridge retry: at most one ORDER_ID\n");
                return 2;
        }
        return retry(cfg, o->sink, argc == 1 ? argv[0] : NULL);
}
