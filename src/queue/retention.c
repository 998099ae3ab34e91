/*
 * The retention state machine (see retention.h). Idle until due; then a pass: prune steps
 * until store_prune_step says the pass is complete, then compaction steps until one frees
 * nothing, then the pass's one log line and idle for an interval. The cut-off is fixed
 * when a pass starts, so a pass that spans a few seconds judges every row by one time.
 * Between two steps it rests a little, so the dispatchers' writes get the store too.
 */
#include "queue/retention.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"

#define REST_MS 20 /* between two steps of a pass */

enum phase {
        IDLE,
        PRUNE,
        COMPACT,
};

static const char *const phase_names[] = {"idle", "prune", "compact"};

struct retention {
        int64_t keep_ms, every_ms;
        size_t batch;
        enum phase phase;
        int64_t due_ms;     /* monotonic */
        int64_t cutoff_ms;  /* wall: this pass forgets what is older */
        struct store_prune pass;
        int64_t bytes_freed;
        int64_t busy_ms;    /* time spent in this pass's steps */
        int64_t longest_ms; /* its longest step */
        int64_t steps;
};

struct retention *retention_new(int64_t keep_ms, int64_t every_ms, size_t batch)
{
        struct retention *r = xcalloc(1, sizeof(*r));

        r->keep_ms = keep_ms;
        r->every_ms = every_ms;
        r->batch = batch;
        r->due_ms = 0; /* at once */
        return r;
}

struct retention *retention_free(struct retention *r)
{
        free(r);
        return NULL;
}

int64_t retention_due_at(const struct retention *r)
{
        return r->keep_ms > 0 ? r->due_ms : INT64_MAX;
}

static void start_pass(struct retention *r, int64_t wall_ms)
{
        memset(&r->pass, 0, sizeof(r->pass));
        r->cutoff_ms = wall_ms - r->keep_ms;
        r->bytes_freed = r->busy_ms = r->longest_ms = r->steps = 0;
        r->phase = PRUNE;
}

static void end_pass(struct retention *r, int64_t mono_ms)
{
        if (r->pass.versions || r->pass.attempts || r->bytes_freed)
                log_info("store.pruned",
                         "versions=%lld attempts=%lld bytes_freed=%lld ms=%lld "
                         "longest_step_ms=%lld steps=%lld",
                         (long long)r->pass.versions, (long long)r->pass.attempts,
                         (long long)r->bytes_freed, (long long)r->busy_ms,
                         (long long)r->longest_ms, (long long)r->steps);
        else
                log_debug("store.pruned", "versions=0 attempts=0 bytes_freed=0 ms=%lld",
                          (long long)r->busy_ms);
        r->phase = IDLE;
        r->due_ms = mono_ms + r->every_ms;
}

/* One step of the current phase: 1 the phase goes on, 0 it is complete, or -errno. */
static int step_once(struct retention *r, struct store *s)
{
        int64_t freed = 0;
        int rc;

        if (r->phase == PRUNE) {
                rc = store_prune_step(s, &r->pass, r->cutoff_ms, r->batch);
                if (rc == 0)
                        r->phase = COMPACT;
                return rc < 0 ? rc : 1;
        }
        if ((rc = store_compact(s, (int64_t)r->batch, &freed)) < 0)
                return rc;
        r->bytes_freed += freed;
        return freed > 0;
}

int retention_step(struct retention *r, struct store *s, int64_t wall_ms, int64_t mono_ms)
{
        int64_t t0, elapsed;
        enum phase phase;
        int rc;

        if (r->keep_ms <= 0 || mono_ms < r->due_ms)
                return 0;
        if (r->phase == IDLE)
                start_pass(r, wall_ms);
        phase = r->phase;
        t0 = clock_mono_ms();
        rc = step_once(r, s);
        elapsed = clock_mono_ms() - t0;
        r->busy_ms += elapsed;
        r->steps++;
        if (elapsed > r->longest_ms)
                r->longest_ms = elapsed;
        if (rc < 0) {
                log_warn("store.prune_failed", "phase=%s error=\"%s\"", phase_names[phase],
                         store_errmsg(s));
                r->phase = IDLE;
                r->due_ms = mono_ms + r->every_ms;
        } else if (rc == 0 && phase == COMPACT) {
                end_pass(r, mono_ms);
        } else {
                r->due_ms = mono_ms + REST_MS;
        }
        return 1;
}

void retention_prepare(const struct config *cfg, struct store *s)
{
        int64_t t0 = clock_mono_ms();
        int r;

        if (cfg->retain_days <= 0)
                return;
        r = store_compact_enable(s);
        if (r > 0)
                log_info("store.converted", "auto_vacuum=incremental ms=%lld",
                         (long long)(clock_mono_ms() - t0));
        else if (r < 0)
                log_warn("store.convert_failed",
                         "error=\"%s\" hint=\"old versions are still pruned; the file keeps its "
                         "free pages for reuse until a VACUUM\"",
                         store_errmsg(s));
}
