/*
 * JSON Lines into the intake (see source_file.h). A reader thread reads the file line by
 * line into one capped buffer ([server] max_body_bytes: a longer line is skipped, not
 * read into memory), validates, and submits in bulk; the intake's committer calls back
 * `line_done` with each line's outcome. Lines and refusals are counted by the reader
 * alone, outcomes under `lock`; `outstanding` (handed over, not yet answered) lets the
 * reader wait for the last commit before it writes the totals.
 */
#include "sources/source_file.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "model/snapshot.h"

#define PROGRESS_EVERY_MS 1000

struct source_file {
        const struct config *cfg;
        FILE *f;
        struct intake *in;
        pthread_t thread;
        bool running; /* the reader thread exists and is not joined yet */
        atomic_bool stop;

        pthread_mutex_t lock;
        pthread_cond_t settled; /* outstanding reached 0 */
        long outstanding;
        struct source_file_stats stats; /* lines, invalid: the reader's alone; the rest under
                                         * `lock` (written by line_done) */
        int error;                      /* the first failed commit, 0 = none */
        long error_line;
        char errmsg[256];
};

/* Which line a submission came from, for the outcome's bookkeeping. */
struct ticket {
        struct source_file *sf;
        long line;
};

static void line_done(void *userdata, const struct intake_result *res)
{
        struct ticket *t = userdata;
        struct source_file *sf = t->sf;

        pthread_mutex_lock(&sf->lock);
        if (res->outcome == STORE_PUT_ACCEPTED)
                sf->stats.accepted++;
        else if (res->outcome == STORE_PUT_STALE)
                sf->stats.stale++;
        else
                sf->stats.failed++;
        if (res->outcome == STORE_PUT_FAILED && !sf->error) {
                sf->error = res->error < 0 ? res->error : -EIO;
                sf->error_line = t->line;
                snprintf(sf->errmsg, sizeof(sf->errmsg), "%s", res->errmsg ? res->errmsg : "");
        }
        if (--sf->outstanding == 0)
                pthread_cond_broadcast(&sf->settled);
        pthread_mutex_unlock(&sf->lock);
        free(t);
}

/* Bytes on their way into the line buffer, appended 4 KiB at a time. */
struct stage {
        struct buf *line;
        char chunk[4096];
        size_t n;
        bool too_long;
};

static void stage_flush(struct stage *st)
{
        if (st->n > 0 && buf_append(st->line, st->chunk, st->n) < 0)
                st->too_long = true; /* sticks: the line is refused whatever follows */
        st->n = 0;
}

static void stage_put(struct stage *st, char c)
{
        if (st->n == sizeof(st->chunk))
                stage_flush(st);
        st->chunk[st->n++] = c;
}

/* Reads one line into `line`, without its "\n" and the "\r"s before it. Returns 1 with a
 * line, 0 at the end of the file, -EIO on a read error; *ret_too_long when the line was
 * longer than the buffer's cap (its rest is read and dropped). */
static int read_line(FILE *f, struct buf *line, bool *ret_too_long)
{
        struct stage st = {.line = line};
        size_t crs = 0;
        bool any = false;
        int c;

        buf_reset(line);
        while ((c = getc_unlocked(f)) != EOF) {
                any = true;
                if (c == '\n')
                        break;
                if (c == '\r') { /* kept only when more of the line follows */
                        crs++;
                        continue;
                }
                for (; crs > 0; crs--)
                        stage_put(&st, '\r');
                stage_put(&st, (char)c);
        }
        if (ferror(f))
                return -EIO;
        stage_flush(&st);
        *ret_too_long = st.too_long;
        return any ? 1 : 0;
}

static void log_progress(struct source_file *sf)
{
        struct source_file_stats st;

        pthread_mutex_lock(&sf->lock);
        st = sf->stats;
        pthread_mutex_unlock(&sf->lock);
        log_info("import.progress", "lines=%ld accepted=%ld stale=%ld invalid=%ld", st.lines,
                 st.accepted, st.stale, st.invalid);
}

/* Validates one line as the ingest does; NULL (logged) when it is refused. */
static struct snapshot *parse_line(struct source_file *sf, const struct buf *line, long no,
                                   bool too_long)
{
        struct snapshot_error err;
        struct snapshot *s;

        if (too_long) {
                log_warn("import.invalid",
                         "line=%ld field=(body) message=\"longer than [server] max_body_bytes\"",
                         no);
                return NULL;
        }
        if (snapshot_parse(line->data, line->len, &s, &err) < 0) {
                log_warn("import.invalid", "line=%ld field=%s message=\"%s\"", no, err.field,
                         err.message);
                return NULL;
        }
        if (snapshot_check_from_site(s, sf->cfg->site_id, &err) < 0) {
                log_warn("import.invalid", "line=%ld order_id=%s field=%s message=\"%s\"", no,
                         s->order_id, err.field, err.message);
                snapshot_free(s);
                return NULL;
        }
        return s;
}

