/*
 * Two clocks, never mixed. Wall time (CLOCK_REALTIME) is only for what is stored or
 * shown: received_at, next_at in the store, log stamps. Everything that measures a
 * duration or waits — rate limits, backoff pauses, timeouts, the reaper — uses the
 * monotonic clock, so stepping the system clock back an hour stalls nothing.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch (wall time). */
int64_t clock_wall_ms(void);

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary origin; only differences mean anything). */
int64_t clock_mono_ms(void);

/* Microseconds on the same clock, for durations too short for milliseconds (a commit). */
int64_t clock_mono_us(void);

/* Sleeps `ms` on the monotonic clock (restarting after signals). */
void clock_sleep_ms(int64_t ms);

/* Sleeps `ms` on the monotonic clock in steps of at most 200 ms, so that `stop` (may be
 * NULL) set by another thread is seen soon. False when it was stopped. */
bool clock_sleep_unless(int64_t ms, const atomic_bool *stop);

/* A condition variable whose timed waits run on the monotonic clock. */
int clock_cond_init(pthread_cond_t *cond);

/* The absolute CLOCK_MONOTONIC time `after_ms` from now, for pthread_cond_timedwait on a
 * condition made by clock_cond_init. */
void clock_mono_deadline(int64_t after_ms, struct timespec *ret);
