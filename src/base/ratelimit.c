/* Leaky bucket in microseconds of "busy time"; see ratelimit.h. */
#include "base/ratelimit.h"

#include <stdio.h>

#include "base/clock.h"
#include "base/metrics.h"

static const struct metrics_family tokens_family = {
    .name = "orderbridge_ratelimit_tokens",
    .help = "Requests the sink's rate-limit bucket would let go at once now (its free room).",
    .type = METRICS_GAUGE,
    .labels = {"sink"},
};

/* The level is published as the time the bucket will be empty: draining needs no update. */
static void publish(const struct ratelimit *rl)
{
        if (rl->metric_sink[0])
                metrics_gauge_leaky(&tokens_family, (const char *const[]){rl->metric_sink},
                                    rl->burst, rl->cost_us, rl->last_ms * 1000 + rl->level_us);
}

void ratelimit_init(struct ratelimit *rl, int64_t rate_per_s, int64_t burst, int headroom_pct)
{
        if (rate_per_s < 1)
                rate_per_s = 1;
        rl->cost_us = 1000000 / rate_per_s;
        rl->cost_us += rl->cost_us * (headroom_pct > 0 ? headroom_pct : 0) / 100;
        rl->burst = burst > 0 ? burst : 1;
        rl->level_us = 0;
        rl->last_ms = 0;
        rl->metric_sink[0] = '\0';
}

static void drain(struct ratelimit *rl, int64_t now_ms)
{
        if (now_ms > rl->last_ms) {
                int64_t drained = (now_ms - rl->last_ms) * 1000;
                rl->level_us = drained >= rl->level_us ? 0 : rl->level_us - drained;
                rl->last_ms = now_ms;
        }
}

void ratelimit_share(struct ratelimit *rl, int pct)
{
        if (pct < 1)
                pct = 1;
        if (pct < 100)
                rl->cost_us = rl->cost_us * 100 / pct;
}

int64_t ratelimit_wait_ms(struct ratelimit *rl, int64_t now_ms)
{
        int64_t over;

        drain(rl, now_ms);
        over = rl->level_us + rl->cost_us - rl->burst * rl->cost_us;
        return over > 0 ? (over + 999) / 1000 : 0;
}

int64_t ratelimit_take(struct ratelimit *rl, int64_t now_ms)
{
        int64_t wait = ratelimit_wait_ms(rl, now_ms);

        if (wait == 0) {
                rl->level_us += rl->cost_us;
                publish(rl);
        }
        return wait;
}

void ratelimit_fill(struct ratelimit *rl, int64_t now_ms)
{
        drain(rl, now_ms);
        rl->level_us = rl->burst * rl->cost_us;
        publish(rl);
}

void ratelimit_publish(struct ratelimit *rl, const char *sink)
{
        snprintf(rl->metric_sink, sizeof(rl->metric_sink), "%s", sink);
        publish(rl);
}

void ratelimit_acquire(struct ratelimit *rl)
{
        int64_t wait;

        while ((wait = ratelimit_take(rl, clock_mono_ms())) > 0)
                clock_sleep_ms(wait);
}
