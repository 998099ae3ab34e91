/* Leaky bucket in integer milli-units; see ratelimit.h. */
#include "ratelimit.h"

void ratelimit_init(struct ratelimit *rl, int64_t rate_per_s, int64_t burst)
{
        rl->rate_per_s = rate_per_s > 0 ? rate_per_s : 1;
        rl->burst = burst > 0 ? burst : 1;
        rl->level_milli = 0;
        rl->last_ms = 0;
}

static void drain(struct ratelimit *rl, int64_t now_ms)
{
        if (now_ms > rl->last_ms) {
                int64_t drained = (now_ms - rl->last_ms) * rl->rate_per_s; /* ms × 1/s = milli */
                rl->level_milli = drained >= rl->level_milli ? 0 : rl->level_milli - drained;
                rl->last_ms = now_ms;
        }
}

int64_t ratelimit_take(struct ratelimit *rl, int64_t now_ms)
{
        int64_t over;

        drain(rl, now_ms);
        over = rl->level_milli + 1000 - rl->burst * 1000;
        if (over > 0)
                return (over + rl->rate_per_s - 1) / rl->rate_per_s;
        rl->level_milli += 1000;
        return 0;
}

void ratelimit_fill(struct ratelimit *rl, int64_t now_ms)
{
        drain(rl, now_ms);
        rl->level_milli = rl->burst * 1000;
}
