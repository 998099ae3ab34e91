/*
 * The metrics registry and its text rendering (see metrics.h). Series live in one array,
 * in the order they were made, under one mutex; a family's series are rendered together,
 * under its # HELP and # TYPE, when the family is first met in that order. A histogram
 * keeps its observations per bucket and renders them cumulatively, as the format wants
 * (each le bucket counts every observation up to its bound).
 */
#include "base/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

struct series {
        const struct metrics_family *f;
        char values[METRICS_LABELS_MAX][METRICS_VALUE_MAX + 1];
        uint64_t count; /* counter; a histogram's count */
        double value;   /* gauge; a histogram's sum */
        uint64_t buckets[METRICS_BUCKETS_MAX]; /* per bucket, not cumulative */
        bool leaky;
        int64_t capacity, unit_us, empty_at_us;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series *all[METRICS_SERIES_MAX];
static size_t n_all;
static uint64_t dropped; /* observations refused: too many series, or a value too long */

static const struct metrics_family dropped_family = {
    .name = "orderbridge_metrics_dropped_total",
    .help = "Observations not recorded: the series cap was reached or a label value was too "
            "long.",
    .type = METRICS_COUNTER,
};

static size_t n_labels(const struct metrics_family *f)
{
        size_t n = 0;

        while (n < METRICS_LABELS_MAX && f->labels[n])
                n++;
        return n;
}

/* The series of `f` with `values`, made when new; NULL (and counted as dropped) when the
 * cap is reached or a value is too long. Under `lock`. */
static struct series *series_of(const struct metrics_family *f, const char *const *values)
{
        size_t nl = n_labels(f);
        struct series *s;

        for (size_t k = 0; k < nl; k++)
                if (!values || !values[k] || strlen(values[k]) > METRICS_VALUE_MAX) {
                        dropped++;
                        return NULL;
                }
        for (size_t i = 0; i < n_all; i++) {
                bool same = all[i]->f == f;
                for (size_t k = 0; same && k < nl; k++)
                        same = strcmp(all[i]->values[k], values[k]) == 0;
                if (same)
                        return all[i];
        }
        if (n_all == METRICS_SERIES_MAX) {
                dropped++;
                return NULL;
        }
        s = xcalloc(1, sizeof(*s));
        s->f = f;
        for (size_t k = 0; k < nl; k++)
                snprintf(s->values[k], sizeof(s->values[k]), "%s", values[k]);
        all[n_all++] = s;
        return s;
}

void metrics_declare(const struct metrics_family *f, const char *const *values)
{
        pthread_mutex_lock(&lock);
        series_of(f, values);
        pthread_mutex_unlock(&lock);
}

void metrics_counter_add(const struct metrics_family *f, const char *const *values, uint64_t n)
{
        struct series *s;

        pthread_mutex_lock(&lock);
        if ((s = series_of(f, values)))
                s->count += n;
        pthread_mutex_unlock(&lock);
}

void metrics_gauge_set(const struct metrics_family *f, const char *const *values, double v)
{
        struct series *s;

        pthread_mutex_lock(&lock);
        if ((s = series_of(f, values))) {
                s->value = v;
                s->leaky = false;
        }
        pthread_mutex_unlock(&lock);
}

void metrics_gauge_leaky(const struct metrics_family *f, const char *const *values,
                         int64_t capacity, int64_t unit_us, int64_t empty_at_us)
{
        struct series *s;

        pthread_mutex_lock(&lock);
        if ((s = series_of(f, values))) {
                s->leaky = true;
                s->capacity = capacity;
                s->unit_us = unit_us > 0 ? unit_us : 1;
                s->empty_at_us = empty_at_us;
        }
        pthread_mutex_unlock(&lock);
}

void metrics_observe(const struct metrics_family *f, const char *const *values, double v)
{
        size_t nb = f->n_buckets < METRICS_BUCKETS_MAX ? f->n_buckets : METRICS_BUCKETS_MAX;
        struct series *s;

        pthread_mutex_lock(&lock);
        if ((s = series_of(f, values))) {
                for (size_t i = 0; i < nb; i++)
                        if (v <= f->buckets[i]) {
                                s->buckets[i]++;
                                break;
                        }
                s->count++;
                s->value += v;
        }
        pthread_mutex_unlock(&lock);
}

void metrics_reset(void)
{
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_all; i++)
                free(all[i]);
        n_all = 0;
        dropped = 0;
        pthread_mutex_unlock(&lock);
}

/* ---- rendering ---- */

