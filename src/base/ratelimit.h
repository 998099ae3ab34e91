/*
 * A leaky bucket, the same model Bitrix24 enforces on its side: each request adds one
 * unit, the bucket drains `rate` units per second, and a request that would overflow
 * `burst` units waits. Honouring it on our side keeps the remote's own limit from ever
 * firing in normal operation. Time is kept in microseconds so that a headroom of a few
 * per cent can be added to a remote's stated rate.
 */
#pragma once

#include <stdint.h>

struct ratelimit {
        int64_t cost_us;  /* how long one request keeps the bucket busy: 1 s / rate */
        int64_t burst;
        int64_t level_us; /* time left until the bucket is empty */
        int64_t last_ms;
        char metric_sink[32]; /* "": not published (ratelimit_publish) */
};

/* `headroom_pct` slows us a little below the remote's own limit, so that clock skew and
 * the remote's rolling-window counting never see us over it. */
void ratelimit_init(struct ratelimit *rl, int64_t rate_per_s, int64_t burst, int headroom_pct);

/* Gives this bucket `pct` per cent (1..100) of the rate it was set up with: two buckets
 * at a% and b% of one remote's rate, with bursts that add up to at most its burst, never
 * go over that remote's limit together (two clients of one Bitrix24 portal). */
void ratelimit_share(struct ratelimit *rl, int pct);

/* The milliseconds until a request may go (0: now), without counting one. */
int64_t ratelimit_wait_ms(struct ratelimit *rl, int64_t now_ms);

/* 0 when a request may go now (and counts it), else the milliseconds to wait. */
int64_t ratelimit_take(struct ratelimit *rl, int64_t now_ms);

/* Blocks until a request may go, then counts it (ratelimit_take, sleeping between). */
void ratelimit_acquire(struct ratelimit *rl);

/* The remote said we are over its limit: treat the bucket as full. */
void ratelimit_fill(struct ratelimit *rl, int64_t now_ms);

/* Publishes the bucket's free room as orderbridge_ratelimit_tokens{sink} (/metrics) from
 * now on, after each change of its level; call it after ratelimit_init and _share. */
void ratelimit_publish(struct ratelimit *rl, const char *sink);
