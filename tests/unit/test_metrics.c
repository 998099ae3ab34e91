/*
 * The metrics registry's text output: HELP and TYPE once per family, label values escaped
 * per the exposition format, histogram buckets cumulative, and a leaky gauge that drains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/metrics.h"

static const struct metrics_family attempts = {
    .name = "t_attempts_total", .help = "Attempts.\nSecond \\ line.", .type = METRICS_COUNTER,
    .labels = {"sink", "outcome"}};
static const double bounds[] = {0.1, 1, 10};
static const struct metrics_family latency = {.name = "t_seconds", .help = "Latency.",
                                              .type = METRICS_HISTOGRAM,
                                              .buckets = bounds, .n_buckets = 3};
static const struct metrics_family tokens = {.name = "t_tokens", .help = "Tokens.",
                                             .type = METRICS_GAUGE, .labels = {"sink"}};

static char *render(struct buf *b, int64_t now_us)
{
        buf_init(b, 1 << 20);
        assert_int_equal(metrics_render(b, now_us), 0);
        return b->data;
}

static void counters_render_with_escaped_help_and_labels(void **state)
{
        struct buf b;

        metrics_reset();
        metrics_counter_add(&attempts, (const char *const[]){"roistat", "ok"}, 2);
        metrics_counter_add(&attempts, (const char *const[]){"a\"b\\c\nd", "ok"}, 1);
        metrics_counter_add(&attempts, (const char *const[]){"roistat", "ok"}, 3);
        char *t = render(&b, 0);
        assert_non_null(strstr(t, "# HELP t_attempts_total Attempts.\\nSecond \\\\ line.\n"
                                  "# TYPE t_attempts_total counter\n"
                                  "t_attempts_total{sink=\"roistat\",outcome=\"ok\"} 5\n"
                                  "t_attempts_total{sink=\"a\\\"b\\\\c\\nd\",outcome=\"ok\"} 1\n"));
        assert_null(strstr(strstr(t, "# TYPE t_attempts_total") + 1, "# TYPE t_attempts_total"));
        buf_free(&b);
}

static void histogram_buckets_are_cumulative(void **state)
{
        struct buf b;

        metrics_reset();
        metrics_observe(&latency, NULL, 0.05);
        metrics_observe(&latency, NULL, 0.5);
        metrics_observe(&latency, NULL, 0.7);
        metrics_observe(&latency, NULL, 50);
        char *t = render(&b, 0);
        assert_non_null(strstr(t, "# TYPE t_seconds histogram\n"
                                  "t_seconds_bucket{le=\"0.1\"} 1\n"
                                  "t_seconds_bucket{le=\"1\"} 3\n"
                                  "t_seconds_bucket{le=\"10\"} 3\n"
                                  "t_seconds_bucket{le=\"+Inf\"} 4\n"
                                  "t_seconds_sum 51.25\n"
                                  "t_seconds_count 4\n"));
        buf_free(&b);
}

static void a_leaky_gauge_drains_between_events(void **state)
{
        struct buf b;

        metrics_reset();
        /* 50 units of 500 ms, full until 10 s: 20 units used at 0 s, 10 at 5 s */
        metrics_gauge_leaky(&tokens, (const char *const[]){"bitrix24"}, 50, 500000, 10000000);
        assert_non_null(strstr(render(&b, 0), "t_tokens{sink=\"bitrix24\"} 30\n"));
        buf_free(&b);
        assert_non_null(strstr(render(&b, 5000000), "t_tokens{sink=\"bitrix24\"} 40\n"));
        buf_free(&b);
        assert_non_null(strstr(render(&b, 20000000), "t_tokens{sink=\"bitrix24\"} 50\n"));
        buf_free(&b);
}

static void a_label_value_too_long_is_dropped_and_counted(void **state)
{
        struct buf b;
        char long_value[METRICS_VALUE_MAX + 2];

        metrics_reset();
        memset(long_value, 'x', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = '\0';
        metrics_counter_add(&attempts, (const char *const[]){long_value, "ok"}, 1);
        char *t = render(&b, 0);
        assert_null(strstr(t, "xxxx"));
        assert_non_null(strstr(t, "orderbridge_metrics_dropped_total 1\n"));
        buf_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(counters_render_with_escaped_help_and_labels),
            cmocka_unit_test(histogram_buckets_are_cumulative),
            cmocka_unit_test(a_leaky_gauge_drains_between_events),
            cmocka_unit_test(a_label_value_too_long_is_dropped_and_counted),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