/* A sample value as the format spells it: NaN, +Inf, -Inf, an integer when it is one. */
static void format_value(char *out, size_t size, double v)
{
        if (isnan(v))
                snprintf(out, size, "NaN");
        else if (isinf(v))
                snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
        else if (v == floor(v) && fabs(v) < 1e15)
                snprintf(out, size, "%.0f", v);
        else
                snprintf(out, size, "%.15g", v);
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void append_escaped(struct buf *out, const char *s, bool quote)
{
        for (; *s; s++) {
                if (*s == '\\')
                        buf_append(out, "\\\\", 2);
                else if (*s == '\n')
                        buf_append(out, "\\n", 2);
                else if (*s == '"' && quote)
                        buf_append(out, "\\\"", 2);
                else
                        buf_append(out, s, 1);
        }
}

/* `{a="x",b="y"}`, with `le` last when not NULL; nothing when there are no labels. */
static void append_labels(struct buf *out, const struct series *s, const char *le)
{
        size_t nl = n_labels(s->f);

        if (nl == 0 && !le)
                return;
        buf_append(out, "{", 1);
        for (size_t k = 0; k < nl; k++) {
                buf_printf(out, "%s%s=\"", k ? "," : "", s->f->labels[k]);
                append_escaped(out, s->values[k], true);
                buf_append(out, "\"", 1);
        }
        if (le)
                buf_printf(out, "%sle=\"%s\"", nl ? "," : "", le);
        buf_append(out, "}", 1);
}

static void append_sample(struct buf *out, const struct series *s, const char *suffix,
                          const char *le, const char *value)
{
        buf_printf(out, "%s%s", s->f->name, suffix);
        append_labels(out, s, le);
        buf_printf(out, " %s\n", value);
}

static void append_histogram(struct buf *out, const struct series *s)
{
        size_t nb = s->f->n_buckets < METRICS_BUCKETS_MAX ? s->f->n_buckets : METRICS_BUCKETS_MAX;
        char le[32], v[32];
        uint64_t cumulative = 0;

        for (size_t i = 0; i < nb; i++) {
                cumulative += s->buckets[i];
                format_value(le, sizeof(le), s->f->buckets[i]);
                snprintf(v, sizeof(v), "%llu", (unsigned long long)cumulative);
                append_sample(out, s, "_bucket", le, v);
        }
        snprintf(v, sizeof(v), "%llu", (unsigned long long)s->count);
        append_sample(out, s, "_bucket", "+Inf", v);
        format_value(v, sizeof(v), s->value);
        append_sample(out, s, "_sum", NULL, v);
        snprintf(v, sizeof(v), "%llu", (unsigned long long)s->count);
        append_sample(out, s, "_count", NULL, v);
}

/* A leaky bucket's free room, in units, at `now_us`. */
static double leaky_room(const struct series *s, int64_t now_us)
{
        int64_t level = s->empty_at_us > now_us ? s->empty_at_us - now_us : 0;
        double room = (double)s->capacity - (double)level / (double)s->unit_us;

        return room < 0 ? 0 : room;
}

static void append_series(struct buf *out, const struct series *s, int64_t now_us)
{
        char v[32];

        switch (s->f->type) {
        case METRICS_COUNTER:
                snprintf(v, sizeof(v), "%llu", (unsigned long long)s->count);
                append_sample(out, s, "", NULL, v);
                break;
        case METRICS_GAUGE:
                format_value(v, sizeof(v), s->leaky ? leaky_room(s, now_us) : s->value);
                append_sample(out, s, "", NULL, v);
                break;
        case METRICS_HISTOGRAM:
                append_histogram(out, s);
                break;
        }
}

static void append_header(struct buf *out, const struct metrics_family *f)
{
        static const char *const types[] = {"counter", "gauge", "histogram"};

        buf_printf(out, "# HELP %s ", f->name);
        append_escaped(out, f->help, false);
        buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
}

int metrics_render(struct buf *out, int64_t now_mono_us)
{
        char v[32];

        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_all; i++) {
                bool first = true;
                for (size_t j = 0; j < i && first; j++)
                        first = all[j]->f != all[i]->f;
                if (!first)
                        continue;
                append_header(out, all[i]->f);
                for (size_t j = i; j < n_all; j++)
                        if (all[j]->f == all[i]->f)
                                append_series(out, all[j], now_mono_us);
        }
        append_header(out, &dropped_family);
        snprintf(v, sizeof(v), "%llu", (unsigned long long)dropped);
        buf_printf(out, "%s %s\n", dropped_family.name, v);
        pthread_mutex_unlock(&lock);
        return out->toobig ? -EMSGSIZE : 0;
}
