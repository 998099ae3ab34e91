/*
 * The process's metrics: counters, gauges and fixed-bucket histograms with labels, and
 * their rendering in Prometheus' text exposition format 0.0.4 (GET /metrics). Like the
 * logger it is process-wide, so that the few places that count an event (an attempt's
 * verdict, a remote call, an answer, a commit) need no handle threaded down to them.
 *
 * A family (name, help, type, label names, buckets) is a `static const` beside the code
 * that counts it; a series is made on its first use. Label values must come from a small
 * set the code names (sinks, routes, outcomes, HTTP codes), never from an order or a
 * secret: the registry caps both the number of series (METRICS_SERIES_MAX) and a value's
 * length, and drops what passes them, counted in orderbridge_metrics_dropped_total.
 * Everything is under one mutex: metrics are counted a few hundred times a second at most.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define METRICS_LABELS_MAX 2
#define METRICS_BUCKETS_MAX 16
#define METRICS_SERIES_MAX 512
#define METRICS_VALUE_MAX 64 /* bytes of one label value */

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics_family {
        const char *name; /* orderbridge_…, [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total */
        const char *help;
        enum metrics_type type;
        const char *labels[METRICS_LABELS_MAX]; /* label names; unused ones NULL */
        const double *buckets;                  /* histograms: upper bounds, increasing */
        size_t n_buckets;                       /* at most METRICS_BUCKETS_MAX; +Inf implied */
};

/* `values`: one label value per label name of the family (NULL when it has none). */
void metrics_counter_add(const struct metrics_family *f, const char *const *values, uint64_t n);
void metrics_gauge_set(const struct metrics_family *f, const char *const *values, double v);
void metrics_observe(const struct metrics_family *f, const char *const *values, double v);

/* Makes the series now, at zero, so that it is rendered before its first event (a
 * histogram of commits before the first order). */
void metrics_declare(const struct metrics_family *f, const char *const *values);

/* A gauge that a leaky bucket (base/ratelimit) keeps: its free room in units, computed at
 * each render from when the bucket will be empty, so that a bucket nobody touches is seen
 * draining. `capacity` units of `unit_us` each; `empty_at_us` on the monotonic clock
 * (clock_mono_ms() * 1000). */
void metrics_gauge_leaky(const struct metrics_family *f, const char *const *values,
                         int64_t capacity, int64_t unit_us, int64_t empty_at_us);

/* Appends every family with its series to `out`, in the order each family was first
 * used, as of `now_mono_us` (for leaky gauges): 0, or -EMSGSIZE when `out` is full. */
int metrics_render(struct buf *out, int64_t now_mono_us);

/* Forgets every series (tests). */
void metrics_reset(void);
