/*
 * Backoff: after n failures the delay is uniform in [d/2, d], d = min(max, min·2^(n-1)).
 * The properties are checked over many draws, so a delay outside its window, a cap that
 * does not hold, or jitter that is not jitter shows up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/backoff.h"

#define MIN_MS 1000
#define MAX_MS 600000
#define DRAWS 2000

/* Checks DRAWS delays after `failures` failures all fall in [lo, hi]. */
static void expect_in_window(int64_t failures, int64_t min_ms, int64_t max_ms, int64_t lo,
                             int64_t hi, uint64_t seed)
{
        struct backoff_rng rng;

        backoff_rng_seed(&rng, seed);
        for (int i = 0; i < DRAWS; i++) {
                int64_t d = backoff_delay_ms(failures, min_ms, max_ms, &rng);
                if (d < lo || d > hi)
                        fail_msg("failures=%lld min=%lld max=%lld: delay %lld outside [%lld, %lld]",
                                 (long long)failures, (long long)min_ms, (long long)max_ms,
                                 (long long)d, (long long)lo, (long long)hi);
        }
}

static void the_first_failure_waits_between_half_and_all_of_the_minimum(void **state)
{
        expect_in_window(1, MIN_MS, MAX_MS, 500, 1000, 1);
        expect_in_window(1, MIN_MS, MAX_MS, 500, 1000, 12345);
}

static void each_further_failure_doubles_the_window(void **state)
{
        /* 1 s, 2 s, 4 s, … 512 s, then capped at 600 s */
        static const int64_t d[] = {1000,  2000,   4000,   8000,   16000,  32000,
                                    64000, 128000, 256000, 512000, 600000, 600000};

        for (int64_t n = 1; n <= 12; n++)
                expect_in_window(n, MIN_MS, MAX_MS, d[n - 1] / 2, d[n - 1], (uint64_t)n);
}

static void the_tenth_failure_waits_between_256_and_512_seconds(void **state)
{
        struct backoff_rng rng;

        backoff_rng_seed(&rng, 7);
        for (int i = 0; i < DRAWS; i++) {
                int64_t d = backoff_delay_ms(10, MIN_MS, MAX_MS, &rng);
                assert_in_range(d, 256000, 512000);
        }
}

static void the_delay_never_exceeds_the_cap(void **state)
{
        struct backoff_rng rng;
        int64_t biggest = 0;

        backoff_rng_seed(&rng, 99);
        for (int64_t n = 1; n <= 200; n++)
                for (int i = 0; i < 50; i++) {
                        int64_t d = backoff_delay_ms(n, MIN_MS, MAX_MS, &rng);
                        assert_in_range(d, 1, MAX_MS);
                        if (d > biggest)
                                biggest = d;
                }
        /* and the cap is reached, not merely approached */
        assert_in_range(biggest, MAX_MS * 9 / 10, MAX_MS);
}

static void the_average_delay_grows_until_the_cap(void **state)
{
        struct backoff_rng rng;
        int64_t prev = 0;

        backoff_rng_seed(&rng, 3);
        for (int64_t n = 1; n <= 10; n++) {
                int64_t sum = 0;
                for (int i = 0; i < DRAWS; i++)
                        sum += backoff_delay_ms(n, MIN_MS, MAX_MS, &rng);
                if (sum / DRAWS <= prev)
                        fail_msg("mean delay after %lld failures (%lld) is not above the mean "
                                 "after %lld (%lld)",
                                 (long long)n, (long long)(sum / DRAWS), (long long)n - 1,
                                 (long long)prev);
                prev = sum / DRAWS;
        }
}

static void a_huge_failure_count_gives_a_capped_delay_without_overflow(void **state)
{
        struct backoff_rng rng;

        backoff_rng_seed(&rng, 5);
        expect_in_window(INT64_MAX, MIN_MS, MAX_MS, MAX_MS / 2, MAX_MS, 5);
        expect_in_window(1000000, MIN_MS, MAX_MS, MAX_MS / 2, MAX_MS, 6);
        /* the largest limits the configuration allows */
        expect_in_window(INT64_MAX, 3600000, 86400000, 43200000, 86400000, 7);
        assert_in_range(backoff_delay_ms(INT64_MAX, 10, 86400000, &rng), 43200000, 86400000);
}

static void zero_or_negative_failures_are_treated_as_the_first(void **state)
{
        expect_in_window(0, MIN_MS, MAX_MS, 500, 1000, 8);
        expect_in_window(-5, MIN_MS, MAX_MS, 500, 1000, 9);
}

static void min_equal_to_max_gives_a_fixed_window(void **state)
{
        expect_in_window(1, 5000, 5000, 2500, 5000, 10);
        expect_in_window(50, 5000, 5000, 2500, 5000, 11);
}

static void the_jitter_spreads_delays_across_the_window(void **state)
{
        struct backoff_rng rng;
        int low_half = 0, high_half = 0;

        /* d = 8000 after 4 failures: [4000, 8000]; both halves of it must be used */
        backoff_rng_seed(&rng, 2024);
        for (int i = 0; i < DRAWS; i++) {
                int64_t d = backoff_delay_ms(4, MIN_MS, MAX_MS, &rng);
                if (d < 6000)
                        low_half++;
                else
                        high_half++;
        }
        assert_in_range(low_half, DRAWS / 4, DRAWS * 3 / 4);
        assert_in_range(high_half, DRAWS / 4, DRAWS * 3 / 4);
}

static void different_seeds_give_different_delays(void **state)
{
        struct backoff_rng a, b;
        int same = 0;

        backoff_rng_seed(&a, 1);
        backoff_rng_seed(&b, 2);
        for (int i = 0; i < 100; i++)
                if (backoff_delay_ms(5, MIN_MS, MAX_MS, &a) ==
                    backoff_delay_ms(5, MIN_MS, MAX_MS, &b))
                        same++;
        assert_in_range(same, 0, 5);
}

static void the_same_seed_gives_the_same_sequence(void **state)
{
        struct backoff_rng a, b;

        backoff_rng_seed(&a, 42);
        backoff_rng_seed(&b, 42);
        for (int i = 0; i < 100; i++)
                assert_int_equal(backoff_rng_next(&a), backoff_rng_next(&b));
}

static void a_zero_seed_still_gives_a_moving_sequence(void **state)
{
        struct backoff_rng rng;
        uint64_t first, second;

        /* xorshift stays at 0 forever from a zero state */
        backoff_rng_seed(&rng, 0);
        first = backoff_rng_next(&rng);
        second = backoff_rng_next(&rng);
        assert_true(first != 0);
        assert_true(first != second);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(the_first_failure_waits_between_half_and_all_of_the_minimum),
            cmocka_unit_test(each_further_failure_doubles_the_window),
            cmocka_unit_test(the_tenth_failure_waits_between_256_and_512_seconds),
            cmocka_unit_test(the_delay_never_exceeds_the_cap),
            cmocka_unit_test(the_average_delay_grows_until_the_cap),
            cmocka_unit_test(a_huge_failure_count_gives_a_capped_delay_without_overflow),
            cmocka_unit_test(zero_or_negative_failures_are_treated_as_the_first),
            cmocka_unit_test(min_equal_to_max_gives_a_fixed_window),
            cmocka_unit_test(the_jitter_spreads_delays_across_the_window),
            cmocka_unit_test(different_seeds_give_different_delays),
            cmocka_unit_test(the_same_seed_gives_the_same_sequence),
            cmocka_unit_test(a_zero_seed_still_gives_a_moving_sequence),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
