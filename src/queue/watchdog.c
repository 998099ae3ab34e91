/*
 * The watchdog's pinger (watchdog.h). Why a thread of its own that reads sinkstate, and
 * not a WATCHDOG=1 from each delivery loop: there are several loops and systemd has one
 * timer, so a ping from any loop would keep a wedged sibling alive; and a loop waits
 * (poll_interval_ms, a pause of up to backoff_max_ms) or works (a pass: remote requests
 * with their own timeouts) for times unrelated to WatchdogSec=. One reader that knows what
 * each loop is doing judges them all, every half interval, and pings only when all are
 * alive.
 *
 * A loop is wedged when it has not come round for the stall limit: 20 watchdog intervals
 * (10 minutes with WatchdogSec=30), and never less than three poll intervals. Inside a
 * pass that is the pass's age: no sane pass (a batch, its rate-limited requests, each
 * bounded by its timeout, and the store's record of the verdicts) lasts that long. Between
 * passes the loop beats at least every poll interval, except while it sits out a pause,
 * which is alive until the pause's end (plus the limit).
 */
#include "queue/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"

#define STALL_INTERVALS 20
#define STALL_POLLS 3

struct watchdog {
        pthread_t thread;
        atomic_bool stop;
        int64_t every_ms; /* half the interval systemd gave */
        int64_t stall_ms;
};

/* The first loop that is not alive, or NULL; `buf` holds the copy it points into. */
static const struct sinkstate_view *find_wedged(const struct watchdog *w,
                                                struct sinkstate_view *buf, size_t max)
{
        size_t n = sinkstate_list(buf, max);
        int64_t mono = clock_mono_ms(), wall = clock_wall_ms();

        for (size_t i = 0; i < n; i++)
                if (sinkstate_stall(&buf[i], mono, wall, w->stall_ms) != SINK_STALL_NONE)
                        return &buf[i];
        return NULL;
}

static void *run(void *arg)
{
        struct watchdog *w = arg;
        bool withheld = false;

        while (clock_sleep_unless(w->every_ms, &w->stop)) {
                struct sinkstate_view views[SINKSTATE_MAX];
                const struct sinkstate_view *v = find_wedged(w, views, SINKSTATE_MAX);

                if (!v) {
                        (void)sd_notify(0, "WATCHDOG=1");
                        if (withheld)
                                log_info("watchdog.resumed", "%s", "every sink loop is alive");
                        withheld = false;
                        continue;
                }
                if (!withheld) {
                        int64_t since = v->pass_started_ms > 0 ? v->pass_started_ms : v->beat_ms;
                        log_err("watchdog.withheld",
                                "sink=%s in_pass=%s stalled_ms=%lld hint=\"the delivery loop "
                                "is wedged: systemd restarts the service\"",
                                v->name, v->pass_started_ms > 0 ? "yes" : "no",
                                (long long)(clock_mono_ms() - since));
                        (void)sd_notify(0, "STATUS=a delivery loop is wedged; watchdog "
                                           "pings withheld");
                }
                withheld = true;
        }
        return NULL;
}

int watchdog_start(int64_t poll_interval_ms, struct watchdog **ret)
{
        struct watchdog *w;
        uint64_t usec = 0;
        int r;

        *ret = NULL;
        if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
                return 0;
        w = xcalloc(1, sizeof(*w));
        atomic_init(&w->stop, false);
        w->every_ms = (int64_t)(usec / 2000);
        if (w->every_ms < 1)
                w->every_ms = 1;
        w->stall_ms = (int64_t)(usec / 1000) * STALL_INTERVALS;
        if (w->stall_ms < poll_interval_ms * STALL_POLLS)
                w->stall_ms = poll_interval_ms * STALL_POLLS;
        r = -pthread_create(&w->thread, NULL, run, w);
        if (r < 0) {
                free(w);
                return r;
        }
        log_info("watchdog.started", "ping_ms=%lld stall_ms=%lld", (long long)w->every_ms,
                 (long long)w->stall_ms);
        *ret = w;
        return 0;
}

struct watchdog *watchdog_stop(struct watchdog *w)
{
        if (!w)
                return NULL;
        atomic_store(&w->stop, true);
        pthread_join(w->thread, NULL);
        free(w);
        return NULL;
}
