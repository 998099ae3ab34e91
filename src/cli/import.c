/*
 * `orderbridge import FILE`: a backfill from JSON Lines, one snapshot per line. The file
 * is a source (sources/source_file.c) feeding an intake of this process's own, so lines
 * go through the same validation and the same group commit as the daemon's ingest; a
 * bad line is reported with its number and skipped, never stored. A running daemon
 * finds the new work at its next poll.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "queue/intake.h"
#include "sources/source_file.h"

int cli_import(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        struct source_file_stats stats = {0};
        struct source *src = NULL;
        struct intake *in = NULL;
        int r;

        if (argc != 1) {
                fprintf(stderr, "orderbridge import: give exactly one FILE (JSON Lines)\n");
                return 2;
        }
        r = source_file_new(cfg, argv[0], &src);
        if (r < 0) {
                fprintf(stderr, "orderbridge import: %s: %s\n", argv[0], strerror(-r));
                return 1;
        }
        r = intake_new(cfg, &in);
        if (r < 0) {
                fprintf(stderr, "orderbridge import: store %s: %s\n", cfg->store_path,
                        strerror(-r));
                goto out;
        }
        r = source_start(src, in);
        if (r < 0)
                fprintf(stderr, "orderbridge import: cannot start reading: %s\n", strerror(-r));
        else
                r = source_file_wait(src, &stats); /* a store failure is logged already */
out:
        src = source_free(src);
        in = intake_free(in);
        return r < 0 || stats.invalid > 0 || stats.failed > 0 ? 1 : 0;
}
