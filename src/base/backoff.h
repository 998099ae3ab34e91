/*
 * Exponential backoff with jitter. The n-th consecutive failure waits about
 * min·2^(n-1), capped at max, and a random part spreads retries so that many orders that
 * failed together do not come back together.
 */
#pragma once

#include <stdint.h>

/* A small per-thread random source (xorshift64*), seeded by the caller. */
struct backoff_rng {
        uint64_t state;
};

void backoff_rng_seed(struct backoff_rng *rng, uint64_t seed);
uint64_t backoff_rng_next(struct backoff_rng *rng);

/* Delay before the next try after `failures` (≥1) consecutive failures: uniformly in
 * [d/2, d] where d = min(max_ms, min_ms·2^(failures-1)). */
int64_t backoff_delay_ms(int64_t failures, int64_t min_ms, int64_t max_ms,
                         struct backoff_rng *rng);
