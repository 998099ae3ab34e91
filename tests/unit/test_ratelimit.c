/*
 * The leaky bucket: `burst` requests go at once, then one every 1/rate seconds (stretched
 * by the headroom). Time is passed in, so every expectation here is an exact number of
 * milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/ratelimit.h"
#include "sinks/b24_client.h"

#define T0 1773385200000LL /* a realistic wall clock in ms */

/* Takes `n` requests at `now`, each of which must be allowed. */
static void take_allowed(struct ratelimit *rl, int n, int64_t now)
{
        for (int i = 0; i < n; i++) {
                int64_t wait = ratelimit_take(rl, now);
                if (wait != 0)
                        fail_msg("request %d of %d at %lld: want 0, got a wait of %lld ms", i + 1,
                                 n, (long long)now, (long long)wait);
        }
}

static void a_full_burst_goes_at_once(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 0);
        take_allowed(&rl, 50, T0);
}

static void the_request_after_the_burst_waits_one_drain_interval(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 0);
        take_allowed(&rl, 50, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 500); /* 2/s: one unit drains in 500 ms */
}

static void a_refused_request_is_not_counted(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 3, 0);
        take_allowed(&rl, 3, T0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(ratelimit_take(&rl, T0), 500);
        /* after 500 ms exactly one unit has drained, whatever was refused meanwhile */
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 0);
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 500);
}

static void the_wait_shrinks_as_time_passes(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 1, 0);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0 + 100), 400);
        assert_int_equal(ratelimit_take(&rl, T0 + 499), 1);
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 0);
}

static void a_wait_is_rounded_up_not_down(void **state)
{
        struct ratelimit rl;

        /* 3/s: a unit drains in 333.3 ms; waiting 333 ms would be refused again */
        ratelimit_init(&rl, 3, 1, 0);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 334);
        assert_int_equal(ratelimit_take(&rl, T0 + 334), 0);
}

static void after_the_burst_requests_flow_at_the_rate(void **state)
{
        struct ratelimit rl;
        int allowed = 0;

        /* 10/s, burst 10: over 10 s, 10 at once plus 10 per second = 110 */
        ratelimit_init(&rl, 10, 10, 0);
        for (int64_t t = T0; t <= T0 + 10000; t++)
                while (ratelimit_take(&rl, t) == 0)
                        allowed++;
        assert_int_equal(allowed, 110);
}

static void an_idle_bucket_drains_completely_but_not_below_empty(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 5, 0);
        take_allowed(&rl, 5, T0);
        /* an hour later: one full burst again, not more */
        take_allowed(&rl, 5, T0 + 3600000);
        assert_int_equal(ratelimit_take(&rl, T0 + 3600000), 500);
}

static void a_partly_drained_bucket_admits_what_has_drained(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 0);
        take_allowed(&rl, 50, T0);
        /* 2.5 s drain 5 units */
        take_allowed(&rl, 5, T0 + 2500);
        assert_int_equal(ratelimit_take(&rl, T0 + 2500), 500);
}

static void fill_makes_the_next_request_wait_a_full_interval(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 0);
        assert_int_equal(ratelimit_take(&rl, T0), 0);
        ratelimit_fill(&rl, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 500);
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 0);
}

static void fill_then_a_long_pause_restores_the_burst(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 0);
        ratelimit_fill(&rl, T0);
        take_allowed(&rl, 50, T0 + 25000);
        assert_true(ratelimit_take(&rl, T0 + 25000) > 0);
}

static void a_clock_that_steps_back_does_not_refill_the_bucket(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 2, 0);
        take_allowed(&rl, 2, T0);
        assert_int_equal(ratelimit_take(&rl, T0 - 60000), 500);
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 0);
}

static void a_zero_rate_or_burst_is_treated_as_one(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 0, 0, 0);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 1000);
        ratelimit_init(&rl, -3, -3, 0);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 1000);
}

static void the_enterprise_limits_allow_250_at_once_then_5_per_second(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 5, 250, 0);
        take_allowed(&rl, 250, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 200);
        take_allowed(&rl, 5, T0 + 1000);
        assert_int_equal(ratelimit_take(&rl, T0 + 1000), 200);
}

static void a_ten_per_cent_headroom_stretches_each_interval_by_ten_per_cent(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 50, 10);
        take_allowed(&rl, 50, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 550);
        assert_int_equal(ratelimit_take(&rl, T0 + 549), 1);
        assert_int_equal(ratelimit_take(&rl, T0 + 550), 0);
}

static void with_headroom_fewer_requests_pass_than_the_remote_allows(void **state)
{
        struct ratelimit rl;
        int allowed = 0;

        /* Roistat: 10/s. With 5 % headroom, 60 s give the burst plus 60000/105 = 571 */
        ratelimit_init(&rl, 10, 10, 5);
        for (int64_t t = T0; t <= T0 + 60000; t++)
                while (ratelimit_take(&rl, t) == 0)
                        allowed++;
        assert_int_equal(allowed, 10 + 571);
        assert_true(allowed < 10 + 600);
}

static void a_negative_headroom_is_treated_as_none(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 1, -50);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 500);
}

