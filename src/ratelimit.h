/*
 * A leaky bucket, the same model Bitrix24 and Roistat enforce on their side: each request
 * adds one unit, the bucket drains `rate` units per second, and a request that would
 * overflow `burst` units waits. Honouring it on our side keeps the remote's own limit
 * from ever firing in normal operation.
 */
#pragma once

#include <stdint.h>

struct ratelimit {
        int64_t rate_per_s;
        int64_t burst;
        int64_t level_milli; /* units × 1000 */
        int64_t last_ms;
};

void ratelimit_init(struct ratelimit *rl, int64_t rate_per_s, int64_t burst);

/* 0 when a request may go now (and counts it), else the milliseconds to wait. */
int64_t ratelimit_take(struct ratelimit *rl, int64_t now_ms);

/* The remote said we are over its limit: treat the bucket as full. */
void ratelimit_fill(struct ratelimit *rl, int64_t now_ms);
