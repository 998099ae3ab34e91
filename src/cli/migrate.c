/*
 * `orderbridge migrate [--from PATH]`: opens the configured store, which creates its
 * schema or brings it forward (serve does the same at start; PostgreSQL serializes
 * servers that start at once), and says which store it is. With --from, moves an SQLite
 * store into it (store_copy): the source is locked first, so no server can change it
 * while it is read, and the queue of every sink is compared on both sides at the end —
 * a move that lost a delivery says so and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

static void progress(void *arg, int64_t done, int64_t total)
{
        (void)arg;
        fprintf(stderr, "migrate.progress copied=%" PRId64 " total=%" PRId64 "\n", done, total);
}

/* Each sink's queue in `a` and `b`: 0 when they are the same, printed either way. */
static int compare(struct store *a, struct store *b)
{
        char **sinks = NULL;
        size_t n = 0;
        int diff = 0;

        if (store_sinks(a, &sinks, &n) < 0) {
                fprintf(stderr, "orderbridge migrate: %s\n", store_errmsg(a));
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                struct store_counts ca, cb;
                const char *name;
                int64_t va, vb;

                if (store_counts(a, sinks[i], &ca) < 0 || store_counts(b, sinks[i], &cb) < 0) {
                        fprintf(stderr, "orderbridge migrate: counting %s failed\n", sinks[i]);
                        diff = -1;
                        break;
                }
                printf("%s:", sinks[i]);
                for (size_t k = 0; (name = store_counts_nth(&ca, k, &va)); k++) {
                        store_counts_nth(&cb, k, &vb);
                        printf(" %s=%" PRId64, name, vb);
                        if (va != vb) {
                                printf(" (was %" PRId64 ")", va);
                                diff = 1;
                        }
                }
                printf("\n");
        }
        store_names_free(sinks, n);
        return diff;
}

static int copy_from(const char *from, struct store *to, const char *to_name)
{
        struct store *src;
        long pid = 0;
        int r, diff;

        if (store_open(from, &src) < 0) {
                fprintf(stderr, "orderbridge migrate: --from %s\n", store_open_error());
                return 1;
        }
        if ((r = store_lock(src, &pid)) < 0) {
                if (r == -EBUSY)
                        fprintf(stderr, "orderbridge migrate: --from %s: a server (pid %ld) "
                                "runs on it: stop it first\n", from, pid);
                else
                        fprintf(stderr, "orderbridge migrate: --from %s: %s\n", from,
                                store_errmsg(src));
                store_close(src);
                return 1;
        }
        r = store_copy(src, to, progress, NULL);
        if (r == -EEXIST) {
                fprintf(stderr, "orderbridge migrate: %s already holds orders: a move goes into "
                        "an empty store\n", to_name);
        } else if (r < 0) {
                fprintf(stderr, "orderbridge migrate: copying %s to %s failed: %s\n", from,
                        to_name, store_errmsg(to));
        } else {
                printf("copied %d orders from %s to %s\n", r, from, to_name);
                diff = compare(src, to);
                if (diff != 0) {
                        fprintf(stderr, "orderbridge migrate: the queues differ (above)\n");
                        r = -EIO;
                }
        }
        store_close(src);
        return r < 0 ? 1 : 0;
}

int cli_migrate(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        struct store *st;
        int rc = 0;

        (void)argv;
        if (argc > 0) {
                fprintf(stderr, "orderbridge migrate: no arguments (--from PATH names a store "
                        "to copy in)\n");
                return 2;
        }
        if (store_open(cfg->store_path, &st) < 0) {
                fprintf(stderr, "orderbridge migrate: store %s\n", store_open_error());
                return 1;
        }
        printf("store %s: schema up to date (%s)\n", cfg->store_path,
               store_shared(st) ? "PostgreSQL, shared by the servers using it" : "SQLite");
        if (o->from)
                rc = copy_from(o->from, st, cfg->store_path);
        store_close(st);
        return rc;
}
