/* Backoff arithmetic; see backoff.h. Doubling stops at the cap, so it never overflows. */
#include "base/backoff.h"

void backoff_rng_seed(struct backoff_rng *rng, uint64_t seed)
{
        rng->state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

uint64_t backoff_rng_next(struct backoff_rng *rng)
{
        uint64_t x = rng->state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        rng->state = x;
        return x * 0x2545f4914f6cdd1dULL;
}

int64_t backoff_delay_ms(int64_t failures, int64_t min_ms, int64_t max_ms,
                         struct backoff_rng *rng)
{
        int64_t d = min_ms, half;

        for (int64_t i = 1; i < failures && d < max_ms; i++)
                d *= 2;
        if (d > max_ms)
                d = max_ms;
        half = d / 2;
        return half + (int64_t)(backoff_rng_next(rng) % (uint64_t)(d - half + 1));
}
