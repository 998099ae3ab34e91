/*
 * `orderbridge import FILE`: a backfill from JSON Lines, one snapshot per line. Lines go
 * through the same validation as ingest and are stored in transactions of CHUNK lines;
 * a bad line is reported with its number and skipped, never stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "cli/cli.h"
#include "base/clock.h"
#include "base/log.h"
#include "model/snapshot.h"
#include "sinks/registry.h"
#include "store/store.h"
#include "base/xalloc.h"

#define CHUNK 500

struct import_stats {
        long lines, accepted, stale, invalid, failed;
};

static int flush(struct store *st, struct store_put *puts, struct snapshot **snaps, size_t *n,
                 struct import_stats *stats)
{
        int r = store_put(st, puts, *n, clock_wall_ms());

        for (size_t i = 0; i < *n; i++) {
                if (puts[i].outcome == STORE_PUT_ACCEPTED)
                        stats->accepted++;
                else if (puts[i].outcome == STORE_PUT_STALE)
                        stats->stale++;
                else
                        stats->failed++;
                snaps[i] = snapshot_free(snaps[i]);
        }
        *n = 0;
        return r;
}

static int import_file(const struct config *cfg, const char *path)
{
        struct store_put *puts = xcalloc(CHUNK, sizeof(*puts));
        struct snapshot **snaps = xcalloc(CHUNK, sizeof(*snaps));
        struct import_stats stats = {0};
        const char *sinks[SINK_KINDS_MAX];
        size_t n = 0, n_sinks = 0, cap = 0;
        struct store *st = NULL;
        char *line = NULL;
        time_t last = time(NULL);
        ssize_t len;
        FILE *f;
        int r;

        f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
        if (!f) {
                fprintf(stderr, "orderbridge import: %s: %s\n", path, strerror(errno));
                free(puts);
                free(snaps);
                return 1;
        }
        r = store_open(cfg->store_path, &st);
        if (r < 0) {
                fprintf(stderr, "orderbridge import: store %s: %s\n", cfg->store_path,
                        strerror(-r));
                goto out;
        }
        n_sinks = sink_registry_enabled(cfg, sinks, SINK_KINDS_MAX);
        store_set_sinks(st, sinks, n_sinks);

        while ((len = getline(&line, &cap, f)) >= 0) {
                struct snapshot_error err;
                struct snapshot *s;
                unsigned int dlen;

                stats.lines++;
                while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                        line[--len] = '\0';
                if (len == 0)
                        continue;
                if (len > cfg->max_body_bytes) {
                        log_warn("import.invalid", "line=%ld field=(body) message=\"longer "
                                 "than [server] max_body_bytes\"", stats.lines);
                        stats.invalid++;
                        continue;
                }
                if (snapshot_parse(line, (size_t)len, &s, &err) < 0) {
                        log_warn("import.invalid", "line=%ld field=%s message=\"%s\"",
                                 stats.lines, err.field, err.message);
                        stats.invalid++;
                        continue;
                }
                if (cfg->site_id && strcmp(cfg->site_id, s->site) != 0) {
                        log_warn("import.invalid", "line=%ld order_id=%s field=site "
                                 "message=\"not this site\"", stats.lines, s->order_id);
                        stats.invalid++;
                        snapshot_free(s);
                        continue;
                }
                snaps[n] = s;
                puts[n] = (struct store_put){
                        .order_id = s->order_id,
                        .site = s->site,
                        .json = s->json,
                        .has_version = s->has_version,
                        .version = s->version,
                        .has_updated_at = s->has_updated_at,
                        .updated_at = s->updated_at,
                        .source = "import",
                };
                EVP_Digest(line, (size_t)len, puts[n].body_sha256, &dlen, EVP_sha256(), NULL);
                if (++n == CHUNK && (r = flush(st, puts, snaps, &n, &stats)) < 0)
                        break;
                if (time(NULL) != last) {
                        last = time(NULL);
                        log_info("import.progress", "lines=%ld accepted=%ld stale=%ld "
                                 "invalid=%ld", stats.lines, stats.accepted, stats.stale,
                                 stats.invalid);
                }
        }
        if (r == 0 && n > 0)
                r = flush(st, puts, snaps, &n, &stats);
        if (r < 0)
                log_err("import.store_failed", "line=%ld error=\"%s\"", stats.lines,
                        store_errmsg(st));
        log_info("import.done", "lines=%ld accepted=%ld stale=%ld invalid=%ld failed=%ld",
                 stats.lines, stats.accepted, stats.stale, stats.invalid, stats.failed);
out:
        for (size_t i = 0; i < n; i++)
                snapshot_free(snaps[i]);
        free(line);
        free(puts);
        free(snaps);
        store_close(st);
        if (f != stdin)
                fclose(f);
        return r < 0 || stats.invalid > 0 || stats.failed > 0 ? 1 : 0;
}

int cli_import(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        if (argc != 1) {
                fprintf(stderr, "orderbridge import: give exactly one FILE (JSON Lines)\n");
                return 2;
        }
        return import_file(cfg, argv[0]);
}