static void a_share_of_the_rate_stretches_each_interval(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 1, 0);
        ratelimit_share(&rl, 10);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 5000); /* 10 % of 2/s: one per 5 s */
        ratelimit_init(&rl, 2, 1, 0);
        ratelimit_share(&rl, 100);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_take(&rl, T0), 500);
}

static void the_wait_is_told_without_counting_a_request(void **state)
{
        struct ratelimit rl;

        ratelimit_init(&rl, 2, 1, 0);
        assert_int_equal(ratelimit_wait_ms(&rl, T0), 0);
        assert_int_equal(ratelimit_wait_ms(&rl, T0), 0);
        take_allowed(&rl, 1, T0);
        assert_int_equal(ratelimit_wait_ms(&rl, T0 + 100), 400);
        assert_int_equal(ratelimit_wait_ms(&rl, T0 + 100), 400);
        assert_int_equal(ratelimit_take(&rl, T0 + 500), 0);
}

/* Both buckets take every request they allow, each millisecond for `ms`; each request
 * is offered to the portal's own bucket (the same model: rate 2, burst 50, no headroom).
 * Returns how many the portal refused; *ret_sent how many went. */
static int portal_refusals(struct ratelimit *sink, struct ratelimit *source, int64_t ms,
                           int *ret_sent)
{
        struct ratelimit portal;
        int refused = 0;

        ratelimit_init(&portal, 2, 50, 0);
        *ret_sent = 0;
        for (int64_t t = T0; t <= T0 + ms; t++)
                for (int k = 0; k < 2; k++)
                        while (ratelimit_take(k ? source : sink, t) == 0) {
                                refused += ratelimit_take(&portal, t) != 0;
                                ++*ret_sent;
                        }
        return refused;
}

static void the_sink_and_the_source_together_stay_under_the_portals_limit(void **state)
{
        struct b24_conf conf = {.rate = 2, .burst = 50, .poll_interval_s = 60};
        struct ratelimit sink, source;
        int sent, refused;

        /* the source polls: the bucket is split between the two clients */
        b24_client_bucket(&conf, B24_CLIENT_SINK, &sink);
        b24_client_bucket(&conf, B24_CLIENT_SOURCE, &source);
        refused = portal_refusals(&sink, &source, 600000, &sent);
        assert_int_equal(refused, 0);
        assert_true(sent > 1000); /* 10 minutes at ~1.9/s: the split wastes little */
        /* two whole buckets, as two unaware clients would have, go over it */
        conf.poll_interval_s = 0;
        b24_client_bucket(&conf, B24_CLIENT_SINK, &sink);
        b24_client_bucket(&conf, B24_CLIENT_SINK, &source);
        assert_true(portal_refusals(&sink, &source, 600000, &sent) > 0);
}

static void an_idle_source_leaves_the_sink_the_whole_bucket(void **state)
{
        struct b24_conf conf = {.rate = 2, .burst = 50};
        struct ratelimit sink;

        b24_client_bucket(&conf, B24_CLIENT_SINK, &sink);
        take_allowed(&sink, 49, T0); /* one unit is kept for jitter */
        assert_true(ratelimit_take(&sink, T0) > 0);
        conf.application_token = "0123456789abcdef0123456789abcdef";
        b24_client_bucket(&conf, B24_CLIENT_SINK, &sink);
        take_allowed(&sink, 45, T0); /* the source has 4 of the 49 */
        assert_true(ratelimit_take(&sink, T0) > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_full_burst_goes_at_once),
            cmocka_unit_test(the_request_after_the_burst_waits_one_drain_interval),
            cmocka_unit_test(a_refused_request_is_not_counted),
            cmocka_unit_test(the_wait_shrinks_as_time_passes),
            cmocka_unit_test(a_wait_is_rounded_up_not_down),
            cmocka_unit_test(after_the_burst_requests_flow_at_the_rate),
            cmocka_unit_test(an_idle_bucket_drains_completely_but_not_below_empty),
            cmocka_unit_test(a_partly_drained_bucket_admits_what_has_drained),
            cmocka_unit_test(fill_makes_the_next_request_wait_a_full_interval),
            cmocka_unit_test(fill_then_a_long_pause_restores_the_burst),
            cmocka_unit_test(a_clock_that_steps_back_does_not_refill_the_bucket),
            cmocka_unit_test(a_zero_rate_or_burst_is_treated_as_one),
            cmocka_unit_test(the_enterprise_limits_allow_250_at_once_then_5_per_second),
            cmocka_unit_test(a_ten_per_cent_headroom_stretches_each_interval_by_ten_per_cent),
            cmocka_unit_test(with_headroom_fewer_requests_pass_than_the_remote_allows),
            cmocka_unit_test(a_negative_headroom_is_treated_as_none),
            cmocka_unit_test(a_share_of_the_rate_stretches_each_interval),
            cmocka_unit_test(the_wait_is_told_without_counting_a_request),
            cmocka_unit_test(the_sink_and_the_source_together_stay_under_the_portals_limit),
            cmocka_unit_test(an_idle_source_leaves_the_sink_the_whole_bucket),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