/* Hands one snapshot over; false when the reading must stop (the intake is stopping,
 * or an earlier commit failed). */
static bool submit(struct source_file *sf, struct snapshot *s, long no)
{
        struct intake_item item = {.snap = s, .source = "import", .bulk = true};
        struct ticket *t = xmalloc(sizeof(*t));
        bool go_on;
        int r;

        *t = (struct ticket){sf, no};
        pthread_mutex_lock(&sf->lock);
        go_on = sf->error == 0;
        if (go_on)
                sf->outstanding++;
        pthread_mutex_unlock(&sf->lock);
        if (!go_on) {
                snapshot_free(s);
                free(t);
                return false;
        }
        r = intake_submit(sf->in, &item, line_done, t);
        if (r == 0)
                return true;
        snapshot_free(item.snap);
        free(t);
        pthread_mutex_lock(&sf->lock);
        sf->outstanding--;
        if (!sf->error) {
                sf->error = r;
                sf->error_line = no;
                snprintf(sf->errmsg, sizeof(sf->errmsg), "%s", strerror(-r));
        }
        pthread_mutex_unlock(&sf->lock);
        return false;
}

static void *reader(void *arg)
{
        struct source_file *sf = arg;
        int64_t last = clock_mono_ms();
        struct buf line;
        bool too_long;
        long no = 0;

        buf_init(&line, (size_t)sf->cfg->max_body_bytes);
        /* a read error ends the file, as getline's -1 did */
        while (!atomic_load(&sf->stop) && read_line(sf->f, &line, &too_long) > 0) {
                struct snapshot *s;

                sf->stats.lines = ++no;
                if (line.len == 0 && !too_long)
                        continue;
                s = parse_line(sf, &line, no, too_long);
                if (!s) {
                        sf->stats.invalid++;
                        continue;
                }
                if (!submit(sf, s, no))
                        break;
                if (clock_mono_ms() - last >= PROGRESS_EVERY_MS) {
                        last = clock_mono_ms();
                        log_progress(sf);
                }
        }
        buf_free(&line);

        pthread_mutex_lock(&sf->lock);
        while (sf->outstanding > 0)
                pthread_cond_wait(&sf->settled, &sf->lock);
        if (sf->error)
                log_err("import.store_failed", "line=%ld error=\"%s\"", sf->error_line, sf->errmsg);
        log_info("import.done", "lines=%ld accepted=%ld stale=%ld invalid=%ld failed=%ld",
                 sf->stats.lines, sf->stats.accepted, sf->stats.stale, sf->stats.invalid,
                 sf->stats.failed);
        pthread_mutex_unlock(&sf->lock);
        return NULL;
}

static int file_start(void *ctx, struct intake *in)
{
        struct source_file *sf = ctx;
        int r;

        sf->in = in;
        r = -pthread_create(&sf->thread, NULL, reader, sf);
        if (r == 0)
                sf->running = true;
        return r;
}

static void join(struct source_file *sf)
{
        if (sf->running) {
                pthread_join(sf->thread, NULL);
                sf->running = false;
        }
}

static void file_stop(void *ctx)
{
        struct source_file *sf = ctx;

        atomic_store(&sf->stop, true);
        join(sf);
}

static void file_free(void *ctx)
{
        struct source_file *sf = ctx;

        file_stop(sf);
        if (sf->f && sf->f != stdin)
                fclose(sf->f);
        pthread_mutex_destroy(&sf->lock);
        pthread_cond_destroy(&sf->settled);
        free(sf);
}

static const struct source_ops file_ops = {
    .name = "import",
    .start = file_start,
    .stop = file_stop,
    .free = file_free,
};

int source_file_new(const struct config *cfg, const char *path, struct source **ret)
{
        struct source_file *sf;
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");

        if (!f)
                return -errno;
        sf = xcalloc(1, sizeof(*sf));
        sf->cfg = cfg;
        sf->f = f;
        atomic_init(&sf->stop, false);
        pthread_mutex_init(&sf->lock, NULL);
        pthread_cond_init(&sf->settled, NULL);
        *ret = source_new(&file_ops, sf);
        return 0;
}

int source_file_wait(struct source *s, struct source_file_stats *ret_stats)
{
        struct source_file *sf;
        int r;

        if (s->ops != &file_ops)
                return -EINVAL;
        sf = s->ctx;
        join(sf);
        pthread_mutex_lock(&sf->lock);
        r = sf->error;
        if (r == 0)
                *ret_stats = sf->stats;
        pthread_mutex_unlock(&sf->lock);
        return r;
}
